"""Load scenarios: the TOML file (schema ``benchtrack.scenario/1``) parsed and validated into frozen records.

Every mistake raises ScenarioError with ONE line naming the file, the key and what is wrong.

History of ``benchtrack.scenario``:
  1 - name, base_url, duration, warmup, timeout, honour_retry_after; [model] open/closed; [pattern]
      constant/ramp/spike/burst/steps; [[endpoints]]; [monitor]; [alerts]; [criteria]; [scaling].
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchtrack.errors import ConfigError, UsageError

SCENARIO_SCHEMA = "benchtrack.scenario/1"
MODEL_KINDS = ("open", "closed")
PATTERN_KINDS = ("constant", "ramp", "spike", "burst", "steps")
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class ScenarioError(ConfigError):
    """A scenario file (or ad-hoc load option) that is malformed or inconsistent (exit 2)."""


@dataclass(frozen=True)
class LoadModel:
    """open: arrivals at `rate` requests/s whatever the server does; closed: `users` that send, wait, think."""

    kind: str  # "open" | "closed"
    rate: float | None = None  # open
    users: int | None = None  # closed
    think_s: float = 0.0  # closed: pause between an answer and the user's next send

    @property
    def value(self) -> float:
        """The model's load level: the rate (open) or the number of users (closed)."""
        return float(self.rate if self.kind == "open" else self.users)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Pattern:
    """How the rate (open) or the active users (closed) vary over time, as a factor of the model's value.

    ramp: `start` -> `end` over `up_s`, held `hold_s`, back to `start` over `down_s` (no down: stays at `end`);
    spike: `factor` during [at_s, at_s + length_s); burst: `factor` during the first `length_s` of every
    `every_s` period from `every_s` on; steps: `levels[i]` during the i-th `step_s`.
    """

    kind: str = "constant"
    start: float = 0.1  # ramp `from`
    end: float = 1.0  # ramp `to`
    up_s: float = 0.0
    hold_s: float = 0.0
    down_s: float = 0.0
    at_s: float = 0.0
    length_s: float = 0.0
    factor: float = 1.0
    every_s: float = 0.0
    levels: tuple[float, ...] = ()
    step_s: float = 0.0


@dataclass(frozen=True)
class Endpoint:
    method: str = "GET"
    path: str = "/"
    weight: float = 1.0
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    json: Any = None  # a TOML value sent as JSON; None: no JSON body


@dataclass(frozen=True)
class MonitorSpec:
    """The target watched during the load: exactly one of pid / container / cgroup / command."""

    pid: int | None = None
    container: str | None = None
    docker_url: str | None = None
    cgroup: str | None = None
    command: tuple[str, ...] | None = None
    interval_s: float = 1.0


@dataclass(frozen=True)
class AlertSpec:
    memory_mb: float | None = None
    cpu_percent: float | None = None
    growth_mb_per_min: float | None = None


@dataclass(frozen=True)
class CriteriaSpec:
    """Pass/fail thresholds; the scenario passes when at least `required` of the five hold."""

    growth_mb_per_hour: float = 50.0
    mean_response_s: float = 10.0
    success_rate: float = 0.95
    timeouts: int = 0
    peak_memory_ratio: float = 1.5
    required: int = 4


@dataclass(frozen=True)
class ScalingSpec:
    levels: tuple[float, ...]  # users (closed) or rates (open), one load run each
    settle_s: float = 10.0
    window_s: float = 20.0
    restart: bool = False
    reset_check: bool = True


@dataclass(frozen=True)
class Scenario:
    name: str
    base_url: str
    duration_s: float
    model: LoadModel
    endpoints: tuple[Endpoint, ...]
    pattern: Pattern = field(default_factory=Pattern)
    warmup_s: float = 0.0
    timeout_s: float = 10.0
    honour_retry_after: bool = True
    monitor: MonitorSpec | None = None
    alerts: AlertSpec | None = None
    criteria: CriteriaSpec = field(default_factory=CriteriaSpec)
    scaling: ScalingSpec | None = None
    source: str | None = None  # the file it came from, for messages


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario file; ScenarioError (one line) on any mistake."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"cannot read scenario {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path} is not valid TOML: {exc}") from None
    return parse_scenario(data, str(path))


