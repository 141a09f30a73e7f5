"""Plain helpers shared by the tests (fixtures live in conftest.py and wrap these).

Stores are real SQLite MLflow stores. Creating MLflow's schema on a fresh file costs 4-8 s, so
conftest creates one schema per session (with MlflowStore itself, exactly as a user's first run
does) and each test that needs a fresh store gets a byte copy of that empty database: a fresh,
independent, real store for ~0.05 s. The fresh-file path itself (the schema lock) is tested
without the copy in test_tracking.py.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

ERROR_PREFIX = "benchtrack: error:"

TINY_LEVELS = """\
schema = "benchtrack.levels/1"

[levels.quick]
processes = {processes}
samples = {samples}
warmups = 0
min_sample_time = 0.001
timeout = 60
"""


def levels_toml(processes: int = 2, samples: int = 3, extra: str = "") -> str:
    return TINY_LEVELS.format(processes=processes, samples=samples) + extra


def write_bench_folder(folder: Path, files: Mapping[str, str], levels: str | None = None) -> Path:
    """Write bench files (relative name -> source, dedented) and a levels.toml into folder.

    levels=None writes the tiny default level (quick: 2 processes x 3 samples, no warm-up,
    min_sample_time 1 ms); levels="" writes no levels.toml at all.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for name, source in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
    if levels != "":
        (folder / "levels.toml").write_text(levels_toml() if levels is None else levels, encoding="utf-8")
    return folder


# --- CLI ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invoked:
    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith(ERROR_PREFIX)]

    def __str__(self) -> str:  # shown by pytest when an assertion on the result fails
        return (f"exit {self.exit_code}, exception {self.exception!r}\n--- stdout\n{self.stdout}"
                f"--- stderr\n{self.stderr}")


def invoke_cli(args: Sequence[str | os.PathLike[str]], env: Mapping[str, str] | None = None) -> Invoked:
    """Run the typer app in-process; stdout and stderr come back separately (click >= 8.2)."""
    from benchtrack.cli import app

    result = CliRunner().invoke(app, [str(a) for a in args], env=dict(env or {}))
    exception = None if isinstance(result.exception, SystemExit) else result.exception
    return Invoked(result.exit_code, result.stdout, result.stderr, exception)


def assert_one_error_line(result: Invoked, *fragments: str) -> str:
    """Exit 2, exactly one 'benchtrack: error:' line on stderr holding every fragment, no traceback."""
    assert result.exception is None, result
    assert result.exit_code == 2, result
    assert len(result.error_lines) == 1, result
    assert "Traceback" not in result.stderr + result.stdout, result
    line = result.error_lines[0]
    for fragment in fragments:
        assert fragment in line, result
    return line


# --- MLflow stores -----------------------------------------------------------------------------


def sqlite_uri(path: Path) -> str:
    return f"sqlite:///{path}"


def fresh_store_uri(template: Path, folder: Path) -> str:
    """A new, independent store in folder: a byte copy of the empty template database."""
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "mlflow.db"
    shutil.copyfile(template, db)
    return sqlite_uri(db)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on at the moment."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def mlflow_client(uri: str) -> Any:
    assert uri.startswith(("sqlite:///", "http")), "always name the store explicitly"
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def child_runs(client: Any, suite: str) -> dict[str, Any]:
    """Benchmark child runs of the experiment benchtrack/<suite>, by benchmark name."""
    experiment = client.get_experiment_by_name(f"benchtrack/{suite}")
    if experiment is None:
        return {}
    runs = client.search_runs([experiment.experiment_id], "tags.`benchtrack.type` = 'benchmark'", max_results=1000)
    return {run.data.tags["benchtrack.benchmark"]: run for run in runs}


def parent_runs(client: Any, suite: str) -> list[Any]:
    experiment = client.get_experiment_by_name(f"benchtrack/{suite}")
    if experiment is None:
        return []
    return list(client.search_runs([experiment.experiment_id], "tags.`benchtrack.type` = 'invocation'"))


# --- git ---------------------------------------------------------------------------------------


def isolated_git_env(ceiling: Path) -> dict[str, str]:
    """Environment for git that ignores the user's config and any repository above ceiling."""
    env = {k: v for k, v in os.environ.items() if k not in {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"}}
    return env | {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_CEILING_DIRECTORIES": str(ceiling)}


def make_git_repo(folder: Path) -> str:
    """git init + one commit of everything in folder; returns the commit hash."""
    env = isolated_git_env(folder.parent)

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-c", "user.email=t@example.invalid", "-c", "user.name=t", "-c", "commit.gpgsign=false", *args],
            cwd=folder, env=env, capture_output=True, text=True, check=True,
        )
        return done.stdout.strip()

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("commit", "-q", "-m", "benchmarks")
    return git("rev-parse", "HEAD")
