"""Targets to watch from outside: a process tree, a command we start, a memory cgroup.

Every target is read from *our* process: RSS from /proc (psutil), cgroup counters straight from
the cgroup's files. Nothing is injected into the target, so watching costs it nothing.

The protocol (:class:`MemoryTarget`) is what :func:`benchtrack.monitor.watch` needs:

- ``description``: one line naming the target (it becomes the Timeline's ``target``);
- ``read()``: memory now, the limit if there is one, and whether the target is still alive;
- ``new_oom_events(time_s)``: OOM kills seen since the last call, stamped with ``time_s``;
- ``close()``: release what the target holds (a command we started is terminated here).

Optional: a ``kind`` attribute ("process", "command", "cgroup", "container") names the kind of
target for tags and reports; :func:`target_kind` falls back to the class name without it.
Container targets (docker / podman) live in ``benchtrack.probes.containers``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

import psutil

from benchtrack.errors import UsageError
from benchtrack.results import OomEvent

# Limits at or above this mean "no limit" (cgroup v1 reports PAGE_COUNTER_MAX rounded to pages).
_NO_LIMIT_BYTES = 2**62
DEFAULT_GRACE_S = 3.0  # SIGTERM, then this long, then SIGKILL
CGROUP_ROOTS = (Path("/sys/fs/cgroup/memory"), Path("/sys/fs/cgroup"))


class NoSuchTarget(UsageError):  # noqa: N818 - named in the protocol; it is a UsageError
    """The pid, command or cgroup to watch does not exist (exit 2, one line)."""


@dataclass(frozen=True)
class TargetReading:
    memory_bytes: float  # RSS summed over the process tree, or the cgroup's charged usage
    limit_bytes: float | None  # the cgroup / container limit; None when unlimited or unknown
    alive: bool  # False once the process has exited or the cgroup is gone (memory_bytes is then 0)
    extra: Mapping[str, float] = field(default_factory=dict)  # e.g. processes, failcnt, oom_kill


@runtime_checkable
class MemoryTarget(Protocol):
    description: str

    def read(self) -> TargetReading: ...

    def new_oom_events(self, time_s: float) -> list[OomEvent]: ...

    def close(self) -> None: ...


def target_kind(target: MemoryTarget) -> str:
    kind = getattr(target, "kind", None)
    return kind if isinstance(kind, str) and kind else type(target).__name__


# --- processes ---------------------------------------------------------------------------------


class ProcessTarget:
    """A pid and (by default) all its descendants, their RSS summed.

    A descendant that exits between listing and reading is skipped. The target is dead once the
    pid has exited (a zombie counts as exited) or was reused by another process.
    """

    kind = "process"

    def __init__(self, pid: int, *, children: bool = True, description: str | None = None) -> None:
        if pid <= 0:
            raise NoSuchTarget(f"no such process: pid {pid}")
        try:
            self._process = psutil.Process(pid)
            name = _name(self._process)
        except psutil.NoSuchProcess:
            raise NoSuchTarget(f"no such process: pid {pid}") from None
        except psutil.AccessDenied:
            raise UsageError(f"not allowed to read process {pid} (run as its user or as root)") from None
        self.pid = pid
        self.children = children
        self.description = description or f"pid {pid} ({name})"
        self._descendants: dict[int, psutil.Process] = {}  # every descendant seen, kept for close()

    def _exited(self) -> bool:
        try:
            return not self._process.is_running() or self._process.status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
        except psutil.AccessDenied:  # pragma: no cover - still there, just not ours to inspect
            return False

    def _tree(self) -> list[psutil.Process]:
        if not self.children:
            return [self._process]
        try:
            children = self._process.children(recursive=True)
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            children = []
        for child in children:
            self._descendants.setdefault(child.pid, child)
        return [self._process, *children]

    def read(self) -> TargetReading:
        if self._exited():
            return TargetReading(0.0, None, alive=False, extra={"processes": 0.0})
        total = 0
        counted = 0
        for process in self._tree():
            try:
                total += process.memory_info().rss
                counted += 1
            except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
                continue  # exited between listing and reading
        if counted == 0:
            return TargetReading(0.0, None, alive=False, extra={"processes": 0.0})
        return TargetReading(float(total), None, alive=True, extra={"processes": float(counted)})

    def new_oom_events(self, time_s: float) -> list[OomEvent]:  # noqa: ARG002 - the protocol's signature
        return []  # a process we did not start gives no exit status to read

    def close(self) -> None:
        return None  # never touch a process we did not start


class CommandTarget(ProcessTarget):
    """A command started here, in its own session (and so its own process group), watched with
    its whole tree until it exits or the watch ends; :meth:`close` then terminates the tree:
    SIGTERM to the process group and to every descendant seen, ``grace_s``, then SIGKILL.

    The command's stdout goes to our stderr by default, so `--format json` keeps stdout clean.
    An exit by SIGKILL (or with code 137, as a shell reports it) before we stopped it is an
    ``exit_137`` OomEvent: that is how an OOM kill of a plain process shows.
    """

    kind = "command"

    def __init__(self, argv: Sequence[str], *, grace_s: float = DEFAULT_GRACE_S, cwd: Path | None = None,
                 env: Mapping[str, str] | None = None, stdout: int | IO[Any] | None = 2) -> None:
        if not argv:
            raise UsageError("no command given after --")
        self.argv = tuple(argv)
        self.grace_s = grace_s
        try:
            self._popen = subprocess.Popen(self.argv, cwd=cwd, env=None if env is None else dict(env),
                                           stdin=subprocess.DEVNULL, stdout=stdout, start_new_session=True)
        except FileNotFoundError:
            raise NoSuchTarget(f"command not found: {self.argv[0]}") from None
        except PermissionError:
            raise UsageError(f"cannot execute {self.argv[0]}: permission denied") from None
        except OSError as exc:
            raise UsageError(f"cannot start {self.argv[0]}: {exc.strerror}") from None
        self.exit_code: int | None = None  # as subprocess reports it: negative for a signal
        self.stopped_by_us = False  # True when close() ended it (its exit code is then ours, not an OOM)
        self._oom_reported = False
        self._closed = False
        # Never reaped before close(), so psutil finds it (a zombie at worst) and the process
        # group id cannot be reused before close() has signalled the group.
        super().__init__(self._popen.pid, description=shlex.join(self.argv)[:200])

    def _exit_status(self) -> int | None:
        """The exit status, read without reaping; negative for a signal, like subprocess."""
        if self._popen.returncode is not None:
            return self._popen.returncode
        try:
            info = os.waitid(os.P_PID, self._popen.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:  # pragma: no cover - reaped behind our back
            return self._popen.poll()
        if info is None:
            return None
        if info.si_code == os.CLD_EXITED:
            return int(info.si_status)
        return -int(info.si_status)  # killed (or dumped core) by this signal

    def _exited(self) -> bool:
        status = self._exit_status()
        if status is None:
            return False
        if not self.stopped_by_us:
            self.exit_code = status
        return True

    def new_oom_events(self, time_s: float) -> list[OomEvent]:
        if self._oom_reported or self.stopped_by_us or self.exit_code not in (137, -signal.SIGKILL):
            return []
        self._oom_reported = True
        how = "was killed by SIGKILL" if self.exit_code == -signal.SIGKILL else "exited with code 137"
        return [OomEvent(time_s, "exit_137", f"{self.argv[0]} {how} (an OOM kill, or another SIGKILL)")]

    def close(self) -> None:
        """Terminate the whole tree and reap the command (idempotent); records ``exit_code``.

        SIGTERM goes to the process group and to every descendant seen while watching (one that
        left the group with setsid is still reached that way); after ``grace_s`` whatever is
        left gets SIGKILL.
        """
        if self._closed:
            return
        self._closed = True
        if not self._exited():
            self.stopped_by_us = True
            self._tree()  # one last look for descendants
        tree = [p for p in self._descendants.values() if _running(p)]
        self._signal_group(signal.SIGTERM)
        for process in tree:
            with contextlib.suppress(psutil.Error):
                process.terminate()
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline:
            if self._exit_status() is None or any(_running(p) for p in tree) or self._group_exists():
                time.sleep(0.05)
                continue
            break
        self._signal_group(signal.SIGKILL)
        for process in tree:
            with contextlib.suppress(psutil.Error):
                process.kill()
        psutil.wait_procs(tree, timeout=1.0)
        self.exit_code = self._popen.wait()

    def _signal_group(self, signum: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, signum)  # pgid == pid: start_new_session

    def _group_exists(self) -> bool:
        """Any process left in the command's group other than its own unreaped zombie."""
        try:
            processes = [p for p in psutil.process_iter(["pid"]) if p.pid != self._popen.pid]
        except psutil.Error:  # pragma: no cover
            return False
        for process in processes:
            with contextlib.suppress(psutil.Error, OSError):
                if os.getpgid(process.pid) == self._popen.pid and process.status() != psutil.STATUS_ZOMBIE:
                    return True
        return False