def parse_scenario(data: Mapping[str, Any], source: str) -> Scenario:
    check = _Checker(source)
    check.known("", data, {"schema", "name", "base_url", "duration", "warmup", "timeout", "honour_retry_after",
                           "model", "pattern", "endpoints", "monitor", "alerts", "criteria", "scaling"})
    if data.get("schema") != SCENARIO_SCHEMA:
        check.fail("schema", f'must be "{SCENARIO_SCHEMA}", got {data.get("schema")!r}')
    duration_s = check.duration("duration", data.get("duration", _MISSING))
    warmup_s = check.duration("warmup", data.get("warmup", 0), allow_zero=True)
    if warmup_s >= duration_s:
        check.fail("warmup", f"({warmup_s:g} s) must be shorter than duration ({duration_s:g} s)")
    model = _parse_model(check, data.get("model", _MISSING))
    endpoints = data.get("endpoints", _MISSING)
    if endpoints is _MISSING or endpoints == []:
        check.fail("endpoints", "is missing: add at least one [[endpoints]] table with a path")
    if not isinstance(endpoints, list):
        check.fail("endpoints", "must be an array of tables ([[endpoints]])")
    scenario = Scenario(
        name=check.string("name", data.get("name", _MISSING)),
        base_url=check.base_url("base_url", data.get("base_url", _MISSING)),
        duration_s=duration_s,
        warmup_s=warmup_s,
        timeout_s=check.duration("timeout", data.get("timeout", 10)),
        honour_retry_after=check.boolean("honour_retry_after", data.get("honour_retry_after", True)),
        model=model,
        pattern=_parse_pattern(check, data.get("pattern", {})),
        endpoints=tuple(_parse_endpoint(check, f"endpoints[{index}]", table) for index, table in enumerate(endpoints)),
        monitor=_parse_monitor(check, data["monitor"]) if "monitor" in data else None,
        alerts=_parse_alerts(check, data["alerts"]) if "alerts" in data else None,
        criteria=_parse_criteria(check, data.get("criteria", {})),
        scaling=_parse_scaling(check, data["scaling"], model) if "scaling" in data else None,
        source=source,
    )
    if scenario.scaling and scenario.scaling.restart and not (scenario.monitor and scenario.monitor.command):
        check.fail("scaling.restart", "needs [monitor] command = [...] (the target benchtrack starts and restarts)")
    return scenario


def adhoc_scenario(url: str, *, rate: float | None = None, users: int | None = None, think_s: float = 0.0,
                   duration_s: float = 10.0, warmup_s: float = 0.0, timeout_s: float = 10.0, method: str = "GET",
                   name: str | None = None, honour_retry_after: bool = True, pattern: Pattern | None = None) -> Scenario:
    """A one-endpoint scenario for `benchtrack load URL`: open at `rate`, or closed with `users` (default open, 10/s)."""
    if rate is not None and users is not None:
        raise UsageError("give either --rate (open model) or --users (closed model), not both")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"invalid URL {url!r}: use http(s)://host[:port]/path")
    for label, value in (("duration", duration_s), ("timeout", timeout_s)):
        if not math.isfinite(value) or value <= 0:
            raise UsageError(f"--{label} must be positive, got {value!r}")
    if not 0 <= warmup_s < duration_s:
        raise UsageError(f"--warmup must be at least 0 and shorter than --duration, got {warmup_s!r}")
    if think_s < 0:
        raise UsageError(f"--think must not be negative, got {think_s!r}")
    if users is not None:
        if users < 1:
            raise UsageError(f"--users must be at least 1, got {users!r}")
        model = LoadModel("closed", users=users, think_s=float(think_s))
    else:
        chosen = 10.0 if rate is None else rate
        if not math.isfinite(chosen) or chosen <= 0:
            raise UsageError(f"--rate must be positive, got {rate!r}")
        model = LoadModel("open", rate=float(chosen))
    if method.upper() not in HTTP_METHODS:
        raise UsageError(f"unknown HTTP method {method!r} (use one of {', '.join(HTTP_METHODS)})")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Scenario(name=name or f"{method.upper()} {url}", base_url=f"{parts.scheme}://{parts.netloc}",
                    duration_s=duration_s, warmup_s=warmup_s, timeout_s=timeout_s, honour_retry_after=honour_retry_after,
                    model=model, pattern=pattern or Pattern(), endpoints=(Endpoint(method=method.upper(), path=path),))


