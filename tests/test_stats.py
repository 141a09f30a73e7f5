"""Summary statistics against hand-computed numbers and properties, and the results JSON format."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from benchtrack.analysis.stats import STATISTICS, between_process_cv, summarize
from benchtrack.errors import ResultFormatError
from benchtrack.results import (
    RESULT_SCHEMA,
    BenchmarkResult,
    RunResult,
    Sample,
    dumps_results,
    load_results_file,
    run_result_from_dict,
    run_result_to_dict,
)

# --- summarize ---------------------------------------------------------------------------------


def test_summary_of_one_to_four() -> None:
    s = summarize([4.0, 1.0, 3.0, 2.0])
    assert s.count == 4
    assert s.median == 2.5
    assert s.mean == 2.5
    assert s.stdev == pytest.approx(math.sqrt(5 / 3))  # sample stdev: sum of squares 5, n-1 = 3
    assert (s.min, s.max) == (1.0, 4.0)
    assert s.p95 == pytest.approx(3.85)  # linear: rank 0.95 * 3 = 2.85, between 3 and 4
    assert s.iqr == pytest.approx(3.25 - 1.75)
    assert s.cv == pytest.approx(math.sqrt(5 / 3) / 2.5)


def test_summary_of_an_odd_series() -> None:
    s = summarize([10.0, 20.0, 60.0])
    assert s.median == 20.0
    assert s.mean == 30.0
    assert s.stdev == pytest.approx(math.sqrt(((20**2) + (10**2) + (30**2)) / 2))
    assert s.iqr == pytest.approx(40.0 - 15.0)
    assert s.p95 == pytest.approx(56.0)


def test_summary_of_one_value_has_no_spread() -> None:
    s = summarize([7.5])
    assert (s.count, s.median, s.mean, s.min, s.max, s.p95) == (1, 7.5, 7.5, 7.5, 7.5, 7.5)
    assert (s.stdev, s.iqr, s.cv) == (0.0, 0.0, 0.0)


def test_cv_of_a_zero_mean_is_zero() -> None:
    assert summarize([-1.0, 1.0]).cv == 0.0
    assert summarize([0.0, 0.0, 0.0]).cv == 0.0


def test_cv_uses_the_absolute_mean() -> None:
    assert summarize([-1.0, -3.0]).cv == pytest.approx(math.sqrt(2) / 2)


def test_empty_series_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        summarize([])


def test_as_dict_holds_every_statistic_but_count() -> None:
    assert tuple(summarize([1.0, 2.0]).as_dict()) == STATISTICS


# --- between_process_cv ------------------------------------------------------------------------


def test_between_process_cv_of_process_medians() -> None:
    # medians 1 and 3 (the outlier 100 does not move process 0's median): mean 2, stdev sqrt(2)
    values = [1.0, 1.0, 100.0, 3.0, 3.0, 3.0]
    processes = [0, 0, 0, 1, 1, 1]
    assert between_process_cv(values, processes) == pytest.approx(math.sqrt(2) / 2)


def test_between_process_cv_with_three_processes_in_any_order() -> None:
    values = [2.0, 4.0, 6.0, 2.0, 4.0, 6.0]
    processes = [0, 1, 2, 0, 1, 2]
    assert between_process_cv(values, processes) == pytest.approx(2.0 / 4.0)  # medians 2, 4, 6


def test_between_process_cv_needs_two_processes() -> None:
    assert between_process_cv([1.0, 5.0, 9.0], [0, 0, 0]) == 0.0
    assert between_process_cv([], []) == 0.0


def test_between_process_cv_of_identical_processes_is_zero() -> None:
    assert between_process_cv([2.0, 2.0, 2.0, 2.0], [0, 0, 1, 1]) == 0.0
    assert between_process_cv([-1.0, 1.0], [0, 1]) == 0.0  # zero mean


def test_between_process_cv_refuses_mismatched_lengths() -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - zip(strict=True) says only "shorter than"
        between_process_cv([1.0, 2.0], [0])


finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
series = st.lists(finite, min_size=1, max_size=60)


@given(series)
def test_summary_properties(values: list[float]) -> None:
    s = summarize(values)
    assert s.count == len(values)
    assert s.min <= s.median <= s.max
    assert s.min <= s.p95 <= s.max
    rounding = 1e-9 * max(abs(s.min), abs(s.max), 1.0)  # a float mean may round past an extreme
    assert s.min - rounding <= s.mean <= s.max + rounding
    assert s.stdev >= 0
    assert s.iqr >= 0
    assert s.cv >= 0
    assert s.min == min(values)
    assert s.max == max(values)


@given(st.lists(st.tuples(st.floats(min_value=1e-9, max_value=1e3), st.integers(0, 4)), min_size=1, max_size=40))
def test_between_process_cv_is_never_negative(pairs: list[tuple[float, int]]) -> None:
    values = [v for v, _ in pairs]
    processes = [p for _, p in pairs]
    cv = between_process_cv(values, processes)
    assert cv >= 0
    assert math.isfinite(cv)
    if len(set(processes)) < 2:
        assert cv == 0.0


@given(st.lists(st.floats(min_value=1e-6, max_value=1e3), min_size=2, max_size=30), st.floats(0.5, 100.0))
def test_cv_does_not_depend_on_the_unit(values: list[float], scale: float) -> None:
    assert summarize([v * scale for v in values]).cv == pytest.approx(summarize(values).cv, rel=1e-6, abs=1e-12)


# --- results JSON ------------------------------------------------------------------------------


def _run(benchmarks: tuple[BenchmarkResult, ...] | None = None) -> RunResult:
    default = (
        BenchmarkResult(
            name="add[size=10]", benchmark="add", file="bench_math.py", kind="time",
            params={"size": "10"}, tags=("math", "fast"),
            samples=(
                Sample(process=0, index=0, loops=1024, values={"wall_s": 1.25e-7, "rss_peak_bytes": 18_000_000.0}),
                Sample(process=0, index=1, loops=1024, values={"wall_s": 1.5e-7, "rss_peak_bytes": 18_000_000.0}),
                Sample(process=1, index=0, loops=1024, values={"wall_s": 0.1 + 0.2, "rss_peak_bytes": 1.0e300}),
            ),
            warmups=1, probes={"peak_rss": "kernel-hwm"}, targets={"wall_s.median": 5e-7},
        ),
        BenchmarkResult(name="boom", benchmark="boom", file="bench_math.py", kind="memory",
                        error="ValueError: nope at bench_math.py:9"),
    )
    return RunResult(
        suite="web/api", level="quick", started_at=1_700_000_000.123456, finished_at=1_700_000_012.5,
        metadata={"mlflow.source.git.commit": "abc123", "benchtrack.cpu.count": "2"},
        benchmarks=default if benchmarks is None else benchmarks,
    )


def test_round_trip_is_exact() -> None:
    run = _run()
    document = json.loads(json.dumps(run_result_to_dict(run), allow_nan=False))
    assert document["schema"] == RESULT_SCHEMA
    assert run_result_from_dict(document) == run
    assert run_result_from_dict(document).benchmarks[0].samples[2].values["wall_s"] == 0.1 + 0.2


def test_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text(dumps_results([_run(), _run(())]), encoding="utf-8")
    assert load_results_file(path) == [_run(), _run(())]
    single = tmp_path / "single.json"
    single.write_text(json.dumps(run_result_to_dict(_run())), encoding="utf-8")
    assert load_results_file(single) == [_run()]


sample_values = st.dictionaries(st.sampled_from(["wall_s", "cpu_s", "rss_peak_bytes", "gc_gen0_collections"]),
                                st.floats(allow_nan=False, allow_infinity=False), min_size=1)
samples = st.lists(st.builds(Sample, process=st.integers(0, 9), index=st.integers(0, 99),
                             loops=st.integers(1, 2**32), values=sample_values), max_size=8)
texts = st.text(min_size=1, max_size=20)


@given(samples, st.dictionaries(texts, texts, max_size=3), st.one_of(st.none(), texts))
def test_round_trip_property(drawn: list[Sample], params: dict[str, str], error: str | None) -> None:
    bench = BenchmarkResult(name="b", benchmark="b", file="bench_x.py", kind="time", params=params,
                            samples=tuple(drawn), error=error)
    run = _run((bench,))
    assert run_result_from_dict(json.loads(dumps_results([run]))[0]) == run


def test_nan_in_a_sample_is_rejected() -> None:
    document = run_result_to_dict(_run())
    document["benchmarks"][0]["samples"][0]["values"]["wall_s"] = float("nan")
    with pytest.raises(ResultFormatError, match="non-finite"):
        run_result_from_dict(document)


def test_infinite_target_is_rejected() -> None:
    document = run_result_to_dict(_run())
    document["benchmarks"][0]["targets"]["wall_s.median"] = "inf"
    with pytest.raises(ResultFormatError, match="non-finite"):
        run_result_from_dict(document)


def test_nan_in_a_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "nan.json"
    path.write_text(dumps_results([_run()]).replace("1.25e-07", "NaN"), encoding="utf-8")
    with pytest.raises(ResultFormatError, match="non-finite number NaN"):
        load_results_file(path)


def test_writing_nan_is_refused() -> None:
    bad = _run((BenchmarkResult(name="b", benchmark="b", file="f", kind="time",
                                samples=(Sample(0, 0, 1, {"wall_s": float("nan")}),)),))
    with pytest.raises(ResultFormatError, match="not JSON compliant"):
        dumps_results([bad])


@pytest.mark.parametrize(
    "document",
    [
        {"schema": "benchtrack.result/2"},
        {"schema": None},
        {},
        {"suite": "s"},
    ],
)
def test_wrong_schema_is_rejected(document: dict[str, object]) -> None:
    with pytest.raises(ResultFormatError, match=r"not a benchtrack\.result/1 document"):
        run_result_from_dict(document)


def test_a_list_is_not_a_document() -> None:
    with pytest.raises(ResultFormatError, match=r"not a benchtrack\.result/1 document"):
        run_result_from_dict([])  # type: ignore[arg-type]


@pytest.mark.parametrize("missing", ["suite", "level", "started_at", "metadata", "benchmarks"])
def test_missing_fields_are_rejected(missing: str) -> None:
    document = run_result_to_dict(_run())
    del document[missing]
    with pytest.raises(ResultFormatError, match="malformed"):
        run_result_from_dict(document)


def test_malformed_samples_are_rejected() -> None:
    document = run_result_to_dict(_run())
    document["benchmarks"][0]["samples"][0]["loops"] = "many"
    with pytest.raises(ResultFormatError, match="malformed"):
        run_result_from_dict(document)


def test_unreadable_and_non_json_files(tmp_path: Path) -> None:
    with pytest.raises(ResultFormatError, match="cannot read"):
        load_results_file(tmp_path / "missing.json")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json", encoding="utf-8")
    with pytest.raises(ResultFormatError, match="is not valid JSON"):
        load_results_file(garbage)
    wrong = tmp_path / "wrong.json"
    wrong.write_text('[{"schema": "pytest-benchmark"}]', encoding="utf-8")
    with pytest.raises(ResultFormatError, match=str(wrong)):
        load_results_file(wrong)
