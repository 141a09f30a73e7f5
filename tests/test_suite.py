"""Tests of benchtrack.suite (@benchmark, parameter grids, discovery) and benchtrack.config."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from support import levels_toml

from benchtrack import benchmark
from benchtrack.config import (
    DEFAULT_LEVELS,
    Level,
    find_levels_file,
    load_config,
    load_levels,
    select_level,
)
from benchtrack.errors import ConfigError, DiscoveryError, UsageError
from benchtrack.runner.runner import make_plan
from benchtrack.suite import BenchmarkSpec, discover, find_instance

# --- @benchmark --------------------------------------------------------------------------------


def test_bare_decorator_keeps_the_function_and_attaches_a_spec() -> None:
    @benchmark
    def plain(n: int = 2) -> int:
        return n * 2

    assert plain(3) == 6  # still an ordinary function
    spec = plain.__benchtrack__
    assert isinstance(spec, BenchmarkSpec)
    assert spec.name == "plain"
    assert spec.kind == "time"
    assert spec.params == {}
    assert [i.name for i in spec.instances()] == ["plain"]
    assert spec.instances()[0].params == {}


def test_decorator_options_are_recorded() -> None:
    def make(size: int) -> list[int]:
        return list(range(size))

    def undo(state: list[int]) -> None:
        state.clear()

    @benchmark(
        name="lists.sum", params={"size": [10]}, setup=make, teardown=undo, tags=["fast", "lists"],
        levels=["nightly"], kind="memory", samples=7, processes=4, warmups=0, timeout=3.5, uss=True,
        targets={"wall_s.median": 1},
    )
    def total(values: list[int]) -> int:
        return sum(values)

    spec = total.__benchtrack__
    assert spec.name == "lists.sum"
    assert spec.setup is make
    assert spec.teardown is undo
    assert spec.tags == ("fast", "lists")
    assert spec.levels == ("nightly",)
    assert (spec.kind, spec.samples, spec.processes, spec.warmups, spec.timeout, spec.uss) == (
        "memory", 7, 4, 0, 3.5, True,
    )
    assert spec.targets == {"wall_s.median": 1.0}
    assert isinstance(spec.targets["wall_s.median"], float)


def test_param_grid_is_the_cartesian_product_in_declaration_order() -> None:
    @benchmark(params={"size": [10, 1000], "mode": ("a", "b")})
    def work(size: int, mode: str) -> None:
        pass

    instances = work.__benchtrack__.instances()
    assert [i.name for i in instances] == [
        "work[size=10,mode=a]",
        "work[size=10,mode=b]",
        "work[size=1000,mode=a]",
        "work[size=1000,mode=b]",
    ]
    assert instances[2].params == {"size": 1000, "mode": "a"}  # real values for the call
    assert instances[2].param_strings == {"size": "1000", "mode": "a"}  # strings for the store


def test_single_param_name() -> None:
    @benchmark(params={"size": range(10, 31, 10)})
    def work(size: int) -> None:
        pass

    assert [i.name for i in work.__benchtrack__.instances()] == ["work[size=10]", "work[size=20]", "work[size=30]"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "cpu"}, "kind must be one of"),
        ({"samples": 0}, "samples must be a positive integer"),
        ({"processes": -1}, "processes must be a positive integer"),
        ({"samples": 2.5}, "samples must be a positive integer"),
        ({"params": {"size": []}}, "empty value list"),
    ],
)
def test_bad_decorator_options_are_usage_errors(options: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        benchmark(**options)(lambda: None)


# --- discovery ---------------------------------------------------------------------------------

SIMPLE = """
    from benchtrack import benchmark

    @benchmark
    def {name}():
        pass
