"""Instruction counts under real valgrind (callgrind): parts between marks, per-operation
counts that follow the work done, their verdicts, and the CLI. `.ci/run` installs valgrind;
without it (a developer's laptop) the valgrind tests skip, in CI they fail."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from support import assert_one_error_line, levels_toml, write_bench_folder

from benchtrack import results as r
from benchtrack.analysis.compare import SPECS, ComparisonSettings, Side, compare_metric
from benchtrack.config import Level, load_config
from benchtrack.errors import ConfigError
from benchtrack.probes.instructions import InstructionCountError, find_valgrind, loops_for, part_totals, per_operation
from benchtrack.runner.runner import Runner, make_plan
from benchtrack.suite import discover

needs_valgrind = pytest.mark.skipif(find_valgrind() is None and not os.environ.get("CI"),
                                    reason="valgrind not installed (CI installs it)")

WORK = """
    from benchtrack import benchmark


    def spin(n):
        total = 0
        for i in range(n):
            total = (total + i) & 0xFFFF  # small ints throughout: every iteration costs the same
        return total


    @benchmark
    def base():
        spin(2000)


    @benchmark
    def more():
        spin(2200)  # 10% more iterations


    @benchmark
    def double():
        spin(4000)
"""


# -- parts and arithmetic (pure) -----------------------------------------------------------------

def _write_parts(prefix: Path, totals: list[int]) -> None:
    for number, total in enumerate(totals, 1):
        Path(f"{prefix}.{number}").write_text(f"events: Ir\nsummary: {total}\ntotals: {total}\n", encoding="utf-8")


def test_parts_are_read_in_numeric_order_and_the_empty_part_is_taken_off(tmp_path: Path) -> None:
    prefix = tmp_path / "callgrind.out"
    totals = [5_000_000, 700, *[100_700 + i for i in range(9)], 10]
    _write_parts(prefix, totals[:-1])  # the part after the last mark is never written as a numbered file
    Path(prefix).write_text("summary: 10\n", encoding="utf-8")
    found = part_totals(prefix)
    assert found == totals[:-1]  # .10 and .11 come after .9, not after .1
    assert per_operation(found, samples=9, loops=100) == [1000.0 + i / 100 for i in range(9)]


def test_a_wrong_number_of_parts_is_an_error_that_names_the_likely_cause(tmp_path: Path) -> None:
    prefix = tmp_path / "callgrind.out"
    _write_parts(prefix, [5_000_000, 700, 100_700])
    with pytest.raises(InstructionCountError, match="getpgrp"):
        per_operation(part_totals(prefix), samples=3, loops=100)


def test_loops_aim_at_a_few_milliseconds_of_native_work() -> None:
    assert loops_for(1e-6) == 5000
    assert loops_for(1.0) == 1
    assert loops_for(None) == 1
    assert loops_for(float("nan")) == 1


# -- verdicts on instruction counts (pure, seeded) ----------------------------------------------

def _side(values: list[float]) -> Side:
    return Side(tuple(values), tuple([0] * len(values)))


def test_identical_counts_from_two_checkouts_are_not_a_regression() -> None:
    spec = SPECS[r.INSTRUCTIONS]
    base = _side([1_000_000.0] * 5)
    cand = _side([1_000_040.0] * 5)  # a handful of instructions per operation: paths, layout
    c = compare_metric("x", spec, base, cand, ComparisonSettings())
    assert c.verdict == "unchanged", c


def test_two_percent_more_instructions_is_a_regression_without_history() -> None:
    import numpy as np

    rng = np.random.default_rng(7)
    spec = SPECS[r.INSTRUCTIONS]
    base = _side(list(1_000_000.0 * (1 + rng.normal(0, 2e-4, 5))))
    cand = _side(list(1_020_000.0 * (1 + rng.normal(0, 2e-4, 5))))
    c = compare_metric("x", spec, base, cand, ComparisonSettings())
    assert c.verdict == "regression", c
    assert abs(c.change - 0.02) < 0.002, c


# -- levels file ---------------------------------------------------------------------------------

def test_levels_file_selects_benchmarks_for_instruction_counts(tmp_path: Path) -> None:
    path = tmp_path / "levels.toml"
    path.write_text(levels_toml() + 'instructions = ["base", "more"]\n[levels.nightly]\ninstructions = true\n',
                    encoding="utf-8")
    config = load_config(path)
    assert config.levels["quick"].counts_instructions("more", "more")
    assert not config.levels["quick"].counts_instructions("double", "double")
    assert config.levels["nightly"].counts_instructions("anything", "anything")
    path.write_text(levels_toml() + "instructions = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="instructions must be true, false or a list"):
        load_config(path)


# -- real valgrind -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def counted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[float]]:
    folder = write_bench_folder(tmp_path_factory.mktemp("instructions"), {"bench_work.py": WORK})
    suite = discover(folder).suites[0]
    level = Level("quick", processes=1, samples=3, warmups=0, min_sample_time=0.002, instructions=("*",))
    result = Runner(instructions=lambda _: True).run_plan(make_plan(suite, level), {})
    return {b.name: b.series(r.INSTRUCTIONS) for b in result.benchmarks}


@needs_valgrind
def test_instruction_counts_repeat_within_a_run(counted: dict[str, list[float]]) -> None:
    for name, counts in counted.items():
        assert len(counts) == 3, name
        assert max(counts) / min(counts) - 1 < 0.002, (name, counts)


@needs_valgrind
def test_instruction_counts_follow_the_work(counted: dict[str, list[float]]) -> None:
    base = min(counted["base"])
    # 10% more loop iterations; a little more than 10% more instructions, since ints past 256 are
    # allocated (CPython caches the small ones) and the extra iterations all are
    assert 1.095 < min(counted["more"]) / base < 1.11
    assert 1.99 < min(counted["double"]) / base < 2.03


@needs_valgrind
def test_run_with_instructions_reports_them_in_json_and_table(tmp_path: Path, invoke) -> None:  # type: ignore[no-untyped-def]
    folder = write_bench_folder(tmp_path / "bench", {"bench_work.py": WORK})
    result = invoke(["run", folder, "--no-track", "--instructions", "-b", "base", "--format", "json"])
    assert result.exit_code == 0, result
    document = json.loads(result.stdout)
    metrics = document["suites"][0]["benchmarks"][0]["summary"]
    assert metrics["instructions"]["median"] > 10_000, metrics.get("instructions")
    table = invoke(["run", folder, "--no-track", "--instructions", "-b", "base"])
    assert table.exit_code == 0, table
    assert "instructions per operation" in table.stdout
    assert "blind to I/O waits" in table.stdout


def test_instructions_without_rerun_is_a_usage_error(invoke) -> None:  # type: ignore[no-untyped-def]
    assert_one_error_line(invoke(["compare", "a.json", "b.json", "--instructions"]), "--rerun")
