#!/bin/sh
# System packages the tests use, from Debian / Ubuntu (as root or with sudo): podman and runc
# for tests/test_containers.py, valgrind for instruction counts (tests/test_instructions.py),
# chromium for the browser tests (tests/browser_support.py).
# Run it (sh .ci/install-system-packages.sh); it changes nothing in the calling shell.
# Idempotent and quiet: does nothing when all are installed, runs `apt-get update` only when
# installing without it fails, prints only on failure.
#
# Recommends are kept: that is the combination the tests were run with here. Strictly, the
# tests run podman as root with --network none and --storage-driver vfs (see
# tests/container_support.py), so slirp4netns, fuse-overlayfs, uidmap and buildah may not be
# needed. runc is named because the tests use --runtime runc (crun refuses hybrid cgroups).

install_system_packages() (
    set -eu
    have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/usr/bin/$1" ]; }
    missing=""
    for program in podman runc valgrind chromium; do
        have "$program" || missing="$missing $program"
    done
    [ -z "$missing" ] && exit 0
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-system-packages:$missing missing and there is no apt-get here" >&2
        exit 1
    fi
    if [ "$(id -u)" -eq 0 ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1; then
        as_root="sudo"
    else
        echo "install-system-packages: need root (or sudo) to install$missing" >&2
        exit 1
    fi
    log="$(mktemp)"
    trap 'rm -f "$log"' EXIT
    export DEBIAN_FRONTEND=noninteractive
    # shellcheck disable=SC2086 # one word per package
    if ! $as_root apt-get install -y -qq $missing >"$log" 2>&1; then
        # the package lists may not know them yet: refresh once, then try again
        $as_root apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
        # shellcheck disable=SC2086
        $as_root apt-get install -y -qq $missing >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    fi
)

install_system_packages
