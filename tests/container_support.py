"""A private podman engine for the container tests: its own storage, run and lock folders and its
own Docker-API socket, all under pytest's tmp, so nothing touches (or sees) other containers.

Install with `.ci/install-system-packages.sh` (podman + runc, no recommends). The recipe that works
here (Debian 12: podman 4.3.1, runc 1.1.5, root, hybrid cgroups with v1 memory, no systemd, the
whole machine itself inside a container), found by experiment:

    G="--root $T/storage --runroot $T/run --tmpdir $T/libpod --storage-driver vfs \
       --cgroup-manager cgroupfs --events-backend file --runtime runc"
    podman $G system service --time=0 unix://$T/podman.sock &          # the Docker API
    podman $G run -d --name NAME --restart on-failure:5 --network none \
        --ulimit nofile=20000:20000 --ulimit nproc=1000:1000 \
        --memory 64m --memory-swap 64m \
        --volume /usr:/usr:ro --rootfs $T/rootfs /usr/bin/python3 -c PROGRAM

- ``--rootfs`` is a flag, not an option taking a value: the root filesystem folder is the first
  positional argument, so every option must come *before* it (anything after it is the command;
  `--rootfs DIR --memory 64m ...` silently runs a container with no limit and default ulimits,
  which runc then refuses: "error setting rlimit type 7: operation not permitted").
- ``--runtime runc``: crun refuses hybrid cgroups here. ``--ulimit nofile/nproc``: podman's
  defaults (1048576 / 32768) are above our hard limits and there is no CAP_SYS_RESOURCE.
- The root filesystem is a folder of empty mount points plus the host's usr-merge symlinks
  (bin -> usr/bin, lib -> usr/lib, lib64 -> usr/lib64, sbin -> usr/sbin) and a two-line
  /etc/passwd and /etc/group; /usr is bind-mounted read-only (and /bin, /lib... too on a host
  without merged /usr). podman itself mounts /proc, /dev, /sys and writes /etc/hosts,
  /etc/resolv.conf and /etc/hostname. The host's Debian /usr/bin/python3 then runs inside.
- ``--storage-driver vfs``: with --rootfs no image layer is ever stored, and vfs works on any
  file system (overlay on an overlay-backed /tmp does not), so fuse-overlayfs is not needed.
  ``--network none``: no slirp4netns / netavark setup. Rootful, so no uidmap either.
- ``--cgroup-manager cgroupfs`` and ``--events-backend file``: no systemd / journald here.
- The global options go to every podman command, the service included: conmon runs
  `podman <the same options> container cleanup` when a container exits, and that is what
  applies the restart policy.

Measured: a container starts in ~0.25 s; under a 64 MB limit, a Python process allocating 4 MB
every 0.1 s is OOM-killed at ~62 MB, and podman restarts it within ~0.3 s with RestartCount + 1,
ExitCode 0 and OOMKilled false; after the last restart the container stays exited with code 137.
``stats`` through the API holds only ``usage`` and ``limit`` (67108864) and answers an empty body
(not JSON) for a container that is not running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

LIMIT = "64m"
LIMIT_BYTES = 64 * 1024 * 1024
ULIMITS = ("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=1000:1000")
HOST_PYTHON = Path("/usr/bin/python3")  # Debian's, inside /usr (the test runner's may be pyenv's)
SERVICE_START_TIMEOUT_S = 30.0
_TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def find_tools() -> tuple[str, str] | str:
    """(podman, runc) paths, or the reason the container tests cannot run here."""
    podman = shutil.which("podman")
    runc = shutil.which("runc") or next((p for p in ("/usr/sbin/runc", "/usr/bin/runc") if Path(p).exists()), None)
    if podman is None or runc is None:
        missing = " and ".join(name for name, path in (("podman", podman), ("runc", runc)) if path is None)
        return f"{missing} not installed (run .ci/install-system-packages.sh)"
    if os.geteuid() != 0:
        return "needs root: rootless podman cannot set memory limits with cgroupfs on cgroup v1"
    return podman, runc


def allocator_command(delay_s: float, step_mb: int = 4, interval_s: float = 0.1) -> list[str]:
    """A program that idles delay_s, then allocates (and touches) step_mb every interval_s until
    the kernel kills it. Host /usr/bin/python3 if /usr holds it, else /bin/sh with head and tr."""
    if HOST_PYTHON.exists() and HOST_PYTHON.resolve().is_relative_to("/usr"):
        program = textwrap.dedent(f"""\
            import time
            time.sleep({delay_s})
            blocks = []
            while True:
                blocks.append(b"x" * ({step_mb} << 20))  # written, so every page is charged
                print("allocated", len(blocks) * {step_mb}, "MB", flush=True)
                time.sleep({interval_s})
            """)
        return [str(HOST_PYTHON), "-c", program]
    # A shell holds a command substitution's whole output in memory: 256 MB of 'a' is past any
    # 64 MB limit (no pacing here; the kill comes within a second of the delay).
    return ["/bin/sh", "-c", f'sleep {delay_s}; x=$(head -c 268435456 /dev/zero | tr "\\000" a); echo "${{#x}}"']


def build_rootfs(root: Path) -> list[str]:
    """An empty root filesystem at root; returns the --volume options that fill it from the host."""
    for folder in ("usr", "etc", "tmp", "proc", "dev", "sys", "run", "var/tmp", "root"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)
    volumes = ["--volume", "/usr:/usr:ro"]
    for name in _TOP_LEVEL:
        host = Path("/") / name
        if host.is_symlink():
            (root / name).symlink_to(host.readlink())  # usr-merge: bin -> usr/bin ...
        elif host.is_dir():
            (root / name).mkdir()
            volumes += ["--volume", f"{host}:{host}:ro"]
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    return volumes


@dataclass
class PodmanEngine:
    """A private podman: ``url`` serves the Docker API; :meth:`run` starts containers on it."""

    podman: str
    folder: Path
    global_args: list[str]
    rootfs: Path
    volumes: list[str]
    service: subprocess.Popen[bytes] | None = None
    names: list[str] = field(default_factory=list)

    @property
    def socket(self) -> Path:
        return self.folder / "podman.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def cli(self, *args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([self.podman, *self.global_args, *args], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args[:3])} ... failed ({done.returncode}): {done.stderr.strip()}")
        return done

    def run(self, name: str, command: Sequence[str], *, memory: str = LIMIT, restart: str | None = "on-failure:5") -> str:
        """podman run -d (every option before --rootfs: it takes no value); returns the id."""
        options = ["--name", name, "--network", "none", *ULIMITS, "--memory", memory, "--memory-swap", memory,
                   *self.volumes]
        if restart:
            options += ["--restart", restart]
        done = self.cli("run", "-d", *options, "--rootfs", str(self.rootfs), *command)
        self.names.append(name)
        return done.stdout.strip()

    def state(self, name: str) -> str:
        return self.cli("inspect", name, "--format",
                        "{{.State.Status}} restarts={{.RestartCount}} exit={{.State.ExitCode}}").stdout.strip()

    def start_service(self) -> None:
        log = (self.folder / "service.log").open("wb")
        self.service = subprocess.Popen([self.podman, *self.global_args, "system", "service", "--time=0", self.url],
                                        stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        log.close()
        deadline = time.monotonic() + SERVICE_START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.service.poll() is not None:
                raise AssertionError(f"podman system service exited with {self.service.returncode}: {self.log_tail()}")
            if self.socket.exists() and _accepts(self.socket):
                return
            time.sleep(0.05)
        raise AssertionError(f"podman system service did not open {self.socket} in {SERVICE_START_TIMEOUT_S:.0f} s")

    def log_tail(self, lines: int = 20) -> str:
        path = self.folder / "service.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def close(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            self.cli("rm", "--all", "--force", "--time", "0", check=False, timeout=60)
        if self.service is not None and self.service.poll() is None:
            self.service.terminate()
            try:
                self.service.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.service.kill()
                self.service.wait(timeout=10)


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        try:
            client.connect(str(path))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module", name="podman_engine")
def podman_engine_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PodmanEngine]:
    """``podman_engine``: a private podman with its Docker-API service running, for one test
    module (import this function into it). Skipped, with the reason, only where podman or runc
    is missing or we are not root."""
    tools = find_tools()
    if isinstance(tools, str):
        pytest.skip(tools)
    podman, runc = tools
    folder = tmp_path_factory.mktemp("podman")
    global_args = ["--root", str(folder / "storage"), "--runroot", str(folder / "run"), "--tmpdir", str(folder / "libpod"),
                   "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "file",
                   "--runtime", runc]
    rootfs = folder / "rootfs"
    engine = PodmanEngine(podman, folder, global_args, rootfs, build_rootfs(rootfs))
    try:
        engine.start_service()
        yield engine
    finally:
        engine.close()
