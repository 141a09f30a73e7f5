"""Where a run happened: git state, machine facts worth comparing, and noisy-machine advisories.

Everything here is read-only and never raises for a missing tool or file: a run on an odd machine
should still be recorded, just with fewer facts. Only stdlib and psutil, so workers can import it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import psutil

if TYPE_CHECKING:
    from collections.abc import Callable

BENCHTRACK_TAG_PREFIX = "benchtrack."
GIT_COMMIT_TAG = "mlflow.source.git.commit"  # MLflow's standard tag, so its UI links the commit
UNKNOWN = "unknown"

GIT_TIMEOUT_S = 10.0
GIB = 1024**3
CPU_ROOT = "/sys/devices/system/cpu"
INTEL_NO_TURBO = f"{CPU_ROOT}/intel_pstate/no_turbo"
CPUFREQ_BOOST = f"{CPU_ROOT}/cpufreq/boost"
RANDOMIZE_VA_SPACE = "/proc/sys/kernel/randomize_va_space"
MAX_LOAD_PER_CPU = 0.5
MAX_BUSY_PERCENT = 20.0
BUSY_SAMPLE_S = 0.2
MIN_CPUS = 2

# These make git ignore cwd and read another repository or index (they are set inside git hooks,
# e.g. when a pre-commit hook runs benchmarks); the path argument must decide which repo we see.
_GIT_REDIRECTING_ENV = frozenset(
    {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY"},
)


@dataclass(frozen=True)
class GitInfo:
    """The source state of a run; None wherever git could not tell."""

    commit: str | None
    branch: str | None
    dirty: bool | None


@dataclass(frozen=True)
class Advisory:
    """One reason the machine may give noisy timings, and what to do about it."""

    severity: str  # "warning" or "info"
    check: str
    message: str


def _read_text_or_none(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, ValueError):
        return None


def _run_git(path: Path, *args: str) -> str | None:
    """Run git in path; its stripped stdout on success, else None (no git, no repo, timeout)."""
    git = shutil.which("git")
    if git is None:
        return None
    env = {k: v for k, v in os.environ.items() if k not in _GIT_REDIRECTING_ENV}
    try:
        done = subprocess.run(
            [git, *args],
            cwd=path,
            env=env,
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError, UnicodeDecodeError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_info(path: Path) -> GitInfo:
    """Commit, branch and dirtiness of the work tree holding path; never raises."""
    if _run_git(path, "rev-parse", "--is-inside-work-tree") != "true":
        return GitInfo(commit=None, branch=None, dirty=None)
    commit = _run_git(path, "rev-parse", "--verify", "--quiet", "HEAD")  # None before 1st commit
    branch = _run_git(path, "symbolic-ref", "--short", "--quiet", "HEAD")  # None when detached
    # --no-optional-locks: reading state must not write .git/index while a user works in the tree.
    status = _run_git(path, "--no-optional-locks", "status", "--porcelain", "--untracked-files=no")
    return GitInfo(
        commit=commit or None,
        branch=branch or None,
        dirty=None if status is None else status != "",
    )


def cpu_model(read_text: Callable[[str], str | None] = _read_text_or_none) -> str:
    """Return the CPU's marketing name, or "unknown"; read_text is injectable for tests."""
    for line in (read_text("/proc/cpuinfo") or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return platform.processor().strip() or UNKNOWN


def _logical_cpu_count() -> int:
    return os.cpu_count() or 1


def _memory_total_gib() -> float:
    return float(psutil.virtual_memory().total) / GIB


def _kernel_major_minor() -> str:
    # Patch releases and distro suffixes ("6.8.0-45-generic") change on every update and rarely
    # change timings; major.minor does mark a different scheduler or memory manager.
    match = re.match(r"\d+(?:\.\d+)?", platform.release())
    return match.group(0) if match else platform.release()


def _fingerprint_facts() -> dict[str, str]:
    """Facts that decide whether two runs may be compared; nothing that names a host or user."""
    python_major_minor = ".".join(platform.python_version_tuple()[:2])
    return {
        "cpu_model": cpu_model(),
        "cpu_count": str(_logical_cpu_count()),
        "memory_gib": str(round(_memory_total_gib())),
        "os": platform.system(),
        "kernel": _kernel_major_minor(),
        "machine": platform.machine(),
        "python": f"{platform.python_implementation()} {python_major_minor}",
    }


def machine_fingerprint() -> str:
    """16 hex chars, equal for two runs only when their machines are comparable."""
    canonical = "\n".join(f"{key}={value}" for key, value in sorted(_fingerprint_facts().items()))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def _benchtrack_version() -> str:
    try:
        version = getattr(importlib.import_module("benchtrack"), "__version__", None)
    except ImportError:
        version = None
    if isinstance(version, str):
        return version
    try:
        return importlib.metadata.version("benchtrack")
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN


def _bool_tag(value: bool | None) -> str:
    return UNKNOWN if value is None else str(value).lower()


def collect_metadata(path: Path) -> dict[str, str]:
    """Run tags describing the source and machine; never env vars, hostnames or usernames."""
    git = git_info(path)
    physical = psutil.cpu_count(logical=False)
    p = BENCHTRACK_TAG_PREFIX
    tags = {GIT_COMMIT_TAG: git.commit} if git.commit else {}
    tags |= {
        f"{p}git.branch": git.branch or UNKNOWN,
        f"{p}git.dirty": _bool_tag(git.dirty),
        f"{p}python.version": platform.python_version(),
        f"{p}python.implementation": platform.python_implementation(),
        f"{p}python.build": ", ".join((*platform.python_build(), platform.python_compiler())),
        f"{p}cpu.model": cpu_model(),
        f"{p}cpu.count": str(_logical_cpu_count()),
        f"{p}cpu.physical": str(physical) if physical else UNKNOWN,
        f"{p}memory.total_gib": f"{_memory_total_gib():.1f}",
        f"{p}os": platform.platform(),
        f"{p}version": _benchtrack_version(),
        f"{p}machine.fingerprint": machine_fingerprint(),
    }
    return tags


def _cpu_busy_percent() -> float:
    return float(psutil.cpu_percent(interval=BUSY_SAMPLE_S))


def _check_governor(read_text: Callable[[str], str | None], cpus: int) -> list[Advisory]:
    paths = (f"{CPU_ROOT}/cpu{i}/cpufreq/scaling_governor" for i in range(cpus))
    governors = [text.strip() for text in map(read_text, paths) if text is not None]
    if not governors:
        return [
            Advisory(
                "info",
                "cpu-governor",
                "CPU frequency scaling can't be checked (no cpufreq in /sys, e.g. a VM or "
                "container); compare results only with runs from the same kind of host",
            ),
        ]
    slow = sorted({g for g in governors if g != "performance"})
    if not slow:
        return []
    count = sum(g != "performance" for g in governors)
    return [
        Advisory(
            "warning",
            "cpu-governor",
            f"CPU frequency governor is {', '.join(slow)} on {count} of {len(governors)} CPUs; "
            "set it to performance (sudo cpupower frequency-set -g performance)",
        ),
    ]


def _check_turbo(read_text: Callable[[str], str | None]) -> list[Advisory]:
    if (read_text(INTEL_NO_TURBO) or "").strip() == "0":
        fix = f"echo 1 | sudo tee {INTEL_NO_TURBO}"
    elif (read_text(CPUFREQ_BOOST) or "").strip() == "1":
        fix = f"echo 0 | sudo tee {CPUFREQ_BOOST}"
    else:
        return []
    return [
        Advisory(
            "warning",
            "turbo",
            f"Turbo boost is on, so clock speed follows temperature and load; disable it ({fix})",
        ),
    ]


def _check_load(
    load_average: Callable[[], tuple[float, float, float]], cpus: int
) -> list[Advisory]:
    try:
        load1 = load_average()[0]
    except OSError:  # no load average on this platform
        return []
    if load1 <= MAX_LOAD_PER_CPU * cpus:
        return []
    return [
        Advisory(
            "warning",
            "load",
            f"1-minute load average is {load1:.2f} on {cpus} logical CPUs (above "
            f"{MAX_LOAD_PER_CPU} per CPU); stop other work or wait before benchmarking",
        ),
    ]


def _check_cpu_count(cpus: int) -> list[Advisory]:
    if cpus >= MIN_CPUS:
        return []
    return [
        Advisory(
            "warning",
            "cpu-count",
            f"Only {cpus} logical CPU: worker processes and the memory sampler compete for it; "
            f"use a machine with at least {MIN_CPUS}",
        ),
    ]


def _check_aslr(read_text: Callable[[str], str | None]) -> list[Advisory]:
    setting = (read_text(RANDOMIZE_VA_SPACE) or "").strip()
    if setting in {"", "0"}:
        return []
    return [
        Advisory(
            "info",
            "aslr",
            f"ASLR is on (randomize_va_space={setting}): memory layout differs per process, so "
            "use several worker processes per benchmark to average out that noise",
        ),
    ]


def _check_busy(cpu_percent: Callable[[], float]) -> list[Advisory]:
    busy = cpu_percent()
    if busy <= MAX_BUSY_PERCENT:
        return []
    return [
        Advisory(
            "warning",
            "cpu-busy",
            f"System CPU is {busy:.0f}% busy (above {MAX_BUSY_PERCENT:.0f}%); "
            "close other programs or wait before benchmarking",
        ),
    ]


def advisories(
    read_text: Callable[[str], str | None] = _read_text_or_none,
    load_average: Callable[[], tuple[float, float, float]] = psutil.getloadavg,
    cpu_count: Callable[[], int] = _logical_cpu_count,
    cpu_percent: Callable[[], float] = _cpu_busy_percent,
) -> list[Advisory]:
    """Check the machine for timing noise, in the spirit of ``pyperf system show``.

    All I/O goes through the callables so each rule can be tested with fake files and numbers.
    """
    cpus = max(cpu_count(), 1)
    return [
        *_check_governor(read_text, cpus),
        *_check_turbo(read_text),
        *_check_load(load_average, cpus),
        *_check_cpu_count(cpus),
        *_check_aslr(read_text),
        *_check_busy(cpu_percent),
    ]


def busy_machine_warnings(
    load_average: Callable[[], tuple[float, float, float]] = psutil.getloadavg,
    cpu_count: Callable[[], int] = _logical_cpu_count,
    cpu_percent: Callable[[], float] = _cpu_busy_percent,
) -> list[str]:
    """The checks of `benchtrack check` that say the machine is busy right now (load, CPU use)."""
    cpus = max(cpu_count(), 1)
    return [a.message for a in (*_check_load(load_average, cpus), *_check_busy(cpu_percent))]