class _Missing:
    def __repr__(self) -> str:
        return "nothing"


_MISSING: Any = _Missing()
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


class _Checker:
    """Type and range checks that fail with one line: '<file>: <key> <what is wrong>'."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> Any:
        raise ScenarioError(f"{self.source}: {key} {problem}")

    def known(self, where: str, table: Any, keys: set[str]) -> dict[str, Any]:
        if not isinstance(table, dict):
            self.fail(where, "must be a table")
        unknown = sorted(set(table) - keys)
        if unknown:
            key = f"{where}.{unknown[0]}" if where else unknown[0]
            self.fail(key, f"is not a known key (known{' in [' + where + ']' if where else ''}: {', '.join(sorted(keys))})")
        return table

    def present(self, key: str, value: Any) -> None:
        if value is _MISSING:
            self.fail(key, "is missing")

    def string(self, key: str, value: Any) -> str:
        self.present(key, value)
        if not isinstance(value, str) or not value.strip():
            self.fail(key, f"must be a non-empty string, got {value!r}")
        return str(value)

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {value!r}")
        return bool(value)

    def number(self, key: str, value: Any, *, low: float = 0.0, allow_low: bool = False, integer: bool = False) -> Any:
        """A number above `low` (or equal to it when allow_low)."""
        self.present(key, value)
        kinds = int if integer else int | float
        if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value):
            self.fail(key, f"must be {'an integer' if integer else 'a number'}, got {value!r}")
        if value < low or (value == low and not allow_low):
            self.fail(key, f"must be {'at least' if allow_low else 'greater than'} {low:g}, got {value!r}")
        return int(value) if integer else float(value)

    def duration(self, key: str, value: Any, *, allow_zero: bool = False) -> float:
        """Seconds as a number, or text: "500ms", "30s", "5m", "1h"."""
        self.present(key, value)
        if isinstance(value, str):
            match = _DURATION.match(value)
            if not match:
                self.fail(key, f'must be a duration like 30, "500ms", "30s", "5m" or "1h", got {value!r}')
            seconds = float(match.group(1)) * _DURATION_UNITS[match.group(2)]  # type: ignore[union-attr]
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            seconds = float(value)
        else:
            return self.fail(key, f'must be a duration like 30, "500ms", "30s", "5m" or "1h", got {value!r}')
        if seconds < 0 or (seconds == 0 and not allow_zero):
            self.fail(key, f"must be {'zero or more' if allow_zero else 'positive'}, got {value!r}")
        return seconds

    def base_url(self, key: str, value: Any) -> str:
        text = self.string(key, value)
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            self.fail(key, f"must be an http:// or https:// URL with a host, got {text!r}")
        if parts.path not in ("", "/") or parts.query:
            self.fail(key, f"must hold only scheme, host and port (put paths in [[endpoints]] path), got {text!r}")
        return f"{parts.scheme}://{parts.netloc}"


def _parse_model(check: _Checker, value: Any) -> LoadModel:
    if value is _MISSING:
        check.fail("model", 'is missing: add [model] with kind = "open" and rate, or kind = "closed" and users')
    table = check.known("model", value, {"kind", "rate", "users", "think"})
    kind = table.get("kind", _MISSING)
    if kind not in MODEL_KINDS:
        check.fail("model.kind", f"must be one of {', '.join(MODEL_KINDS)}, got {kind!r}")
    if kind == "open":
        for key in ("users", "think"):
            if key in table:
                check.fail(f"model.{key}", 'belongs to the closed model (kind = "closed"); the open model takes rate')
        return LoadModel("open", rate=check.number("model.rate", table.get("rate", _MISSING)))
    if "rate" in table:
        check.fail("model.rate", 'belongs to the open model (kind = "open"); the closed model takes users and think')
    return LoadModel("closed", users=check.number("model.users", table.get("users", _MISSING), low=1, allow_low=True,
                                                  integer=True),
                     think_s=check.duration("model.think", table.get("think", 0), allow_zero=True))


_PATTERN_KEYS: Mapping[str, set[str]] = {
    "constant": set(),
    "ramp": {"from", "to", "up", "hold", "down"},
    "spike": {"at", "length", "factor"},
    "burst": {"every", "length", "factor"},
    "steps": {"levels", "step"},
}


def _parse_pattern(check: _Checker, value: Any) -> Pattern:
    kind = check.known("pattern", value, {"kind"} | set().union(*_PATTERN_KEYS.values())).get("kind", "constant")
    if kind not in PATTERN_KINDS:
        check.fail("pattern.kind", f"must be one of {', '.join(PATTERN_KINDS)}, got {kind!r}")
    table = check.known("pattern", value, {"kind"} | _PATTERN_KEYS[kind])
    if kind == "ramp":
        return Pattern("ramp", start=check.number("pattern.from", table.get("from", 0.1), allow_low=True),
                       end=check.number("pattern.to", table.get("to", 1.0), allow_low=True),
                       up_s=check.duration("pattern.up", table.get("up", _MISSING)),
                       hold_s=check.duration("pattern.hold", table.get("hold", 0), allow_zero=True),
                       down_s=check.duration("pattern.down", table.get("down", 0), allow_zero=True))
    if kind == "spike":
        return Pattern("spike", at_s=check.duration("pattern.at", table.get("at", _MISSING), allow_zero=True),
                       length_s=check.duration("pattern.length", table.get("length", _MISSING)),
                       factor=check.number("pattern.factor", table.get("factor", _MISSING)))
    if kind == "burst":
        every_s = check.duration("pattern.every", table.get("every", _MISSING))
        length_s = check.duration("pattern.length", table.get("length", _MISSING))
        if length_s >= every_s:
            check.fail("pattern.length", f"({length_s:g} s) must be shorter than pattern.every ({every_s:g} s)")
        return Pattern("burst", every_s=every_s, length_s=length_s,
                       factor=check.number("pattern.factor", table.get("factor", _MISSING)))
    if kind == "steps":
        levels = table.get("levels", _MISSING)
        check.present("pattern.levels", levels)
        if not isinstance(levels, list) or not levels:
            check.fail("pattern.levels", f"must be a non-empty list of factors, got {levels!r}")
        return Pattern("steps", levels=tuple(check.number(f"pattern.levels[{index}]", level, allow_low=True)
                                             for index, level in enumerate(levels)),
                       step_s=check.duration("pattern.step", table.get("step", _MISSING)))
    return Pattern("constant")


def _parse_endpoint(check: _Checker, where: str, value: Any) -> Endpoint:
    table = check.known(where, value, {"method", "path", "weight", "headers", "body", "json"})
    method = check.string(f"{where}.method", table.get("method", "GET")).upper()
    if method not in HTTP_METHODS:
        check.fail(f"{where}.method", f"must be one of {', '.join(HTTP_METHODS)}, got {table.get('method')!r}")
    path = check.string(f"{where}.path", table.get("path", _MISSING))
    if not path.startswith("/"):
        check.fail(f"{where}.path", f"must start with / (it is joined to base_url), got {path!r}")
    headers = table.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(item, str) for item in headers.values()):
        check.fail(f"{where}.headers", "must be a table of strings, like { Accept = \"application/json\" }")
    if "body" in table and "json" in table:
        check.fail(where, "sets both body and json: keep one")
    body = table.get("body")
    if body is not None and not isinstance(body, str):
        check.fail(f"{where}.body", f"must be a string, got {body!r}")
    return Endpoint(method=method, path=path, weight=check.number(f"{where}.weight", table.get("weight", 1)),
                    headers=dict(headers), body=body, json=table.get("json"))


def _parse_monitor(check: _Checker, value: Any) -> MonitorSpec:
    table = check.known("monitor", value, {"pid", "container", "docker_url", "cgroup", "command", "interval"})
    targets = [key for key in ("pid", "container", "cgroup", "command") if key in table]
    if len(targets) > 1:
        check.fail("monitor", f"names {len(targets)} targets ({', '.join(targets)}): keep one of pid, container, cgroup, command")
    if "docker_url" in table and "container" not in table:
        check.fail("monitor.docker_url", "only applies to a container target (monitor.container)")
    command = table.get("command")
    if command is not None and (not isinstance(command, list) or not command
                                or not all(isinstance(part, str) and part for part in command)):
        check.fail("monitor.command", f'must be a non-empty list of strings, like ["python", "server.py"], got {command!r}')
    return MonitorSpec(
        pid=check.number("monitor.pid", table["pid"], low=1, allow_low=True, integer=True) if "pid" in table else None,
        container=check.string("monitor.container", table["container"]) if "container" in table else None,
        docker_url=check.string("monitor.docker_url", table["docker_url"]) if "docker_url" in table else None,
        cgroup=check.string("monitor.cgroup", table["cgroup"]) if "cgroup" in table else None,
        command=tuple(command) if command is not None else None,
        interval_s=check.duration("monitor.interval", table.get("interval", 1)),
    )


def _parse_alerts(check: _Checker, value: Any) -> AlertSpec:
    table = check.known("alerts", value, {"memory_mb", "cpu_percent", "growth_mb_per_min"})
    return AlertSpec(**{key: check.number(f"alerts.{key}", item) for key, item in table.items()})


def _parse_criteria(check: _Checker, value: Any) -> CriteriaSpec:
    keys = {"growth_mb_per_hour", "mean_response_s", "success_rate", "timeouts", "peak_memory_ratio", "required"}
    table = check.known("criteria", value, keys)
    defaults = CriteriaSpec()
    values: dict[str, Any] = {}
    for key in ("growth_mb_per_hour", "mean_response_s", "peak_memory_ratio"):
        values[key] = check.number(f"criteria.{key}", table.get(key, getattr(defaults, key)))
    values["timeouts"] = check.number("criteria.timeouts", table.get("timeouts", defaults.timeouts), allow_low=True,
                                      integer=True)
    values["success_rate"] = check.number("criteria.success_rate", table.get("success_rate", defaults.success_rate),
                                          allow_low=True)
    if values["success_rate"] > 1:
        check.fail("criteria.success_rate", f"must be a share between 0 and 1, got {values['success_rate']!r}")
    values["required"] = check.number("criteria.required", table.get("required", defaults.required), low=1,
                                      allow_low=True, integer=True)
    if values["required"] > 5:
        check.fail("criteria.required", f"must be at most 5 (there are five criteria), got {values['required']!r}")
    return CriteriaSpec(**values)


def _parse_scaling(check: _Checker, value: Any, model: LoadModel) -> ScalingSpec:
    table = check.known("scaling", value, {"levels", "settle", "window", "restart", "reset_check"})
    levels = table.get("levels", _MISSING)
    check.present("scaling.levels", levels)
    if not isinstance(levels, list) or not levels:
        check.fail("scaling.levels", f"must be a non-empty list of {'users' if model.kind == 'closed' else 'rates'}")
    integer = model.kind == "closed"  # users come whole
    return ScalingSpec(
        levels=tuple(float(check.number(f"scaling.levels[{index}]", level, integer=integer))
                     for index, level in enumerate(levels)),
        settle_s=check.duration("scaling.settle", table.get("settle", 10), allow_zero=True),
        window_s=check.duration("scaling.window", table.get("window", 20)),
        restart=check.boolean("scaling.restart", table.get("restart", False)),
        reset_check=check.boolean("scaling.reset_check", table.get("reset_check", True)),
    )
