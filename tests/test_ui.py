"""`benchtrack ui`: the MLflow UI a person opens on a store `benchtrack run` filled.

Real parts throughout: a real store filled by a real `benchtrack run`, `benchtrack ui` as a real
subprocess (with mlflow and its workers under it), and the React app in headless Chromium.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
from browser_support import browser_page
from support import (
    assert_one_error_line,
    child_runs,
    free_port,
    fresh_store_uri,
    invoke_cli,
    mlflow_client,
    parent_runs,
    write_bench_folder,
)

from benchtrack.tracking.ui_server import group_members

pytestmark = pytest.mark.slow

SUITE = "uisuite"
BENCH = """
    from benchtrack import benchmark


    @benchmark
    def add():
        return sum(range(200))


    @benchmark(kind="memory")
    def alloc():
        return len(bytearray(2**20))
"""
READY_TIMEOUT_S = 240.0  # mlflow's first start on a busy 2-core machine
UI_TIMEOUT_MS = 90_000


@dataclass(frozen=True)
class FilledStore:
    uri: str
    folder: Path


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory, store_template: Path) -> FilledStore:
    tmp = tmp_path_factory.mktemp("ui")
    bench = write_bench_folder(tmp / SUITE, {"bench_ui.py": BENCH},
                               levels='schema = "benchtrack.levels/1"\n[levels.quick]\nprocesses = 2\nsamples = 3\n'
                                      'warmups = 0\nmin_sample_time = 0.001\n')
    uri = fresh_store_uri(store_template, tmp / "store")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(tmp)
        done = invoke_cli(["run", bench, "--tracking-uri", uri])
    assert done.exit_code == 0, done
    return FilledStore(uri, tmp)


class Output:
    """Everything a process writes to one stream, read by a thread (no pipe ever fills)."""

    def __init__(self, stream: Any) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self._thread.start()

    def text(self) -> str:
        self._thread.join(timeout=60)
        return "".join(self.lines)


@dataclass
class RunningUi:
    process: subprocess.Popen[str]
    out: Output
    err: Output
    url: str
    tree: list[psutil.Process]  # every process under `benchtrack ui` once it answered
    groups: set[int]

    def stop(self, signum: int) -> tuple[str, str]:
        self.process.send_signal(signum)
        self.process.wait(timeout=120)
        return self.out.text(), self.err.text()


def _answers(url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url + "/health", timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def running_ui(uri: str, cwd: Path) -> Iterator[RunningUi]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([sys.executable, "-m", "benchtrack", "ui", "--tracking-uri", uri, "--port", str(port)],
                               cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "NO_PROXY": "*"})
    out, err = Output(process.stdout), Output(process.stderr)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not err.lines:  # the URL is printed once the server answers, not before
            assert process.poll() is None, err.text()
            assert time.monotonic() < deadline, "benchtrack ui never printed its URL"
            time.sleep(0.3)
        assert _answers(url), err.lines
        tree = psutil.Process(process.pid).children(recursive=True)
        assert tree, "mlflow runs under benchtrack ui"
        groups = {os.getpgid(p.pid) for p in tree}
        assert process.pid not in groups  # the server has a group of its own, stopped as a whole
        yield RunningUi(process, out, err, url, tree, groups)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
        for output, stream in ((out, process.stdout), (err, process.stderr)):
            output.text()
            if stream is not None:
                stream.close()


def _survivors(ui: RunningUi) -> list[str]:
    alive = []
    for p in ui.tree:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(f"{p.pid} {' '.join(p.cmdline())[:120]}")
        except psutil.NoSuchProcess:
            continue
    return alive + [f"group {g}: {group_members(g)}" for g in ui.groups if group_members(g)]


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ui_stops_with_nothing_left_behind(filled: FilledStore, signum: int) -> None:
    with running_ui(filled.uri, filled.folder) as ui:
        assert len(ui.tree) >= 2  # mlflow and at least one worker: stopping only the first would orphan them
        out, err = ui.stop(signum)
        assert ui.process.returncode == 0, err
        assert "Traceback" not in out + err
        assert err.splitlines() == [f"MLflow UI for {filled.uri} at {ui.url} (Ctrl+C to stop)"]
        assert _survivors(ui) == []


def test_port_in_use_is_one_line(filled: FilledStore) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = invoke_cli(["ui", "--tracking-uri", filled.uri, "--port", port])
    assert_one_error_line(result, f"127.0.0.1:{port}", "choose another --port")


@pytest.mark.parametrize("port", [0, 70000])
def test_port_out_of_range_is_one_line(filled: FilledStore, port: int) -> None:
    assert_one_error_line(invoke_cli(["ui", "--tracking-uri", filled.uri, "--port", port]), f"port {port} is out of range")


def test_a_server_that_cannot_start_is_one_line(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    db.write_text("not a database\n" * 100, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "benchtrack", "ui", "--tracking-uri", f"sqlite:///{db}",
                           "--port", str(free_port())], check=False, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("benchtrack: error: the MLflow UI did not start"), line


# --- what a person sees in the browser -----------------------------------------------------------


def _machine_learning_view(page: Any, url: str, experiment_id: str) -> None:
    """MLflow 3 opens in its GenAI view; the README has people switch to "Model training"."""
    page.goto(f"{url}/#/experiments/{experiment_id}/runs", timeout=UI_TIMEOUT_MS)
    page.get_by_text("Model training", exact=True).click(timeout=UI_TIMEOUT_MS)
    page.goto(f"{url}/#/experiments/{experiment_id}/runs", timeout=UI_TIMEOUT_MS)


def test_the_ui_shows_runs_charts_and_reports(filled: FilledStore, tmp_path: Path) -> None:
    client = mlflow_client(filled.uri)
    experiment_id = client.get_experiment_by_name(f"benchtrack/{SUITE}").experiment_id
    (parent,) = parent_runs(client, SUITE)
    add = child_runs(client, SUITE)["add"]
    report = Path(client.download_artifacts(parent.info.run_id, "benchtrack/report.md", str(tmp_path / "artifacts")))
    report_line = next(line.strip("# ") for line in report.read_text(encoding="utf-8").splitlines() if line.strip("# "))
    with running_ui(filled.uri, filled.folder) as ui, browser_page() as (page, errors):
        _machine_learning_view(page, ui.url, experiment_id)
        page.get_by_text(parent.info.run_name, exact=True).first.wait_for(timeout=UI_TIMEOUT_MS)
        page.get_by_text("2 matching runs").or_(page.get_by_text("3 matching runs")).first.wait_for(timeout=UI_TIMEOUT_MS)
        page.screenshot(path=tmp_path / "runs.png")

        page.goto(f"{ui.url}/#/experiments/{experiment_id}/runs/{add.info.run_id}/model-metrics", timeout=UI_TIMEOUT_MS)
        page.get_by_text("wall_s", exact=True).first.wait_for(timeout=UI_TIMEOUT_MS)
        page.screenshot(path=tmp_path / "run-metrics.png")
        body = page.inner_text("body")
        lines = [line.strip() for line in body.splitlines()]
        # a section's heading is followed by its chart count, "(2)"
        sections = [line for line, after in itertools.pairwise(lines) if re.fullmatch(r"\(\d+\)", after)]
        # time first, then memory, GC, the worker process; the summaries after every per-sample chart
        assert sections == ["1 time", "2 memory", "3 gc", "4 process", "summary", "Model metrics"], sections
        first_section = lines[lines.index("1 time"):lines.index("2 memory")]
        assert [line for line in first_section if line.endswith("_s")] == ["cpu_s", "wall_s"], first_section
        assert "anomaly." not in body
        assert "history." not in body

        page.goto(f"{ui.url}/#/experiments/{experiment_id}/runs/{parent.info.run_id}/artifacts", timeout=UI_TIMEOUT_MS)
        page.get_by_text("benchtrack", exact=True).first.click(timeout=UI_TIMEOUT_MS)
        page.get_by_text("report.md", exact=True).first.click(timeout=UI_TIMEOUT_MS)
        page.get_by_text(report_line, exact=False).first.wait_for(timeout=UI_TIMEOUT_MS)
        page.screenshot(path=tmp_path / "parent-artifacts.png")
        for name in ("report.html", "report.json"):
            assert page.get_by_text(name, exact=True).count() >= 1, name
    assert not [e for e in errors if e.startswith("uncaught")], errors
    assert json.loads(add.data.tags["benchtrack.features"])["v"] == 1