def _name(process: psutil.Process) -> str:
    try:
        return process.name()
    except psutil.ZombieProcess:
        return "exited"


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# --- cgroups -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _CgroupFiles:
    version: int
    usage: str
    limit: str


_V1 = _CgroupFiles(1, "memory.usage_in_bytes", "memory.limit_in_bytes")
_V2 = _CgroupFiles(2, "memory.current", "memory.max")


class CgroupTarget:
    """A memory cgroup, read directly from its files (~60 us a read).

    - v1: ``memory.usage_in_bytes``, ``memory.limit_in_bytes``, ``memory.failcnt`` and the
      ``oom_kill`` line of ``memory.oom_control`` (kernels >= 4.13);
    - v2: ``memory.current``, ``memory.max`` ("max" = no limit) and ``oom_kill`` of ``memory.events``.

    Every rise of the oom_kill counter since the target was opened is one ``oom_kill`` OomEvent
    per kill. ``failcnt`` (v1: how often usage hit the limit, reclaim included) and the v2
    ``max`` / ``oom`` events are reported in ``extra`` only: hitting the limit is not a kill.
    The cgroup is alive while its directory exists, even when no process is left in it.
    """

    kind = "cgroup"

    def __init__(self, path: Path | str, *, roots: Sequence[Path] = CGROUP_ROOTS) -> None:
        self.path = resolve_cgroup(Path(path), roots)
        self._files = _V1 if (self.path / _V1.usage).is_file() else _V2
        self.version = self._files.version
        self.description = f"cgroup {self.path}"
        try:
            first = self._read_counters()
        except (OSError, ValueError) as exc:
            raise UsageError(f"cannot read the memory cgroup {self.path}: {_reason(exc)}") from None
        self._oom_kills = first.get("oom_kill", 0.0)  # kills before we started watching are not ours to report
        self._pending = 0
        self._detail = ""

    def read(self) -> TargetReading:
        try:
            counters = self._read_counters()
        except FileNotFoundError:
            return TargetReading(0.0, None, alive=False)
        usage = counters.pop("usage_bytes")
        limit = counters.pop("limit_bytes", None)
        kills = counters.get("oom_kill")
        if kills is not None and kills > self._oom_kills:
            self._pending += int(kills - self._oom_kills)
            self._detail = f"oom_kill counter {self._oom_kills:.0f} -> {kills:.0f} in {self.path}"
            self._oom_kills = kills
        return TargetReading(usage, limit, alive=True, extra=counters)

    def new_oom_events(self, time_s: float) -> list[OomEvent]:
        events = [OomEvent(time_s, "oom_kill", self._detail) for _ in range(self._pending)]
        self._pending = 0
        return events

    def close(self) -> None:
        return None

    def _read_counters(self) -> dict[str, float]:
        counters: dict[str, float] = {"usage_bytes": float(int(_read(self.path / self._files.usage)))}
        limit = _parse_limit(_read(self.path / self._files.limit))
        if limit is not None:
            counters["limit_bytes"] = limit
        if self.version == 1:
            failcnt = _read_optional(self.path / "memory.failcnt")
            if failcnt is not None:
                counters["failcnt"] = float(int(failcnt))
            control = _read_optional(self.path / "memory.oom_control")
            if control is not None:
                counters.update(_parse_flat_keyed(control, ("oom_kill", "under_oom")))
        else:
            events = _read_optional(self.path / "memory.events")
            if events is not None:
                counters.update(_parse_flat_keyed(events, ("oom_kill", "oom", "max", "high")))
        procs = _read_optional(self.path / "cgroup.procs")
        if procs is not None:
            counters["processes"] = float(sum(1 for line in procs.splitlines() if line.strip()))
        return counters


