"""Level configuration (quick / comprehensive / nightly), loaded from a TOML file and validated.

History of ``benchtrack.levels``:
  1 - processes, samples, warmups, min_sample_time, timeout, tag filters.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

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

    def selects(self, benchmark_tags: tuple[str, ...], benchmark_levels: tuple[str, ...]) -> bool:
        if benchmark_levels and self.name not in benchmark_levels:
            return False
        if self.tags and not set(self.tags) & set(benchmark_tags):
            return False
        return not set(self.exclude_tags) & set(benchmark_tags)


DEFAULT_LEVELS: Mapping[str, Level] = {
    "quick": Level("quick", processes=2, samples=5, warmups=1, timeout=120.0),
    "comprehensive": Level("comprehensive", processes=5, samples=10, warmups=2, timeout=600.0),
    "nightly": Level("nightly", processes=10, samples=20, warmups=3, timeout=1800.0),
}


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
    if path is None:
        return dict(DEFAULT_LEVELS)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    if data.get("schema") != LEVELS_SCHEMA:
        raise ConfigError(f'{path}: expected schema = "{LEVELS_SCHEMA}", got {data.get("schema")!r}')
    levels = data.get("levels")
    if not isinstance(levels, dict) or not levels:
        raise ConfigError(f"{path}: no [levels.<name>] tables")
    return {name: _parse_level(path, name, table) for name, table in levels.items()}


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


def _parse_level(path: Path, name: str, table: Any) -> Level:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [levels.{name}] must be a table")
    known = {f.name for f in fields(Level)} - {"name"}
    unknown = set(table) - known
    if unknown:
        raise ConfigError(f"{path}: [levels.{name}] has unknown keys: {', '.join(sorted(unknown))}")
    values: dict[str, Any] = {}
    for key, (low, high) in _NUMBER_BOUNDS.items():
        if key in table:
            values[key] = _bounded_number(path, name, key, table[key], low, high)
    for key in ("tags", "exclude_tags"):
        if key in table:
            values[key] = _string_list(path, name, key, table[key])
    return Level(name=name, **values)


def _bounded_number(path: Path, level: str, key: str, value: Any, low: float, high: float) -> Any:
    integer = key in ("processes", "samples", "warmups")
    valid_type = isinstance(value, int) if integer else isinstance(value, int | float)
    if isinstance(value, bool) or not valid_type or not math.isfinite(value) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ConfigError(f"{path}: levels.{level}.{key} must be {kind} in [{low:g}, {high:g}], got {value!r}")
    return int(value) if integer else float(value)


def _string_list(path: Path, level: str, key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{path}: levels.{level}.{key} must be a list of strings")
    return tuple(value)
