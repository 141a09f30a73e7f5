"""Change points of a history (pure detector, seeded series), their scoring for the Otava
benchmark, and `benchtrack history` on a real MLflow store."""

from __future__ import annotations

import importlib
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from support import Invoked, assert_one_error_line
from verdict_support import FINGERPRINT, bench, run_result, samples

from benchtrack.analysis.changepoints import MIN_SEGMENT, change_points, last_segment_start, segments

EXPERIMENTS_SELF = Path(__file__).resolve().parents[1] / "experiments" / "self"
NOISE = 0.03  # log-time noise between runs, as on this machine (2-7%)


def corpus_module() -> ModuleType:
    if str(EXPERIMENTS_SELF) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS_SELF))
    return importlib.import_module("changepoint_corpus")


def noise(seed: int, length: int = 60) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, NOISE, length)


def with_spikes(x: np.ndarray, seed: int, count: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed + 1000)
    x = x.copy()
    for index in rng.choice(np.arange(2, len(x) - 1, 6), size=count, replace=False):
        x[index] += math.log1p(rng.uniform(0.10, 0.40))
    return x


# --- the detector ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_an_injected_step_of_a_few_noise_sds_is_found_where_it_is(seed: int) -> None:
    at = 15 + 3 * seed
    x = noise(seed)
    x[at:] += 4 * NOISE
    found = change_points(x, log_scale=True)
    assert [abs(p.index - at) <= 2 for p in found] == [True]
    assert found[0].relative_change == pytest.approx(math.expm1(4 * NOISE), abs=0.03)


@pytest.mark.parametrize("seed", range(10))
def test_single_slow_runs_and_pairs_of_them_make_no_change_point(seed: int) -> None:
    assert change_points(with_spikes(noise(seed), seed), log_scale=True) == ()
    pair = noise(seed)
    pair[30:32] += math.log(1.35)
    pair[-1] += math.log(1.4)  # the newest run slow: one run is not yet a step
    assert change_points(pair, log_scale=True) == ()
    assert last_segment_start(pair) == 0


def test_a_step_among_spikes_is_still_found() -> None:
    x = with_spikes(noise(3), 3)
    x[25:] -= 5 * NOISE
    assert [p.index for p in change_points(x)] == [25]


def test_slow_drift_does_not_cascade_into_change_points() -> None:
    # 25% slower over 60 runs with 3% noise: whole-segment splitting finds a "step" every few runs
    counts = [len(change_points(noise(seed) + np.linspace(0.0, math.log(1.25), 60), log_scale=True)) for seed in range(8)]
    assert max(counts) <= 2
    assert sum(counts) <= 6


def test_noise_alone_has_no_change_points() -> None:
    assert sum(len(change_points(noise(seed))) for seed in range(30)) <= 1


def test_segments_shorter_than_the_minimum_are_not_made() -> None:
    x = noise(5, 30)
    x[-2:] += 20 * NOISE  # two runs: shorter than MIN_SEGMENT
    assert change_points(x) == ()
    x[-3:] += 20 * NOISE  # three runs: a segment
    assert [p.index for p in change_points(x)] == [30 - MIN_SEGMENT]
    many = np.concatenate([np.full(4, v) for v in (0.0, 1.0, 0.0, 1.0, 0.0)]) + noise(6, 20) / 10
    found = [p.index for p in change_points(many, min_segment=4)]
    assert found == [4, 8, 12, 16]
    assert all(b - a >= 4 for a, b in zip([0, *found], [*found, 20], strict=True))


def test_two_steps_and_their_segments() -> None:
    x = noise(9)
    x[20:] += 4 * NOISE
    x[40:] -= 8 * NOISE
    found = change_points(x)
    assert [p.index for p in found] == [20, 40]
    assert [(s.start, s.stop) for s in segments(x, found)] == [(0, 20), (20, 40), (40, 60)]
    assert found[1].before == pytest.approx(float(np.median(x[20:40])))
    assert found[1].relative_change is not None
    assert found[1].relative_change < 0


def test_last_segment_start_keeps_its_contract() -> None:
    rng = np.random.default_rng(8)
    assert last_segment_start(list(rng.normal(0.0, 0.01, 12)) + list(rng.normal(-0.10, 0.01, 6))) == 12
    assert last_segment_start([0.0, 0.0, 0.0, 1.0, 1.0]) == 0  # too short for two segments
    assert last_segment_start([0.0] * 6 + [1.0] * 6) == 6  # constant segments: no noise, a clear step


# --- scoring against the truth (the Otava benchmark, without Otava) ---------------------------


def test_scoring_matches_detections_within_two_runs() -> None:
    corpus = corpus_module()
    assert corpus.score([20], [21, 40]) == corpus.Score(found=1, missed=0, false=1)
    assert corpus.score([20], [23]) == corpus.Score(found=0, missed=1, false=1)
    assert corpus.score([10, 12], [11]) == corpus.Score(found=1, missed=1, false=0)
    assert corpus.score([], [5, 9]) == corpus.Score(found=0, missed=0, false=2)


def test_summary_of_a_detector_on_a_couple_of_series() -> None:
    corpus = corpus_module()
    series = [corpus.Series("step", 0.03, (0.0,) * 10, (5,)), corpus.Series("step", 0.03, (0.0,) * 10, (4,)),
              corpus.Series("noise", 0.03, (0.0,) * 10, ())]
    report = corpus.summarise(series, [[5], [], [2, 7]])
    assert report["step.detected"] == 0.5
    assert report["noise.false_per_series"] == 2.0
    assert math.isnan(report["noise.detected"])
    assert report["all.false_per_series"] == pytest.approx(2 / 3)