def resolve_cgroup(path: Path, roots: Sequence[Path] = CGROUP_ROOTS) -> Path:
    """A cgroup directory as given, or relative to the usual mounts (``mygroup`` ->
    /sys/fs/cgroup/memory/mygroup on v1); it must hold v1 or v2 memory files."""
    candidates = [path] if path.is_absolute() else [path, *(root / path for root in roots)]
    for candidate in candidates:
        if candidate.is_dir():
            if (candidate / _V1.usage).is_file() or (candidate / _V2.usage).is_file():
                return candidate
            raise UsageError(f"{candidate} is not a memory cgroup (no {_V1.usage} or {_V2.usage})")
    raise NoSuchTarget(f"no such cgroup: {path}")


def _read(path: Path) -> str:
    return path.read_text(encoding="ascii").strip()


def _read_optional(path: Path) -> str | None:
    try:
        return _read(path)
    except FileNotFoundError:
        if not path.parent.is_dir():
            raise
        return None


def _parse_limit(text: str) -> float | None:
    if text == "max":
        return None
    value = int(text)
    return None if value >= _NO_LIMIT_BYTES else float(value)


def _parse_flat_keyed(text: str, keys: Sequence[str]) -> dict[str, float]:
    """'key value' lines (memory.events, memory.oom_control) -> the wanted keys that are present."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in keys:
            values[parts[0]] = float(int(parts[1]))
    return values


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