"""


def _simple(name: str) -> str:
    return SIMPLE.format(name=name)


def test_root_folder_is_one_suite_named_after_it(bench_folder: Callable[..., Path]) -> None:
    root = bench_folder({"bench_a.py": _simple("alpha"), "bench_b.py": _simple("beta"), "helper.py": "x = 1\n"},
                        name="mysuite")
    found = discover(root)
    assert [s.name for s in found.suites] == ["mysuite"]
    suite = found.suites[0]
    assert suite.folder == root.resolve()
    assert [f.relative for f in suite.files] == ["bench_a.py", "bench_b.py"]  # helper.py is no benchmark file
    assert [i.name for _, i in suite.instances()] == ["alpha", "beta"]
    assert found.errors == ()


def test_each_sub_folder_is_a_suite(bench_folder: Callable[..., Path]) -> None:
    root = bench_folder({
        "bench_top.py": _simple("top"),
        "web/bench_web.py": _simple("web"),
        "db/sql/bench_query.py": _simple("query"),
        ".hidden/bench_x.py": _simple("hidden"),
        "_private/bench_y.py": _simple("private"),
    }, name="root")
    found = discover(root)
    by_name = {s.name: [i.name for _, i in s.instances()] for s in found.suites}
    assert by_name == {"root": ["top"], "web": ["web"], "db/sql": ["query"]}
    assert [f.relative for s in found.suites for f in s.files if s.name == "db/sql"] == ["db/sql/bench_query.py"]


def test_local_helper_modules_are_importable(bench_folder: Callable[..., Path]) -> None:
    root = bench_folder({
        "helpers_for_bench.py": "SIZE = 42\n",
        "bench_uses_helper.py": """
            from benchtrack import benchmark
            from helpers_for_bench import SIZE

            @benchmark(params={"size": [SIZE]})
            def sized(size):
                pass
        """,
    })
    assert [i.name for _, i in discover(root).suites[0].instances()] == ["sized[size=42]"]


def test_import_errors_are_reported_per_file_and_other_files_load(bench_folder: Callable[..., Path]) -> None:
    root = bench_folder({
        "bench_good.py": _simple("good"),
        "bench_syntax.py": "from benchtrack import benchmark\n\ndef broken(:\n    pass\n",
        "bench_raises.py": "import json\n\nraise RuntimeError('no database configured')\n",
        "bench_missing.py": "import a_module_that_does_not_exist_anywhere\n",
    })
    found = discover(root)
    assert [i.name for s in found.suites for _, i in s.instances()] == ["good"]
    errors = {e.relative: e.message for e in found.errors}
    assert set(errors) == {"bench_syntax.py", "bench_raises.py", "bench_missing.py"}
    assert errors["bench_syntax.py"].startswith("SyntaxError:")
    assert "(line 3)" in errors["bench_syntax.py"]
    assert errors["bench_raises.py"] == "RuntimeError: no database configured at bench_raises.py:3"
    assert errors["bench_missing.py"].startswith("ModuleNotFoundError:")
    assert all("\n" not in message for message in errors.values())


def test_only_broken_files_is_not_a_discovery_error(bench_folder: Callable[..., Path]) -> None:
    found = discover(bench_folder({"bench_bad.py": "raise ValueError('x')\n"}))
    assert found.suites == ()
    assert [e.relative for e in found.errors] == ["bench_bad.py"]


def test_missing_folder_is_a_discovery_error(tmp_path: Path) -> None:
    with pytest.raises(DiscoveryError, match="not found"):
        discover(tmp_path / "nowhere")


def test_folder_without_benchmarks_is_a_discovery_error(bench_folder: Callable[..., Path]) -> None:
    root = bench_folder({"bench_empty.py": "X = 1\n", "notes.py": _simple("not_a_bench_file")})
    with pytest.raises(DiscoveryError, match="no bench_"):
        discover(root)


def test_duplicate_names_in_one_suite_are_a_discovery_error(bench_folder: Callable[..., Path]) -> None:
    root = bench_folder({"bench_a.py": _simple("same"), "bench_b.py": _simple("same")})
    with pytest.raises(DiscoveryError, match=r"'same' is declared twice .*bench_a\.py and bench_b\.py"):
        discover(root)


def test_duplicate_names_from_a_param_grid_are_a_discovery_error(bench_folder: Callable[..., Path]) -> None:
    root = bench_folder({"bench_a.py": """
        from benchtrack import benchmark

        @benchmark(params={"n": [1, "1"]})
        def grid(n):
            pass
    """})
    with pytest.raises(DiscoveryError, match=r"grid\[n=1\]"):
        discover(root)


def test_same_name_in_different_suites_is_fine(bench_folder: Callable[..., Path]) -> None:
    root = bench_folder({"a/bench_x.py": _simple("same"), "b/bench_x.py": _simple("same")})
    assert [s.name for s in discover(root).suites] == ["a", "b"]


def test_find_instance_re_finds_a_grid_member(bench_folder: Callable[..., Path]) -> None:
    root = bench_folder({"bench_grid.py": """
        from benchtrack import benchmark

        @benchmark(params={"n": [1, 2]})
        def grid(n):
            return n
    """})
    instance = find_instance(root / "bench_grid.py", "grid[n=2]")
    assert instance.params == {"n": 2}
    with pytest.raises(UsageError, match="unknown benchmark 'grid'"):
        find_instance(root / "bench_grid.py", "grid")


# --- levels ------------------------------------------------------------------------------------

LEVEL_FILTER_BENCH = """
    from benchtrack import benchmark

    @benchmark
    def everywhere():
        pass

    @benchmark(tags=["slow"])
    def slow_one():
        pass

    @benchmark(levels=["nightly"])
    def nightly_only():
        pass

    @benchmark(tags=["io"], processes=5, samples=9, warmups=0, timeout=7)
    def io_bound():
        pass