def test_the_seeded_corpus_is_reproducible_and_benchtrack_finds_its_big_steps() -> None:
    corpus = corpus_module()
    series = corpus.generate(per_family=2)
    assert series == corpus.generate(per_family=2)
    report = corpus.summarise(series, [[p.index for p in change_points(s.values, log_scale=True)] for s in series])
    assert report["step_5sd.detected"] == 1.0
    assert report["spikes.false_per_series"] == 0.0


# --- `benchtrack history` on a real store -------------------------------------------------------

STEP_AT, RUNS, SPIKE_AT = 8, 14, 3


def log_history(uri: str, suite: str = "synthetic", name: str = "work") -> list[str]:
    """RUNS runs of one benchmark, an hour apart: 1 ms, a slow spike at SPIKE_AT, 25% slower
    from STEP_AT on. Returns the run ids, oldest first."""
    from benchtrack.tracking.store import MlflowStore

    store = MlflowStore(uri)
    rng = np.random.default_rng(42)
    ids = []
    for i in range(RUNS):
        wall = 1e-3 * (1.25 if i >= STEP_AT else 1.0) * (1.4 if i == SPIKE_AT else 1.0) * math.exp(rng.normal(0, 0.01))
        run = run_result([bench(name, samples(rng, wall=wall, processes=3, per_process=4, between_cv=0.003,
                                              within_cv=0.002))], suite=suite)
        run = type(run)(run.suite, run.level, run.started_at + 3600 * i, run.finished_at + 3600 * i,
                        {**run.metadata, "mlflow.source.git.commit": f"{i:040x}"}, run.benchmarks)
        parent = store.start_invocation(run, f"inv{i}")
        ids.append(store.log_benchmark(parent, run, run.benchmarks[0]).run_id)
        store.finish_invocation(parent, run)
    return ids


@pytest.fixture
def history_store(store_uri: str) -> tuple[str, list[str]]:
    return store_uri, log_history(store_uri)


def history(invoke: Callable[..., Invoked], uri: str, *args: str) -> Invoked:
    return invoke(["history", *args, "--tracking-uri", uri, "--branch", "main", "--fingerprint", FINGERPRINT])


def test_history_json_finds_the_step_ignores_the_spike_and_marks_the_promoted_run(
        history_store: tuple[str, list[str]], invoke: Callable[..., Invoked]) -> None:
    from benchtrack.tracking.baselines import BaselineRegistry
    from benchtrack.tracking.store import MlflowStore

    uri, ids = history_store
    BaselineRegistry(MlflowStore(uri)).promote(ids[5], "test")
    result = history(invoke, uri, "work", "--format", "json")
    assert result.exit_code == 0, result
    document = json.loads(result.stdout)
    assert document["schema"] == "benchtrack.history/1"
    assert (document["suite"], document["metric"], document["unit"]) == ("synthetic", "wall_s", "s")
    assert [row["run_id"] for row in document["runs"]] == ids  # oldest first
    assert [p["index"] for p in document["change_points"]] == [STEP_AT]
    point = document["change_points"][0]
    assert point["run_id"] == ids[STEP_AT]
    assert point["relative_change"] == pytest.approx(0.25, abs=0.03)
    assert point["before"] == pytest.approx(1e-3, rel=0.05)  # seconds, not log seconds
    assert [row["promoted"] for row in document["runs"]] == [i == 5 for i in range(RUNS)]
    assert document["runs"][SPIKE_AT]["change"] == pytest.approx(0.4, abs=0.05)
    assert document["runs"][1]["commit"] == f"{1:040x}"


def test_history_table_limit_and_chart(history_store: tuple[str, list[str]], invoke: Callable[..., Invoked],
                                       tmp_path: Path) -> None:
    uri, _ = history_store
    chart = tmp_path / "charts" / "work.png"
    result = history(invoke, uri, "work", "--suite", "synthetic", "--chart", str(chart))
    assert result.exit_code == 0, result
    assert result.stdout.count("▲") == 1
    assert "14 runs, 1 change point" in result.stdout
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    limited = json.loads(history(invoke, uri, "work", "--limit", "5", "--format", "json").stdout)
    assert len(limited["runs"]) == 5
    assert limited["change_points"] == []


def test_history_errors_are_one_line(history_store: tuple[str, list[str]], invoke: Callable[..., Invoked]) -> None:
    uri, _ = history_store
    assert_one_error_line(history(invoke, uri, "nope"), "unknown benchmark", "nope")
    assert_one_error_line(history(invoke, uri, "work", "--suite", "elsewhere"), "unknown suite", "elsewhere")
    assert_one_error_line(invoke(["history", "work", "--tracking-uri", uri, "--branch", "feature", "--fingerprint",
                                  FINGERPRINT]), "no runs of work on branch feature")
    log_history(uri, suite="other")
    assert_one_error_line(history(invoke, uri, "work"), "several suites", "--suite")
    assert history(invoke, uri, "work", "--suite", "other").exit_code == 0


def test_history_of_a_real_run_with_this_machines_fingerprint(
        bench_folder: Callable[..., Path], store_uri: str, invoke: Callable[..., Invoked], chdir_tmp: Path) -> None:
    folder = bench_folder({"bench_tiny.py": """
        from benchtrack import benchmark

        @benchmark(name="tiny.sum")
        def tiny():
            return sum(range(100))
    """})
    assert invoke(["run", folder, "--tracking-uri", store_uri]).exit_code == 0
    result = invoke(["history", "tiny.sum", "--tracking-uri", store_uri, "--branch", "unknown", "--format", "json"])
    assert result.exit_code == 0, result
    document: dict[str, Any] = json.loads(result.stdout)
    assert document["suite"] == "bench"
    assert len(document["runs"]) == 1
    assert 0 < document["runs"][0]["value"] < 0.01
    assert document["change_points"] == []
