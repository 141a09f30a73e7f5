"""Tests of benchtrack.probes.environment: git state, machine facts and noisy-machine advisories."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

from benchtrack.probes import environment
from benchtrack.probes.environment import (
    BENCHTRACK_TAG_PREFIX,
    GIT_COMMIT_TAG,
    Advisory,
    GitInfo,
    advisories,
    collect_metadata,
    cpu_model,
    git_info,
    machine_fingerprint,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cr3t-value-xyz"  # noqa: S105 - planted fake, to prove env vars are not recorded
NO_GIT = GitInfo(commit=None, branch=None, dirty=None)


# --- git ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # The user's git config (signing, hooks, default branch) and a parent repository above
    # tmp_path must not change what these tests see.
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", os.devnull)
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"):
        monkeypatch.delenv(name, raising=False)


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    (path / "bench.py").write_text("x = 1\n")
    _git(path, "add", "bench.py")
    _git(path, "commit", "-q", "-m", "first")
    return path


def test_git_info_clean_repo(repo: Path) -> None:
    assert git_info(repo) == GitInfo(
        commit=_git(repo, "rev-parse", "HEAD"), branch="main", dirty=False
    )


def test_git_info_from_a_subfolder(repo: Path) -> None:
    (repo / "sub").mkdir()
    assert git_info(repo / "sub").commit == _git(repo, "rev-parse", "HEAD")


def test_untracked_files_do_not_make_it_dirty(repo: Path) -> None:
    (repo / "notes.txt").write_text("scratch\n")
    assert git_info(repo).dirty is False


def test_modified_tracked_file_is_dirty(repo: Path) -> None:
    (repo / "bench.py").write_text("x = 2\n")
    assert git_info(repo).dirty is True


def test_staged_file_is_dirty(repo: Path) -> None:
    (repo / "new.py").write_text("y = 1\n")
    _git(repo, "add", "new.py")
    assert git_info(repo).dirty is True


def test_detached_head_has_no_branch(repo: Path) -> None:
    _git(repo, "checkout", "-q", "--detach")
    info = git_info(repo)
    assert info.branch is None
    assert info.commit == _git(repo, "rev-parse", "HEAD")


def test_repo_without_commits_has_branch_but_no_commit(tmp_path: Path) -> None:
    _git(tmp_path, "init", "-q", "-b", "trunk")
    assert git_info(tmp_path) == GitInfo(commit=None, branch="trunk", dirty=False)


def test_not_a_repo(tmp_path: Path) -> None:
    assert git_info(tmp_path) == NO_GIT


def test_missing_folder(tmp_path: Path) -> None:
    assert git_info(tmp_path / "nope") == NO_GIT


def test_missing_git_binary(repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert git_info(repo) == NO_GIT


def test_git_timeout_gives_unknown(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def hang(*_args: object, **_kwargs: object) -> subprocess.CompletedProcess[str]:
        raise subprocess.TimeoutExpired(cmd="git", timeout=10)

    monkeypatch.setattr(subprocess, "run", hang)
    assert git_info(repo) == NO_GIT


def test_git_dir_from_a_hook_does_not_redirect(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    _git(other, "init", "-q", "-b", "other")
    monkeypatch.setenv("GIT_DIR", str(other / ".git"))
    assert git_info(repo).branch == "main"


# --- machine facts -----------------------------------------------------------------------------


def test_cpu_model_reads_proc_cpuinfo() -> None:
    cpuinfo = "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Fake CPU @ 3.00GHz \n"
    assert cpu_model({"/proc/cpuinfo": cpuinfo}.get) == "Fake CPU @ 3.00GHz"


def test_cpu_model_falls_back_to_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "processor", lambda: "arm")
    assert cpu_model({"/proc/cpuinfo": "processor : 0\nBogoMIPS : 48\n"}.get) == "arm"
    monkeypatch.setattr(platform, "processor", lambda: "")
    assert cpu_model(lambda _path: None) == "unknown"


def test_fingerprint_is_16_hex_and_stable() -> None:
    first = machine_fingerprint()
    assert re.fullmatch(r"[0-9a-f]{16}", first)
    assert machine_fingerprint() == first


def test_fingerprint_is_stable_across_processes() -> None:
    code = "from benchtrack.probes.environment import machine_fingerprint as f; print(f())"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == machine_fingerprint()


def test_module_imports_no_heavy_dependencies() -> None:
    # Worker processes import this module; mlflow, typer and numpy belong to other layers.
    code = (
        "import sys, benchtrack.probes.environment; "
        "print(sorted({'mlflow', 'typer', 'numpy'} & set(sys.modules)))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_fingerprint_ignores_host_user_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    before = machine_fingerprint()
    monkeypatch.setattr(platform, "node", lambda: "another-host")
    monkeypatch.setenv("USER", "someone-else")
    monkeypatch.setenv("BENCHTRACK_TEST_SECRET", SECRET)
    assert machine_fingerprint() == before


def test_fingerprint_changes_with_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    before = machine_fingerprint()
    monkeypatch.setattr(environment, "cpu_model", lambda: "A Different CPU")
    assert machine_fingerprint() != before


def test_fingerprint_ignores_kernel_patch_release(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "release", lambda: "6.8.0-45-generic")
    before = machine_fingerprint()
    monkeypatch.setattr(platform, "release", lambda: "6.8.12-51-generic")
    assert machine_fingerprint() == before
    monkeypatch.setattr(platform, "release", lambda: "6.9.1")
    assert machine_fingerprint() != before


# --- metadata ----------------------------------------------------------------------------------

EXPECTED_KEYS = {
    f"{BENCHTRACK_TAG_PREFIX}{name}"
    for name in (
        "git.branch",
        "git.dirty",
        "python.version",
        "python.implementation",
        "python.build",
        "cpu.model",
        "cpu.count",
        "cpu.physical",
        "memory.total_gib",
        "os",
        "version",
        "machine.fingerprint",
    )
}


def test_metadata_in_a_repo(repo: Path) -> None:
    tags = collect_metadata(repo)
    assert set(tags) == EXPECTED_KEYS | {GIT_COMMIT_TAG}
    assert all(isinstance(value, str) and value for value in tags.values())
    assert tags[GIT_COMMIT_TAG] == _git(repo, "rev-parse", "HEAD")
    assert tags["benchtrack.git.branch"] == "main"
    assert tags["benchtrack.git.dirty"] == "false"
    assert tags["benchtrack.python.version"] == platform.python_version()
    assert tags["benchtrack.cpu.count"] == str(os.cpu_count())
    assert tags["benchtrack.machine.fingerprint"] == machine_fingerprint()
    float(tags["benchtrack.memory.total_gib"])


def test_metadata_outside_a_repo(tmp_path: Path) -> None:
    tags = collect_metadata(tmp_path)
    assert set(tags) == EXPECTED_KEYS
    assert tags["benchtrack.git.dirty"] == "unknown"
    assert tags["benchtrack.git.branch"] == "unknown"


def test_metadata_dirty_repo(repo: Path) -> None:
    (repo / "bench.py").write_text("x = 3\n")
    assert collect_metadata(repo)["benchtrack.git.dirty"] == "true"


def test_metadata_records_no_secrets_hosts_or_users(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BENCHTRACK_TEST_SECRET", SECRET)
    values = collect_metadata(repo).values()
    assert not any(SECRET in value for value in values)
    identities = {platform.node(), os.environ.get("USER", ""), os.environ.get("HOME", "")}
    assert not {value for value in values if len(value) > 3} & identities


def test_version_prefers_the_package_attribute(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("benchtrack")
    fake.__version__ = "9.8.7"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "benchtrack", fake)
    assert environment._benchtrack_version() == "9.8.7"


def test_version_unknown_when_nothing_says(monkeypatch: pytest.MonkeyPatch) -> None:
    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setitem(sys.modules, "benchtrack", types.ModuleType("benchtrack"))
    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert environment._benchtrack_version() == "unknown"


# --- advisories --------------------------------------------------------------------------------

CPU = "/sys/devices/system/cpu"
QUIET_FILES = {
    f"{CPU}/cpu0/cpufreq/scaling_governor": "performance\n",
    f"{CPU}/cpu1/cpufreq/scaling_governor": "performance\n",
    f"{CPU}/intel_pstate/no_turbo": "1\n",
    "/proc/sys/kernel/randomize_va_space": "0\n",
}


def _advise(
    files: dict[str, str] | None = None,
    *,
    load: float = 0.0,
    cpus: int = 2,
    busy: float = 0.0,
) -> list[Advisory]:
    contents = QUIET_FILES if files is None else files
    return advisories(
        read_text=contents.get,
        load_average=lambda: (load, load, load),
        cpu_count=lambda: cpus,
        cpu_percent=lambda: busy,
    )


def _only(found: list[Advisory], check: str) -> Advisory:
    matching = [advisory for advisory in found if advisory.check == check]
    assert len(matching) == 1, found
    return matching[0]


def _checks(found: list[Advisory]) -> set[str]:
    return {advisory.check for advisory in found}


def test_quiet_machine_has_no_advisories() -> None:
    assert _advise() == []


def test_governor_not_performance_warns() -> None:
    files = QUIET_FILES | {f"{CPU}/cpu1/cpufreq/scaling_governor": "powersave\n"}
    advisory = _only(_advise(files), "cpu-governor")
    assert advisory.severity == "warning"
    assert "powersave" in advisory.message
    assert "1 of 2" in advisory.message


def test_governor_files_absent_is_info() -> None:
    files = {k: v for k, v in QUIET_FILES.items() if "scaling_governor" not in k}
    advisory = _only(_advise(files), "cpu-governor")
    assert advisory.severity == "info"
    assert "can't be checked" in advisory.message


@pytest.mark.parametrize(
    ("path", "value", "warns"),
    [
        (f"{CPU}/intel_pstate/no_turbo", "0\n", True),
        (f"{CPU}/intel_pstate/no_turbo", "1\n", False),
        (f"{CPU}/cpufreq/boost", "1\n", True),
        (f"{CPU}/cpufreq/boost", "0\n", False),
    ],
)
def test_turbo(path: str, value: str, *, warns: bool) -> None:
    files = {k: v for k, v in QUIET_FILES.items() if "no_turbo" not in k} | {path: value}
    found = _advise(files)
    assert ("turbo" in _checks(found)) is warns
    if warns:
        assert _only(found, "turbo").severity == "warning"


def test_no_turbo_files_no_turbo_advisory() -> None:
    files = {k: v for k, v in QUIET_FILES.items() if "no_turbo" not in k}
    assert "turbo" not in _checks(_advise(files))


def test_high_load_warns_with_the_numbers() -> None:
    advisory = _only(_advise(load=2.1, cpus=4), "load")
    assert advisory.severity == "warning"
    assert "2.10" in advisory.message
    assert "4 logical CPUs" in advisory.message


def test_load_at_the_threshold_is_fine() -> None:
    assert "load" not in _checks(_advise(load=2.0, cpus=4))


def test_load_average_unavailable_is_skipped() -> None:
    def unavailable() -> tuple[float, float, float]:
        raise OSError

    found = advisories(
        read_text=QUIET_FILES.get,
        load_average=unavailable,
        cpu_count=lambda: 2,
        cpu_percent=lambda: 0.0,
    )
    assert found == []


def test_single_cpu_warns() -> None:
    assert _only(_advise(cpus=1), "cpu-count").severity == "warning"
    assert "cpu-count" not in _checks(_advise(cpus=2))


@pytest.mark.parametrize(("setting", "advises"), [("2\n", True), ("1", True), ("0\n", False)])
def test_aslr(setting: str, *, advises: bool) -> None:
    found = _advise(QUIET_FILES | {"/proc/sys/kernel/randomize_va_space": setting})
    assert ("aslr" in _checks(found)) is advises
    if advises:
        advisory = _only(found, "aslr")
        assert advisory.severity == "info"
        assert "memory layout" in advisory.message


def test_aslr_unknown_platform_is_silent() -> None:
    files = {k: v for k, v in QUIET_FILES.items() if "randomize" not in k}
    assert "aslr" not in _checks(_advise(files))


def test_busy_cpu_warns() -> None:
    advisory = _only(_advise(busy=35.0), "cpu-busy")
    assert advisory.severity == "warning"
    assert "35%" in advisory.message
    assert "cpu-busy" not in _checks(_advise(busy=20.0))


def test_noisy_machine_messages_are_single_lines() -> None:
    files = {
        f"{CPU}/cpu0/cpufreq/scaling_governor": "ondemand\n",
        f"{CPU}/cpufreq/boost": "1\n",
        "/proc/sys/kernel/randomize_va_space": "2\n",
    }
    found = _advise(files, load=5.0, cpus=1, busy=90.0)
    assert _checks(found) == {"cpu-governor", "turbo", "load", "cpu-count", "aslr", "cpu-busy"}
    for advisory in found:
        assert advisory.severity in {"warning", "info"}
        assert advisory.message
        assert "\n" not in advisory.message


def test_real_machine_returns_advisories() -> None:
    found = advisories()
    assert isinstance(found, list)
    assert all(isinstance(advisory, Advisory) for advisory in found)
