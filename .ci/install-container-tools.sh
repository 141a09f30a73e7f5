#!/bin/sh
# Container tools for tests/test_containers.py: podman and runc (Debian / Ubuntu, as root or
# with sudo). Run it (sh .ci/install-container-tools.sh) or source it; it changes nothing in the
# calling shell. Idempotent and quiet: does nothing when both are installed, runs
# `apt-get update` only when the package lists do not know podman yet, prints only on failure.
#
# Recommends are kept: that is the combination the tests were run with here. Strictly, the
# tests run podman as root with --network none and --storage-driver vfs (see
# tests/container_support.py), so slirp4netns, fuse-overlayfs, uidmap and buildah may not be
# needed. runc is named because the tests use --runtime runc (crun refuses hybrid cgroups).

install_container_tools() (
    set -eu
    have_runc() { command -v runc >/dev/null 2>&1 || [ -x /usr/sbin/runc ] || [ -x /usr/bin/runc ]; }
    if command -v podman >/dev/null 2>&1 && have_runc; then
        exit 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "install-container-tools: podman and runc are missing and there is no apt-get here" >&2
        exit 1
    fi
    if [ "$(id -u)" -eq 0 ]; then
        as_root=""
    elif command -v sudo >/dev/null 2>&1; then
        as_root="sudo"
    else
        echo "install-container-tools: need root (or sudo) to install podman and runc" >&2
        exit 1
    fi
    log="$(mktemp)"
    trap 'rm -f "$log"' EXIT
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache policy podman runc 2>/dev/null | grep -q 'Candidate: [0-9]' \
        || apt-cache policy podman runc 2>/dev/null | grep -q 'Candidate: (none)'; then
        $as_root apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
    fi
    $as_root apt-get install -y -qq podman runc >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
)

install_container_tools
