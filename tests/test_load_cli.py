"""`benchtrack load` end to end against real aiohttp servers on 127.0.0.1 (separate processes, so
--monitor-pid watches a real other process), logged to a real SQLite MLflow store, and the
pre-fix / post-fix comparison through `benchtrack compare`. Traffic is bounded: 20 requests/s
for a few seconds per run."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import Invoked, assert_one_error_line, fresh_store_uri, invoke_cli, mlflow_client

pytestmark = pytest.mark.slow

LEAK_PER_REQUEST_KB = 200
SERVER = textwrap.dedent(f"""
    import asyncio, socket, sys
    from aiohttp import web

    MODE = sys.argv[1]  # healthy: answers at once; leaky: keeps {LEAK_PER_REQUEST_KB} KB per request,
    HOARD, COUNT = [], [0]  # sleeps 30 ms, and answers 500 to every 5th request

    async def work(request):
        COUNT[0] += 1
        if MODE == "leaky":
            HOARD.append(b"\\x01" * ({LEAK_PER_REQUEST_KB} * 1024))  # touched, so RSS grows
            await asyncio.sleep(0.03)
            if COUNT[0] % 5 == 0:
                return web.Response(status=500, text="boom")
        return web.Response(text="ok")

    async def main():
        app = web.Application()
        app.router.add_get("/work", work)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        print(sock.getsockname()[1], flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
""")


@dataclass(frozen=True)
class Server:
    pid: int
    url: str


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    script = tmp_path_factory.mktemp("servers") / "server.py"
    script.write_text(SERVER, encoding="utf-8")
    started: dict[str, subprocess.Popen[str]] = {}
    try:
        for mode in ("leaky", "healthy"):
            started[mode] = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, text=True)
        found = {}
        for mode, process in started.items():
            assert process.stdout is not None
            port = int(process.stdout.readline())
            found[mode] = Server(process.pid, f"http://127.0.0.1:{port}/work")
        yield found
    finally:
        for process in started.values():
            process.kill()
            process.wait()
            if process.stdout is not None:
                process.stdout.close()


@dataclass(frozen=True)
class LoadRuns:
    store_uri: str
    pre: Invoked
    post: Invoked
    pre_file: Path
    post_file: Path


@pytest.fixture(scope="module")
def runs(servers: dict[str, Server], store_template: Path, tmp_path_factory: pytest.TempPathFactory) -> LoadRuns:
    """The pre-fix run (leaky server) and the post-fix run (healthy server), each 6 s at 20/s, logged."""
    folder = tmp_path_factory.mktemp("load-runs")
    uri = fresh_store_uri(store_template, folder / "store")
    common = ["--rate", "20", "--duration", "6", "--warmup", "1", "--interval", "0.25", "--tracking-uri", uri,
              "--format", "json"]
    pre = invoke_cli(["load", servers["leaky"].url, "--monitor-pid", servers["leaky"].pid, "--alert-growth", "5",
                      "--tag", "pre-fix", "--output", folder / "pre.json", *common])
    post = invoke_cli(["load", servers["healthy"].url, "--monitor-pid", servers["healthy"].pid, "--tag", "post-fix",
                       "--output", folder / "post.json", *common])
    return LoadRuns(uri, pre, post, folder / "pre.json", folder / "post.json")


# --- the leaking, failing service --------------------------------------------------------------


def test_leaking_service_fails_the_criteria_with_a_growth_alert(runs: LoadRuns) -> None:
    assert runs.pre.exception is None, runs.pre
    assert runs.pre.exit_code == 1, runs.pre
    document = json.loads(runs.pre.stdout)
    memory = document["memory"]
    assert memory["leak"]["detected"], memory["leak"]["reasons"]
    # ~20 requests/s x 200 KB = ~235 MB/min (less the requests in flight); the slope must say so
    assert 80 < memory["leak"]["slope_mb_per_min"] < 400
    assert memory["end_mb"] - memory["start_mb"] > 15
    assert [a["kind"] for a in document["alerts"]] == ["growth"]
    assert "benchtrack: alert at" in runs.pre.stderr
    assert "memory growth" in runs.pre.stderr
    criteria = {c["name"]: c["held"] for c in document["criteria"]["criteria"]}
    assert criteria == {"memory_growth": False, "mean_response": True, "success_rate": False, "timeouts": True,
                        "peak_memory": False}
    assert document["criteria"] == {**document["criteria"], "passed": False, "met": 2, "of": 5}
    assert document["errors"].get("status_500", 0) > 0
    assert 0.75 <= document["success_rate"] <= 0.85


def test_healthy_service_passes(runs: LoadRuns) -> None:
    assert runs.post.exception is None, runs.post
    assert runs.post.exit_code == 0, runs.post
    document = json.loads(runs.post.stdout)
    assert document["success_rate"] == 1.0
    assert document["criteria"]["passed"]
    assert not document["memory"]["leak"]["detected"]
    assert document["cpu"]["samples"] > 5
    assert document["cpu"]["max_percent"] > 0


def test_json_has_exactly_the_documented_shape(runs: LoadRuns) -> None:
    document = json.loads(runs.post.stdout)
    assert document["schema"] == "benchtrack.load/1"
    for key, kind in (("requests", int), ("success_rate", float), ("timeouts", int), ("throughput_rps", float)):
        assert isinstance(document[key], kind), key
    assert set(document["latency_ms"]) == {"p50", "p90", "p95", "p99", "max", "mean"}
    assert all(isinstance(v, float) for v in document["latency_ms"].values())
    assert {"passed", "met", "of"} <= set(document["criteria"])
    # the memory object is exactly what `benchtrack watch --format json` prints
    assert document["memory"]["schema"] == "benchtrack.watch/1"
    assert {"samples", "start_mb", "end_mb", "peak_mb", "leak", "timeline"} <= set(document["memory"])
    assert document["tag"] == "post-fix"
    assert document["run_id"]
    assert 100 <= document["requests"] <= 110  # 20/s for the 5 s after warm-up
    assert json.loads(runs.post_file.read_text()) == document  # --output holds the same document


def test_each_run_is_logged_to_mlflow_with_steps_and_artifacts(runs: LoadRuns) -> None:
    client = mlflow_client(runs.store_uri)
    experiment = client.get_experiment_by_name("benchtrack/load")
    found = client.search_runs([experiment.experiment_id], "tags.`benchtrack.type` = 'load'")
    assert sorted(r.data.tags["benchtrack.load.tag"] for r in found) == ["post-fix", "pre-fix"]
    pre = next(r for r in found if r.data.tags["benchtrack.load.tag"] == "pre-fix")
    assert pre.data.tags["benchtrack.load.passed"] == "false"
    assert pre.data.tags["benchtrack.load.model"] == "open"
    assert pre.data.tags["benchtrack.load.base_url"].startswith("http://127.0.0.1:")
    assert pre.data.tags["benchtrack.machine.fingerprint"]
    throughput = client.get_metric_history(pre.info.run_id, "throughput_rps")
    assert len(throughput) >= 6
    assert sorted(m.step for m in throughput) == list(range(len(throughput)))
    memory = client.get_metric_history(pre.info.run_id, "memory_mb")
    assert len(memory) >= 20
    assert max(m.value for m in memory) - min(m.value for m in memory) > 15
    assert client.get_metric_history(pre.info.run_id, "p99_ms")
    assert client.get_metric_history(pre.info.run_id, "cpu_percent")
    assert pre.data.metrics["summary/requests"] == json.loads(runs.pre.stdout)["requests"]
    names = {Path(a.path).name for a in client.list_artifacts(pre.info.run_id, "benchtrack")}
    assert names == {"windows.csv", "memory.csv", "load.json", "latency.png", "memory.png"}


# --- pre-fix against post-fix ------------------------------------------------------------------


def test_compare_pre_and_post_fix_files(runs: LoadRuns, tmp_path: Path) -> None:
    chart = tmp_path / "compare.png"
    result = invoke_cli(["compare", runs.pre_file, runs.post_file, "--format", "json", "--chart", chart])
    assert result.exit_code == 0, result
    document = json.loads(result.stdout)
    assert document["schema"] == "benchtrack.load-compare/1"
    verdicts = {c["metric"]: c["verdict"] for c in document["comparisons"]}
    assert verdicts == {"latency_p50": "improvement", "latency_p95": "improvement", "latency_p99": "improvement",
                        "success_rate": "improvement", "memory_slope": "improvement"}
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    reverse = invoke_cli(["compare", runs.post_file, runs.pre_file])
    assert reverse.exit_code == 1, reverse
    assert "regression" in reverse.stdout
    assert "latency_p50" in reverse.stdout


def test_compare_load_run_ids_from_the_store(runs: LoadRuns) -> None:
    pre_id, post_id = json.loads(runs.pre.stdout)["run_id"], json.loads(runs.post.stdout)["run_id"]
    result = invoke_cli(["compare", post_id, pre_id, "--tracking-uri", runs.store_uri, "--format", "json"])
    assert result.exit_code == 1, result
    assert {c["verdict"] for c in json.loads(result.stdout)["comparisons"]} == {"regression"}


def test_a_load_file_against_a_benchmark_file_is_one_line(runs: LoadRuns, tmp_path: Path) -> None:
    other = tmp_path / "other.json"
    other.write_text('{"schema": "benchtrack.result/1"}')
    assert_one_error_line(invoke_cli(["compare", runs.pre_file, other]), "is a load run")


# --- scenario files, store failures, bad input -------------------------------------------------


def test_scenario_file_with_monitor_alerts_and_criteria(servers: dict[str, Server], tmp_path: Path) -> None:
    healthy = servers["healthy"]
    port = healthy.url.split(":")[2].split("/")[0]
    scenario = tmp_path / "steady.toml"
    scenario.write_text(textwrap.dedent(f"""
        schema = "benchtrack.scenario/1"
        name = "steady"
        base_url = "http://127.0.0.1:{port}"
        duration = "3s"
        [model]
        kind = "closed"
        users = 2
        think = "100ms"
        [[endpoints]]
        path = "/work"
        [monitor]
        pid = {healthy.pid}
        interval = "250ms"
        [alerts]
        memory_mb = 1
        [criteria]
        growth_mb_per_hour = 100000
        peak_memory_ratio = 3
        required = 5
    """))
    result = invoke_cli(["load", scenario, "--no-track", "--format", "json"])
    assert result.exit_code == 0, result
    document = json.loads(result.stdout)
    assert document["scenario"] == "steady"
    assert document["model"] == "closed"
    assert document["criteria"]["required"] == 5
    assert document["criteria"]["met"] == 5
    assert [c["threshold"] for c in document["criteria"]["criteria"] if c["name"] == "peak_memory"] == [3]
    assert [a["kind"] for a in document["alerts"]] == ["memory"]  # fired once, at the first sample
    assert document["run_id"] is None


def test_store_failure_keeps_the_document(servers: dict[str, Server], chdir_tmp: Path) -> None:
    (chdir_tmp / "broken.db").write_bytes(b"not a database!\n" * 300)
    result = invoke_cli(["load", servers["healthy"].url, "--rate", "5", "--duration", "1",
                         "--tracking-uri", f"sqlite:///{chdir_tmp / 'broken.db'}"])
    assert result.exit_code == 2, result
    assert len(result.error_lines) == 1, result
    assert "kept in" in result.error_lines[0], result
    kept = list((chdir_tmp / ".benchtrack" / "unsaved").glob("load-*.json"))
    assert len(kept) == 1
    assert json.loads(kept[0].read_text())["schema"] == "benchtrack.load/1"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(("args", "fragments"), [
    (["ftp://127.0.0.1/x"], ("invalid URL",)),
    (["notes.txt"], ("neither a URL",)),
    (["{url}", "--monitor-pid", "999999999"], ("no such process",)),
    (["{url}", "--tag", "later"], ("--tag",)),
    (["{url}", "--rate", "5", "--users", "2"], ("either --rate",)),
    (["{url}", "--monitor-pid", "1", "--monitor-cgroup", "x"], ("at most one target",)),
    (["{url}", "--duration", "soon"], ("--duration", "invalid duration")),
    (["missing.toml"], ("missing.toml",)),
])
def test_bad_input_is_one_line(servers: dict[str, Server], args: list[str], fragments: tuple[str, ...],
                               chdir_tmp: Path) -> None:
    argv: list[Any] = ["load", *(a.format(url=servers["healthy"].url) for a in args), "--no-track"]
    assert_one_error_line(invoke_cli(argv), *fragments)


def test_unreachable_service_is_one_line_before_any_load(chdir_tmp: Path) -> None:
    port = _closed_port()
    line = assert_one_error_line(invoke_cli(["load", f"http://127.0.0.1:{port}/", "--no-track"]), "cannot reach")
    assert str(port) in line


def test_scenario_mistake_names_file_and_key(tmp_path: Path) -> None:
    scenario = tmp_path / "bad.toml"
    scenario.write_text('schema = "benchtrack.scenario/1"\nname = "x"\nbase_url = "http://127.0.0.1:1"\n'
                        'duration = 5\nrps = 3\n[model]\nkind = "open"\nrate = 1\n[[endpoints]]\npath = "/"\n')
    assert_one_error_line(invoke_cli(["load", scenario, "--no-track"]), "bad.toml", "rps")


@pytest.mark.slow
def test_the_example_scenario_runs_from_the_repository_and_finds_its_leak(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "benchtrack", "load", "experiments/load/checkout.toml", "--duration", "14s",
                           "--warmup", "2s", "--no-track", "--format", "json"], cwd=root, capture_output=True, text=True,
                          check=False, timeout=180,
                          env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert done.returncode in (0, 1), done.stderr
    document = json.loads(done.stdout)
    assert document["schema"] == "benchtrack.load/1"
    assert document["success_rate"] == 1.0
    assert document["memory"]["leak"]["detected"], document["memory"]
    assert any("memory growth" in line for line in done.stderr.splitlines()), done.stderr  # the growth alert fired


def test_alerts_of_the_levels_file_apply_and_the_command_line_wins(servers: dict[str, Server], chdir_tmp: Path) -> None:
    (chdir_tmp / "experiments").mkdir()
    (chdir_tmp / "experiments" / "levels.toml").write_text(
        'schema = "benchtrack.levels/1"\n[load.alerts]\ngrowth_mb_per_min = 5\nmemory_mb = 100000\n', encoding="utf-8")
    common = ["load", servers["leaky"].url, "--monitor-pid", servers["leaky"].pid, "--rate", "20", "--duration", "4",
              "--interval", "0.25", "--no-track", "--format", "json"]
    from_file = json.loads(invoke_cli(common).stdout)
    assert [a["kind"] for a in from_file["alerts"]] == ["growth"], from_file["alerts"]
    overridden = json.loads(invoke_cli([*common, "--alert-growth", "100000"]).stdout)
    assert overridden["alerts"] == []

    (chdir_tmp / "experiments" / "levels.toml").write_text(
        'schema = "benchtrack.levels/1"\n[load.alerts]\ngrowth = 5\n', encoding="utf-8")
    assert_one_error_line(invoke_cli(common), "load.alerts", "growth")