"""


def test_levels_select_by_tags_and_declared_levels(bench_folder: Callable[..., Path]) -> None:
    root = bench_folder({"bench_levels.py": LEVEL_FILTER_BENCH}, levels="")
    suite = discover(root).suites[0]

    def planned(level: Level, only: tuple[str, ...] = ()) -> list[str]:
        return [item.name for item in make_plan(suite, level, only).items]

    quick = Level("quick", exclude_tags=("slow",))
    assert planned(quick) == ["everywhere", "io_bound"]
    assert planned(Level("nightly")) == ["everywhere", "slow_one", "nightly_only", "io_bound"]
    assert planned(Level("io", tags=("io",))) == ["io_bound"]
    assert planned(Level("nightly"), only=("slow_one",)) == ["slow_one"]
    assert planned(quick, only=("nightly_only",)) == []


def test_plan_applies_per_benchmark_overrides(bench_folder: Callable[..., Path]) -> None:
    root = bench_folder({"bench_levels.py": LEVEL_FILTER_BENCH}, levels="")
    suite = discover(root).suites[0]
    level = Level("quick", processes=2, samples=3, warmups=1, min_sample_time=0.002, timeout=60)
    items = {item.name: item for item in make_plan(suite, level).items}
    assert (items["everywhere"].processes, items["everywhere"].samples, items["everywhere"].warmups,
            items["everywhere"].timeout, items["everywhere"].min_sample_time) == (2, 3, 1, 60, 0.002)
    assert (items["io_bound"].processes, items["io_bound"].samples, items["io_bound"].warmups,
            items["io_bound"].timeout) == (5, 9, 0, 7)


def test_load_levels_reads_every_field(tmp_path: Path) -> None:
    path = tmp_path / "levels.toml"
    path.write_text(levels_toml(processes=4, samples=6, extra="""
