"""The scaling runner (benchtrack.load.scaling) against a real aiohttp server whose memory per
request in flight is known (tests/scaling_server.py): 2 MiB per closed-model user."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import psutil
import pytest
from support import free_port, fresh_store_uri, invoke_cli, mlflow_client

from benchtrack.analysis.scaling import fit_scaling
from benchtrack.load.result import LatencySummary, LoadResult
from benchtrack.load.scaling import ScalingLevel, ScalingResult, level_scenario, monitor_target, run_scaling, scaling_document
from benchtrack.load.scenario import MonitorSpec, Scenario, ScenarioError, load_scenario, parse_scenario
from benchtrack.probes.targets import MemoryTarget

SERVER = Path(__file__).with_name("scaling_server.py")
HOLD_MB = 2.0


def _scenario_file(tmp_path: Path, port: int, *, levels: str = "[5, 10, 20, 40]", restart: bool = False,
                   settle: str = "1s", window: str = "2s", monitored: bool = True) -> Path:
    command = json.dumps([sys.executable, str(SERVER), str(port), str(HOLD_MB), "0.5"])
    monitor = f'[monitor]\ncommand = {command}\ninterval = "200ms"\n' if monitored else ""
    path = tmp_path / "scaling.toml"
    path.write_text(f"""
schema = "benchtrack.scenario/1"
name = "hold"
base_url = "http://127.0.0.1:{port}"
duration = "10s"
timeout = "5s"

[model]
kind = "closed"
users = 5
think = 0

[[endpoints]]
path = "/hold"

