"""The MLflow UI as a child process group that never outlives benchtrack.

`mlflow ui` starts a server that starts workers; stopping only the first process orphans the
rest, and a terminal's Ctrl-C reaching all of them prints a traceback from each. So the server
runs in a session of its own (the terminal's Ctrl-C reaches benchtrack alone), and benchtrack
stops the whole group on SIGINT, SIGTERM, SIGHUP or its own exit: SIGTERM, a grace period,
then SIGKILL for whatever is left. Its output goes to a temporary log whose last line explains
a failure to start in one line.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import FrameType

import psutil

from benchtrack.errors import TrackingError, UsageError

READY_TIMEOUT_S = 120.0  # importing mlflow and opening the store takes 5-30 s on a small, busy machine
STOP_GRACE_S = 10.0
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}  # noqa: S104 - names, not a bind


class _StopSignalError(Exception):
    """A stop signal arrived."""


def check_port(host: str, port: int) -> None:
    """Refuse a port out of range or already taken on host before any server starts."""
    if not 1 <= port <= 65535:
        raise UsageError(f"port {port} is out of range: use 1 to 65535")
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise UsageError(f"cannot listen on host {host!r}: {exc.strerror}") from None
    with socket.socket(family, kind) as probe:
        # The server sets SO_REUSEADDR too: a port left in TIME_WAIT is free for it, a listening one is not.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror} (choose another --port)") from None


def ui_command(uri: str, host: str, port: int) -> list[str]:
    # One worker: the default four each import mlflow (~3 s) and slow start-up on small machines.
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", host, "--port", str(port),
            "--workers", "1"]


def serve_ui(uri: str, host: str, port: int, on_ready: Callable[[str], None],
             environment: Mapping[str, str] | None = None, ready_timeout_s: float = READY_TIMEOUT_S) -> None:
    """Run the MLflow UI on ``uri`` until a stop signal; ``on_ready(url)`` once it answers HTTP.
    Returns after a stop signal with the server's whole process group gone; raises TrackingError
    when the server does not come up or dies."""
    check_port(host, port)
    url = f"http://{_url_host(host)}:{port}"
    with tempfile.TemporaryDirectory(prefix="benchtrack-ui-") as tmp, _stop_on_signals():
        log_path = Path(tmp) / "mlflow.log"
        process: subprocess.Popen[bytes] | None = None
        try:
            with open(log_path, "wb") as log:
                process = subprocess.Popen(ui_command(uri, host, port), stdin=subprocess.DEVNULL, stdout=log,
                                           stderr=subprocess.STDOUT, start_new_session=True,
                                           env=dict(os.environ if environment is None else environment))
            _wait_until_answering(process, url, ready_timeout_s, log_path)
            on_ready(url)
            code = process.wait()
            raise TrackingError(f"the MLflow UI stopped (exit {code}): {_last_line(log_path)}")
        except _StopSignalError:
            return
        finally:
            if process is not None:
                _ignore_stop_signals()  # a second Ctrl-C must not cut the clean-up short
                stop_group(process)


def stop_group(process: subprocess.Popen[bytes], grace_s: float = STOP_GRACE_S) -> None:
    """SIGTERM to the process group ``process`` leads, SIGKILL to what is left after grace_s."""
    group = process.pid  # start_new_session: the leader's pid is the group's id
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while group_members(group, process) and time.monotonic() < deadline:
        time.sleep(0.1)
    if group_members(group, process):
        _signal_group(group, signal.SIGKILL)
    process.wait()


def group_members(group: int, leader: subprocess.Popen[bytes] | None = None) -> list[int]:
    """Live (not zombie) processes of a process group; the leader, our child, is reaped first."""
    if leader is not None:
        leader.poll()
    members = []
    for candidate in psutil.process_iter(["status"]):
        with contextlib.suppress(psutil.Error, ProcessLookupError, PermissionError):
            if candidate.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(candidate.pid) == group:
                members.append(candidate.pid)
    return members


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _wait_until_answering(process: subprocess.Popen[bytes], url: str, timeout_s: float, log_path: Path) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never ask a proxy for 127.0.0.1
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TrackingError(f"the MLflow UI did not start (exit {process.returncode}): {_last_line(log_path)}")
        with contextlib.suppress(OSError), opener.open(url + "/health", timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    raise TrackingError(f"the MLflow UI did not answer at {url} within {timeout_s:g} s: {_last_line(log_path)}")


def _last_line(log_path: Path) -> str:
    lines = [line.strip() for line in log_path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


def _url_host(host: str) -> str:
    shown = _WILDCARD_HOSTS.get(host, host)
    return f"[{shown}]" if ":" in shown else shown


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """The first stop signal raises _StopSignalError where the main thread is; later ones are ignored."""
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise _StopSignalError(signum)

    previous = {signum: signal.signal(signum, stop) for signum in _STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _ignore_stop_signals() -> None:
    for signum in _STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