[levels.ci]
processes = 1
samples = 2
warmups = 3
min_sample_time = 0.5
timeout = 10
tags = ["fast"]
exclude_tags = ["slow", "gpu"]
"""), encoding="utf-8")
    levels = load_levels(path)
    assert set(levels) == {"quick", "ci"}
    assert levels["quick"] == Level("quick", processes=4, samples=6, warmups=0, min_sample_time=0.001, timeout=60.0)
    assert levels["ci"] == Level("ci", processes=1, samples=2, warmups=3, min_sample_time=0.5, timeout=10.0,
                                 tags=("fast",), exclude_tags=("slow", "gpu"))


def test_no_levels_file_means_the_defaults(tmp_path: Path) -> None:
    assert load_levels(None) == dict(DEFAULT_LEVELS)
    assert set(DEFAULT_LEVELS) == {"quick", "comprehensive", "nightly"}


def test_find_levels_file_looks_up_to_the_repository_root(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    nested = repo / "benchmarks" / "web"
    nested.mkdir(parents=True)
    (repo / ".git").mkdir()
    assert find_levels_file(nested) is None
    (tmp_path / "levels.toml").write_text(levels_toml(), encoding="utf-8")  # above the repo: not used
    assert find_levels_file(nested) is None
    (repo / "levels.toml").write_text(levels_toml(), encoding="utf-8")
    assert find_levels_file(nested) == repo / "levels.toml"
    (nested / "levels.toml").write_text(levels_toml(), encoding="utf-8")
    assert find_levels_file(nested) == nested / "levels.toml"


def test_unknown_level_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"unknown level 'weekly' \(known: comprehensive, nightly, quick\)"):
        select_level(DEFAULT_LEVELS, "weekly")


def test_a_levels_file_without_levels_keeps_the_built_in_ones(tmp_path: Path) -> None:
    path = tmp_path / "levels.toml"
    path.write_text('schema = "benchtrack.levels/1"\n[rerun]\npythonpath = ["lib"]\nmax_rounds = 40\nresolution = 0.03\n',
                    encoding="utf-8")
    config = load_config(path)
    assert set(config.levels) == set(DEFAULT_LEVELS)
    assert config.levels["comprehensive"].processes == DEFAULT_LEVELS["comprehensive"].processes
    assert (config.rerun.pythonpath, config.rerun.max_rounds, config.rerun.resolution) == (("lib",), 40, 0.03)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('schema = "benchtrack.levels/1"\n[levels.quick\nsamples = 3\n', "is not valid TOML"),
        ('[levels.quick]\nsamples = 3\n', "expected schema"),
        ('schema = "benchtrack.levels/2"\n[levels.quick]\nsamples = 3\n', "expected schema"),
        ('schema = "benchtrack.levels/1"\nlevels = 3\n', r"\[levels\] must hold \[levels.<name>\] tables"),
        ('schema = "benchtrack.levels/1"\n[levels]\n', r"\[levels\] must hold \[levels.<name>\] tables"),
        ('schema = "benchtrack.levels/1"\n[levels]\nquick = 3\n', r"\[levels.quick\] must be a table"),
        ('schema = "benchtrack.levels/1"\n[levels.quick]\nsample = 3\n', "unknown keys: sample"),
        ('schema = "benchtrack.levels/1"\n[levels.quick]\nsamples = -1\n', r"levels.quick.samples must be an integer"),
        ('schema = "benchtrack.levels/1"\n[levels.quick]\nsamples = 0\n', r"levels.quick.samples must be an integer"),
        ('schema = "benchtrack.levels/1"\n[levels.quick]\nprocesses = 2.5\n', "levels.quick.processes must be an integer"),
        ('schema = "benchtrack.levels/1"\n[levels.quick]\nprocesses = true\n', "levels.quick.processes must be an integer"),
        ('schema = "benchtrack.levels/1"\n[levels.quick]\nsamples = "5"\n', "levels.quick.samples must be an integer"),
        ('schema = "benchtrack.levels/1"\n[levels.quick]\nmin_sample_time = nan\n', "min_sample_time must be a number"),
        ('schema = "benchtrack.levels/1"\n[levels.quick]\ntimeout = 0.5\n', "timeout must be a number"),
        ('schema = "benchtrack.levels/1"\n[levels.quick]\ntags = "slow"\n', "tags must be a list of strings"),
        ('schema = "benchtrack.levels/1"\n[levels.quick]\nexclude_tags = [1]\n', "exclude_tags must be a list of strings"),
    ],
)
def test_bad_levels_files_are_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "levels.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as caught:
        load_levels(path)
    assert str(path) in str(caught.value)


def test_unreadable_levels_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_levels(tmp_path)  # a folder, not a file