{monitor}
[scaling]
levels = {levels}
settle = "{settle}"
window = "{window}"
restart = {"true" if restart else "false"}
reset_check = true
""", encoding="utf-8")
    return path


@pytest.mark.slow
def test_memory_per_user_is_found_linear_with_the_known_slope(tmp_path: Path) -> None:
    scenario = load_scenario(_scenario_file(tmp_path, free_port()))
    seen: list[float] = []
    result = run_scaling(scenario, on_level=lambda level: seen.append(level.level))

    assert seen == [5.0, 10.0, 20.0, 40.0]
    assert all(level.samples >= 5 for level in result.levels), [level.samples for level in result.levels]
    assert all(level.result.success_rate == 1.0 for level in result.levels)
    best = result.memory.best
    assert best is not None
    assert best.model == "linear", [(f.model, f.aic) for f in result.memory.fits]
    assert best.slope == pytest.approx(HOLD_MB, rel=0.15), [(lv.level, lv.memory_mb) for lv in result.levels]
    assert best.formula.startswith("memory_mb = ")
    assert " * users + " in best.formula
    assert result.reset is not None
    assert result.reset.passed, result.reset
    assert result.cpu is not None
    assert result.cpu.quantity == "cpu_percent"

    document = json.loads(json.dumps(scaling_document(result), allow_nan=False))
    assert document["schema"] == "benchtrack.scaling/1"
    assert document["load"] == "users"
    assert [level["level"] for level in document["levels"]] == [5, 10, 20, 40]
    assert document["memory"]["best"]["model"] == "linear"
    assert document["memory"]["best"]["slope_ci"][0] < document["memory"]["best"]["slope"]
    assert document["reset"]["passed"] is True
    # the command benchtrack started is gone
    assert not [p for p in psutil.process_iter(["cmdline"]) if str(SERVER) in " ".join(p.info["cmdline"] or [])]


def _fake_result(scenario: Scenario) -> LoadResult:
    latency = LatencySummary(10, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)
    return LoadResult(scenario.name, scenario.base_url, scenario.model.kind, None, time.time(), scenario.duration_s, 10, 10, 0,
                      {}, 0, 0, None, 10 / scenario.duration_s, latency, "", (), saturated=False, warnings=())


@pytest.mark.slow
def test_restart_starts_a_fresh_target_for_every_level(tmp_path: Path) -> None:
    scenario = load_scenario(_scenario_file(tmp_path, free_port(), levels="[1, 2, 3]", restart=True, settle="0.2s",
                                            window="0.6s"))
    targets: list[MemoryTarget] = []
    scenarios: list[Scenario] = []

    def factory(spec: MonitorSpec) -> MemoryTarget:
        targets.append(monitor_target(spec))
        return targets[-1]

    def fake_load(level: Scenario, seed: int) -> LoadResult:
        # The level's load is not what is tested here: hold the level's duration, send nothing.
        scenarios.append(level)
        time.sleep(level.duration_s)
        return _fake_result(level)

    result = run_scaling(scenario, run_load=fake_load, target_factory=factory)
    pids = [target.pid for target in targets]  # type: ignore[attr-defined]
    assert len(set(pids)) == 3
    assert all(not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE for pid in pids)
    assert [s.model.users for s in scenarios] == [1, 2, 3]
    assert all(level.samples >= 2 for level in result.levels)
    assert result.memory.best is not None  # idle servers: a flat-ish line, fitted all the same


def test_level_scenario_holds_one_level_constant_with_settle_as_warm_up(tmp_path: Path) -> None:
    scenario = load_scenario(_scenario_file(tmp_path, 8080))
    level = level_scenario(scenario, 20, 1.5, 4.0)
    assert (level.model.kind, level.model.users, level.model.think_s) == ("closed", 20, 0.0)
    assert (level.duration_s, level.warmup_s, level.pattern.kind, level.scaling) == (5.5, 1.5, "constant", None)
    open_scenario = parse_scenario({"schema": "benchtrack.scenario/1", "name": "o", "base_url": "http://127.0.0.1:1",
                                    "duration": 5, "model": {"kind": "open", "rate": 5},
                                    "pattern": {"kind": "spike", "at": "1s", "length": "1s", "factor": 3},
                                    "endpoints": [{"path": "/"}]}, "o.toml")
    assert level_scenario(open_scenario, 80, 0, 3).model.rate == 80.0
    assert level_scenario(open_scenario, 80, 0, 3).pattern.kind == "constant"


def test_a_scaling_scenario_without_a_monitor_or_with_two_levels_is_refused_before_any_traffic(tmp_path: Path) -> None:
    def no_load(level: Scenario, seed: int) -> LoadResult:
        raise AssertionError("no traffic may be sent")

    no_monitor = load_scenario(_scenario_file(tmp_path, 1, monitored=False))
    with pytest.raises(ScenarioError, match=r"scaling\.toml: \[scaling\] needs a \[monitor\] target"):
        run_scaling(no_monitor, run_load=no_load)
    two = load_scenario(_scenario_file(tmp_path, 1, levels="[5, 10, 10]"))
    with pytest.raises(ScenarioError, match=r"scaling\.levels: 2 distinct levels, at least 3 are needed"):
        run_scaling(two, run_load=no_load)


def test_the_document_of_a_run_without_a_fit_is_strict_json(tmp_path: Path) -> None:
    scenario = load_scenario(_scenario_file(tmp_path, 1))
    empty = ScalingLevel(5.0, math.nan, math.nan, None, 0, _fake_result(scenario))
    flat = ScalingLevel(10.0, 50.0, 50.0, 1.0, 4, _fake_result(scenario))
    result = ScalingResult("hold", "closed", "users", "cmd", 1.0, 2.0, (empty, flat), fit_scaling([10.0], [50.0]),
                           fit_scaling([10, 20, 40], [50.0, 50.0, 50.0], quantity="cpu_percent"), None, None, ())
    document = json.loads(json.dumps(scaling_document(result), allow_nan=False))
    assert document["levels"][0]["memory_mb"] is None
    assert document["levels"][0]["cpu_percent"] is None
    assert document["memory"]["best"] is None
    assert document["memory"]["note"].startswith("not enough levels")
    assert document["cpu"]["best"]["aic"] is None  # a constant series fits exactly: its AIC is -inf
    assert document["reset"] is None


@pytest.mark.slow
def test_the_load_command_runs_a_scaling_scenario_and_logs_it(tmp_path: Path, store_template: Path) -> None:
    uri = fresh_store_uri(store_template, tmp_path / "store")
    path = _scenario_file(tmp_path, free_port(), levels="[4, 8, 16, 24]")
    result = invoke_cli(["load", path, "--format", "json", "--tracking-uri", uri])
    assert result.exit_code == 0, result
    document = json.loads(result.stdout)
    assert document["schema"] == "benchtrack.scaling/1"
    assert [level["level"] for level in document["levels"]] == [4, 8, 16, 24]
    best = document["memory"]["best"]
    assert best["model"] == "linear", document["memory"]
    assert best["slope"] == pytest.approx(HOLD_MB, rel=0.15), document["levels"]
    assert document["reset"]["passed"]
    progress = [line for line in result.stderr.splitlines() if line.startswith("benchtrack: closed load ")]
    assert len(progress) == 4, result.stderr

    client = mlflow_client(uri)
    run = client.get_run(document["run_id"])
    assert run.data.tags["benchtrack.type"] == "scaling"
    assert run.data.tags["benchtrack.scaling.memory"] == best["formula"]
    assert [m.value for m in client.get_metric_history(run.info.run_id, "load")] == [4, 8, 16, 24]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "benchtrack")}
    assert {"benchtrack/scaling.json", "benchtrack/scaling.png"} <= artifacts, artifacts
