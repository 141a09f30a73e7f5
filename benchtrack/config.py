"""Level configuration (quick / comprehensive / nightly), loaded from a TOML file and validated.

History of ``benchtrack.levels``:
  1 - processes, samples, warmups, min_sample_time, timeout, tag filters; later in version 1
      (optional keys, older files stay valid): fail_on, promote, thresholds per level and per
      benchmark, [baseline] branch and alpha; fail_on_undecided (a slowdown left inconclusive
      whose point estimate reaches major fails too).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from benchtrack.analysis.compare import DEFAULT_THRESHOLDS, SEVERITIES, Thresholds
from benchtrack.analysis.leaks import LeakThresholds
from benchtrack.errors import ConfigError, UsageError

LEVELS_SCHEMA = "benchtrack.levels/1"
LEVELS_FILENAME = "levels.toml"


@dataclass(frozen=True)
class Level:
    """How thoroughly to measure, and which benchmarks to include."""

    name: str
    processes: int = 3
    samples: int = 5
    warmups: int = 1
    min_sample_time: float = 0.01
    timeout: float = 300.0
    tags: tuple[str, ...] = ()
    exclude_tags: tuple[str, ...] = ()
    fail_on: str = "major"  # lowest regression severity that fails the run; "none" never fails
    promote: bool = True  # promote improved runs on the baseline branch to new baselines
    fail_on_undecided: bool = False  # also fail on inconclusive slowdowns whose point estimate is major or worse
    thresholds: Mapping[str, Thresholds] = field(default_factory=lambda: dict(DEFAULT_THRESHOLDS))
    # timed benchmarks (names, or "*" for all) whose instructions per operation are also counted, under valgrind
    instructions: tuple[str, ...] = ()

    def counts_instructions(self, name: str, base_name: str) -> bool:
        return ALL_BENCHMARKS in self.instructions or name in self.instructions or base_name in self.instructions

    def fails(self, severity: str) -> bool:
        if self.fail_on == "none" or severity == "none":
            return False
        return SEVERITIES.index(severity) >= SEVERITIES.index(self.fail_on)

    def selects(self, benchmark_tags: tuple[str, ...], benchmark_levels: tuple[str, ...]) -> bool:
        if benchmark_levels and self.name not in benchmark_levels:
            return False
        if self.tags and not set(self.tags) & set(benchmark_tags):
            return False
        return not set(self.exclude_tags) & set(benchmark_tags)


ALL_BENCHMARKS = "*"

DEFAULT_LEVELS: Mapping[str, Level] = {
    "quick": Level("quick", processes=2, samples=5, warmups=1, timeout=120.0, fail_on="critical"),
    # ten processes of five samples, not five of ten: the fastest of ten worker processes moved half
    # as much between invocations (median 3.2% against 6.4%) on the real-run corpus, where all
    # five processes of a run landed in a slow speed mode in 1 of 8 benchmark-runs
    "comprehensive": Level("comprehensive", processes=10, samples=5, warmups=2, timeout=600.0),
    "nightly": Level("nightly", processes=10, samples=20, warmups=3, timeout=1800.0),
}


RERUN_MODES = ("interleaved", "duet")


@dataclass(frozen=True)
class RerunSettings:
    """[rerun]: how `compare --rerun` measures two commits side by side."""

    # relative to each checkout's root: where the code under test imports from (None: the root, and src/ if present)
    pythonpath: tuple[str, ...] | None = None
    max_rounds: int = 64  # worker processes per side, at most; looked at after 16, 32 and 64 (analysis.paired)
    budget_s: float = 600.0  # for the whole comparison; benchmarks still measuring stop at the next round
    mode: str = "interleaved"  # or "duet": both sides at once, each on its own CPU
    # a benchmark stops early once its change is significant or its interval lies within
    # +-resolution: a smaller one is not worth more rounds, a larger one (below the minor
    # threshold, say) still is, so a real 10% change is measured until it is found
    resolution: float = 0.05


@dataclass(frozen=True)
class Config:
    """Everything levels.toml says: levels, per-benchmark thresholds and the baseline policy."""

    levels: Mapping[str, Level]
    benchmark_thresholds: Mapping[str, Mapping[str, Thresholds]] = field(default_factory=dict)
    baseline_branch: str = "main"
    alpha: float = 0.01
    leak: LeakThresholds = field(default_factory=LeakThresholds)
    gc_pause_p95_s: float = 0.1  # GC pause p95 above this fails a GC check
    rerun: RerunSettings = field(default_factory=RerunSettings)
    calibration_max_age_s: float = 30 * 86400.0  # an older A/A calibration is not used
    # [load.alerts] memory_mb, cpu_percent, growth_mb_per_min: alerts of every `benchtrack load`
    # (a scenario's [alerts] and the --alert-* options override them one by one)
    load_alerts: Mapping[str, float] = field(default_factory=dict)

    def thresholds_for(self, level: Level, benchmark: str, base_name: str) -> dict[str, Thresholds]:
        """Defaults, then the level's, then the benchmark's (by full name, else base name)."""
        merged = dict(level.thresholds)
        merged.update(self.benchmark_thresholds.get(base_name, {}))
        merged.update(self.benchmark_thresholds.get(benchmark, {}))
        return merged


def find_levels_file(folder: Path) -> Path | None:
    """The levels file of a benchmark folder: in it, or in a parent up to the repository root."""
    for candidate in (folder, *folder.resolve().parents):
        path = candidate / LEVELS_FILENAME
        if path.is_file():
            return path
        if (candidate / ".git").exists():
            return None
    return None


def load_levels(path: Path | None) -> dict[str, Level]:
    return dict(load_config(path).levels)


def load_config(path: Path | None) -> Config:
    if path is None:
        return Config(dict(DEFAULT_LEVELS))
    data = _read_toml(path)
    levels = data.get("levels", {})
    if not isinstance(levels, dict) or ("levels" in data and not levels):
        raise ConfigError(f"{path}: [levels] must hold [levels.<name>] tables")
    unknown = set(data) - {"schema", "levels", "thresholds", "benchmarks", "baseline", "memory", "rerun", "load"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level keys: {', '.join(sorted(unknown))}")
    defaults = {**DEFAULT_THRESHOLDS, **_parse_thresholds(path, "thresholds", data.get("thresholds", {}))}
    benchmarks = data.get("benchmarks", {})
    if not isinstance(benchmarks, dict):
        raise ConfigError(f"{path}: [benchmarks] must be a table of benchmark names")
    per_benchmark = {
        str(name): _parse_thresholds(
            path, f"benchmarks.{name}.thresholds", _known(path, f"benchmarks.{name}", table, {"thresholds"}).get("thresholds", {})
        )
        for name, table in benchmarks.items()
    }
    baseline = _known(path, "baseline", data.get("baseline", {}), {"branch", "alpha", "calibration_max_age_days"})
    memory = _table(path, "memory", data.get("memory", {}))
    return Config(
        # a file that only sets [rerun], [baseline] or thresholds keeps the built-in levels
        levels={name: _parse_level(path, name, table, defaults) for name, table in levels.items()}
        or {name: replace(level, thresholds=dict(defaults)) for name, level in DEFAULT_LEVELS.items()},
        benchmark_thresholds=per_benchmark,
        baseline_branch=_string(path, "baseline.branch", baseline.get("branch", "main")),
        alpha=_bounded_number(path, "baseline.alpha", baseline.get("alpha", 0.01), 1e-6, 0.5),
        leak=_parse_leak(path, memory),
        gc_pause_p95_s=_bounded_number(path, "memory.gc_pause_p95_ms", memory.get("gc_pause_p95_ms", 100.0), 0.001, 1e6)
        / 1000.0,
        rerun=_parse_rerun(path, data.get("rerun", {})),
        calibration_max_age_s=86400.0 * _bounded_number(path, "baseline.calibration_max_age_days",
                                                        baseline.get("calibration_max_age_days", 30), 0.0, 1e6),
        load_alerts=_parse_load_alerts(path, data.get("load", {})),
    )


LOAD_ALERT_KEYS = ("memory_mb", "cpu_percent", "growth_mb_per_min")


def _parse_load_alerts(path: Path, value: Any) -> dict[str, float]:
    load = _known(path, "load", value, {"alerts"})
    alerts = _known(path, "load.alerts", load.get("alerts", {}), set(LOAD_ALERT_KEYS))
    return {key: float(_bounded_number(path, f"load.alerts.{key}", alerts[key], 1e-9, 1e12)) for key in alerts}


def _parse_rerun(path: Path, value: Any) -> RerunSettings:
    """[rerun] pythonpath = ["src"], max_rounds = 20, budget_minutes = 10, mode = "interleaved" | "duet",
    resolution = 0.05."""
    table = _known(path, "rerun", value, {"pythonpath", "max_rounds", "budget_minutes", "mode", "resolution"})
    defaults = RerunSettings()
    pythonpath = defaults.pythonpath
    if "pythonpath" in table:
        pythonpath = _string_list(path, "rerun.pythonpath", table["pythonpath"])
    return RerunSettings(
        pythonpath=pythonpath,
        max_rounds=_bounded_number(path, "rerun.max_rounds", table.get("max_rounds", defaults.max_rounds), 2, 10_000,
                                   integer=True),
        budget_s=60.0 * _bounded_number(path, "rerun.budget_minutes", table.get("budget_minutes", defaults.budget_s / 60),
                                        0.01, 10_000),
        mode=_choice(path, "rerun.mode", table.get("mode", defaults.mode), RERUN_MODES),
        resolution=_bounded_number(path, "rerun.resolution", table.get("resolution", defaults.resolution), 0.001, 1.0),
    )


_LEAK_KEYS = {"leak_minor_mb": "minor_mb", "leak_major_mb": "major_mb", "leak_critical_mb": "critical_mb",
              "leak_rate_flag_mb_per_min": "rate_flag_mb_per_min", "leak_long_run_s": "long_run_s"}


def _parse_leak(path: Path, memory: Mapping[str, Any]) -> LeakThresholds:
    """[memory] leak_minor_mb / leak_major_mb / leak_critical_mb / leak_rate_flag_mb_per_min / leak_long_run_s."""
    unknown = set(memory) - set(_LEAK_KEYS) - {"gc_pause_p95_ms"}
    if unknown:
        raise ConfigError(f"{path}: [memory] has unknown keys: {', '.join(sorted(unknown))}")
    values = {field_name: _bounded_number(path, f"memory.{key}", memory[key], 0.0, 1e9)
              for key, field_name in _LEAK_KEYS.items() if key in memory}
    try:
        return LeakThresholds(**values)
    except ValueError as exc:
        raise ConfigError(f"{path}: [memory] {exc}") from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    if data.get("schema") != LEVELS_SCHEMA:
        raise ConfigError(f'{path}: expected schema = "{LEVELS_SCHEMA}", got {data.get("schema")!r}')
    return data


def select_level(levels: Mapping[str, Level], name: str) -> Level:
    try:
        return levels[name]
    except KeyError:
        known = ", ".join(sorted(levels))
        raise UsageError(f"unknown level {name!r} (known: {known})") from None


_NUMBER_BOUNDS: Mapping[str, tuple[float, float]] = {
    "processes": (1, 1000),
    "samples": (1, 100_000),
    "warmups": (0, 10_000),
    "min_sample_time": (0.0001, 60.0),
    "timeout": (1.0, 86_400.0),
}


def _parse_level(path: Path, name: str, table: Any, default_thresholds: Mapping[str, Thresholds]) -> Level:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [levels.{name}] must be a table")
    known = {f.name for f in fields(Level)} - {"name"}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{path}: [levels.{name}] has unknown keys: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for key, (low, high) in _NUMBER_BOUNDS.items():
        if key in table:
            values[key] = _bounded_number(path, f"levels.{name}.{key}", table[key], low, high,
                                          integer=key in ("processes", "samples", "warmups"))
    for key in ("tags", "exclude_tags"):
        if key in table:
            values[key] = _string_list(path, f"levels.{name}.{key}", table[key])
    if "fail_on" in table:
        values["fail_on"] = _choice(path, f"levels.{name}.fail_on", table["fail_on"], SEVERITIES)
    if "instructions" in table:
        values["instructions"] = _instruction_selection(path, name, table["instructions"])
    for key in ("promote", "fail_on_undecided"):
        if key in table:
            if not isinstance(table[key], bool):
                raise ConfigError(f"{path}: levels.{name}.{key} must be true or false")
            values[key] = table[key]
    level_thresholds = _parse_thresholds(path, f"levels.{name}.thresholds", table.get("thresholds", {}))
    values["thresholds"] = {**default_thresholds, **level_thresholds}
    return Level(name=name, **values)


def _instruction_selection(path: Path, level: str, value: Any) -> tuple[str, ...]:
    """``instructions = true`` (every timed benchmark), ``false``, or a list of benchmark names."""
    if isinstance(value, bool):
        return (ALL_BENCHMARKS,) if value else ()
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{path}: levels.{level}.instructions must be true, false or a list of benchmark names")
    return tuple(value)


_FAMILIES = {"time": "relative", "gc": "relative", "memory_mb": "absolute", "instructions": "relative"}


def _parse_thresholds(path: Path, where: str, table: Any) -> dict[str, Thresholds]:
    """{"time": {minor, major, critical}, "gc": ..., "memory_mb": ...} -> Thresholds by family."""
    table = _table(path, where, table)
    parsed = {}
    for family, value in table.items():
        if family not in _FAMILIES:
            raise ConfigError(f"{path}: {where}.{family} is not one of {', '.join(_FAMILIES)}")
        bounds = _table(path, f"{where}.{family}", value)
        if set(bounds) != {"minor", "major", "critical"}:
            raise ConfigError(f"{path}: {where}.{family} needs exactly minor, major and critical")
        minor, major, critical = (
            _bounded_number(path, f"{where}.{family}.{key}", bounds[key], 0.0, 1e9) for key in ("minor", "major", "critical")
        )
        if not minor <= major <= critical:
            raise ConfigError(f"{path}: {where}.{family} must satisfy minor <= major <= critical")
        key = "memory" if family == "memory_mb" else family
        parsed[key] = Thresholds(minor, major, critical, scale=_FAMILIES[family])  # type: ignore[arg-type]
    return parsed


def _known(path: Path, where: str, value: Any, keys: set[str]) -> dict[str, Any]:
    table = _table(path, where, value)
    unknown = set(table) - keys
    if unknown:
        raise ConfigError(f"{path}: [{where}] has unknown keys: {', '.join(sorted(unknown))}")
    return table


def _table(path: Path, where: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: [{where}] must be a table")
    return value


def _string(path: Path, where: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}: {where} must be a non-empty string")
    return value


def _choice(path: Path, where: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{path}: {where} must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _bounded_number(path: Path, label: str, value: Any, low: float, high: float, integer: bool = False) -> Any:
    valid_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not valid_type or not math.isfinite(value) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{path}: {label} must be {kind} in [{low:g}, {high:g}], got {value!r}")
    return int(value) if integer else float(value)


def _string_list(path: Path, where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{path}: {where} must be a list of strings")
    return tuple(value)
