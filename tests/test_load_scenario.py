"""Scenario files: the whole TOML parsed into records, and every mistake one line naming file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchtrack.errors import BenchtrackError, ConfigError, UsageError
from benchtrack.load.scenario import (
    AlertSpec,
    CriteriaSpec,
    Endpoint,
    LoadModel,
    MonitorSpec,
    Pattern,
    ScalingSpec,
    ScenarioError,
    adhoc_scenario,
    load_scenario,
)

FULL = """
schema = "benchtrack.scenario/1"
name = "checkout"
base_url = "http://127.0.0.1:8080"
duration = "1m"
warmup = "500ms"
timeout = 2.5
honour_retry_after = false

[model]
kind = "closed"
users = 3
think = "5s"

[pattern]
kind = "ramp"
from = 0.2
to = 1.0
up = "20s"
hold = "20s"
down = "10s"

[[endpoints]]
method = "get"
path = "/items"
weight = 3
headers = { Accept = "application/json" }

[[endpoints]]
method = "POST"
path = "/cart"
json = { item = 7, tags = ["a"] }

[monitor]
command = ["python", "server.py"]
interval = "250ms"

[alerts]
memory_mb = 500
cpu_percent = 90

[criteria]
success_rate = 0.99
timeouts = 2
required = 5

[scaling]
levels = [1, 2, 4]
settle = "2s"
window = "1h"
restart = true
"""

MINIMAL = """
schema = "benchtrack.scenario/1"
name = "minimal"
base_url = "http://localhost:9000"
duration = 30

[model]
kind = "open"
rate = 50

[[endpoints]]
path = "/"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_full_scenario_is_parsed_into_records(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, FULL))
    assert scenario.name == "checkout"
    assert scenario.base_url == "http://127.0.0.1:8080"
    assert (scenario.duration_s, scenario.warmup_s, scenario.timeout_s) == (60.0, 0.5, 2.5)
    assert scenario.honour_retry_after is False
    assert scenario.model == LoadModel("closed", users=3, think_s=5.0)
    assert scenario.model.value == 3.0
    assert scenario.pattern == Pattern("ramp", start=0.2, end=1.0, up_s=20.0, hold_s=20.0, down_s=10.0)
    assert scenario.endpoints == (
        Endpoint("GET", "/items", 3.0, {"Accept": "application/json"}),
        Endpoint("POST", "/cart", 1.0, {}, json={"item": 7, "tags": ["a"]}),
    )
    assert scenario.monitor == MonitorSpec(command=("python", "server.py"), interval_s=0.25)
    assert scenario.alerts == AlertSpec(memory_mb=500.0, cpu_percent=90.0)
    assert scenario.criteria == CriteriaSpec(success_rate=0.99, timeouts=2, required=5)
    assert scenario.scaling == ScalingSpec(levels=(1.0, 2.0, 4.0), settle_s=2.0, window_s=3600.0, restart=True)
    assert scenario.source == str(tmp_path / "scenario.toml")


def test_optional_sections_take_their_defaults(tmp_path: Path) -> None:
    scenario = load_scenario(write(tmp_path, MINIMAL))
    assert scenario.model == LoadModel("open", rate=50.0)
    assert scenario.pattern == Pattern()
    assert (scenario.warmup_s, scenario.timeout_s, scenario.honour_retry_after) == (0.0, 10.0, True)
    assert scenario.endpoints == (Endpoint(path="/"),)
    assert (scenario.monitor, scenario.alerts, scenario.scaling) == (None, None, None)
    assert scenario.criteria == CriteriaSpec()


def _swap(text: str, old: str, new: str) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


MISTAKES = [
    # (what is wrong, edit of the minimal file, words the one line must hold)
    ("unknown top-level key", lambda t: "rate = 3\n" + t, [": rate is not a known key (known: alerts, base_url,"]),
    ("unknown key in a table", lambda t: _swap(t, "rate = 50", "rate = 50\nburst = 2"), ["model.burst", "not a known key"]),
    ("wrong schema", lambda t: _swap(t, "scenario/1", "scenario/9"), ["schema", "benchtrack.scenario/1"]),
    ("missing duration", lambda t: _swap(t, "duration = 30", ""), ["duration", "missing"]),
    ("bad duration text", lambda t: _swap(t, "duration = 30", 'duration = "soon"'), ["duration", "500ms"]),
    ("zero duration", lambda t: _swap(t, "duration = 30", 'duration = "0s"'), ["duration", "positive"]),
    ("negative duration", lambda t: _swap(t, "duration = 30", "duration = -5"), ["duration", "positive"]),
    ("warm-up past the end", lambda t: _swap(t, "duration = 30", 'duration = 30\nwarmup = "30s"'), ["warmup", "shorter"]),
    ("wrong type", lambda t: _swap(t, "duration = 30", "duration = 30\nhonour_retry_after = 1"),
     ["honour_retry_after", "true or false"]),
    ("zero rate", lambda t: _swap(t, "rate = 50", "rate = 0"), ["model.rate", "greater than 0"]),
    ("rate as text", lambda t: _swap(t, "rate = 50", 'rate = "fast"'), ["model.rate", "a number"]),
    ("unknown model", lambda t: _swap(t, '"open"', '"poisson"'), ["model.kind", "open, closed"]),
    ("users in the open model", lambda t: _swap(t, "rate = 50", "rate = 50\nusers = 3"), ["model.users", "closed"]),
    ("closed without users", lambda t: _swap(t, 'kind = "open"\nrate = 50', 'kind = "closed"'), ["model.users", "missing"]),
    ("fractional users", lambda t: _swap(t, 'kind = "open"\nrate = 50', 'kind = "closed"\nusers = 1.5'),
     ["model.users", "integer"]),
    ("missing model", lambda t: _swap(t, '[model]\nkind = "open"\nrate = 50', ""), ["model", "missing"]),
    ("unknown pattern", lambda t: t + '\n[pattern]\nkind = "zigzag"\n', ["pattern.kind", "constant, ramp"]),
    ("key of another pattern", lambda t: t + '\n[pattern]\nkind = "spike"\nat = 1\nlength = 1\nfactor = 2\nevery = 3\n',
     ["pattern.every", "not a known key"]),
    ("spike without factor", lambda t: t + '\n[pattern]\nkind = "spike"\nat = 1\nlength = 1\n', ["pattern.factor", "missing"]),
    ("burst longer than its period", lambda t: t + '\n[pattern]\nkind = "burst"\nevery = 2\nlength = 3\nfactor = 2\n',
     ["pattern.length", "shorter"]),
    ("empty steps", lambda t: t + '\n[pattern]\nkind = "steps"\nlevels = []\nstep = 1\n', ["pattern.levels", "non-empty"]),
    ("negative step level", lambda t: t + '\n[pattern]\nkind = "steps"\nlevels = [1, -1]\nstep = 1\n',
     ["pattern.levels[1]", "at least 0"]),
    ("no endpoints", lambda t: _swap(t, '[[endpoints]]\npath = "/"', ""), ["endpoints", "at least one"]),
    ("endpoint without a path", lambda t: _swap(t, 'path = "/"', "weight = 2"), ["endpoints[0].path", "missing"]),
    ("relative path", lambda t: _swap(t, 'path = "/"', 'path = "items"'), ["endpoints[0].path", "start with /"]),
    ("zero weight", lambda t: _swap(t, 'path = "/"', 'path = "/"\nweight = 0'), ["endpoints[0].weight", "greater than 0"]),
    ("body and json", lambda t: _swap(t, 'path = "/"', 'path = "/"\nbody = "x"\njson = { a = 1 }'),
     ["endpoints[0]", "both body and json"]),
    ("unknown method", lambda t: _swap(t, 'path = "/"', 'path = "/"\nmethod = "FETCH"'), ["endpoints[0].method", "GET"]),
    ("headers not strings", lambda t: _swap(t, 'path = "/"', 'path = "/"\nheaders = { X = 1 }'),
     ["endpoints[0].headers", "strings"]),
    ("not an http URL", lambda t: _swap(t, '"http://localhost:9000"', '"ftp://localhost:9000"'), ["base_url", "http://"]),
    ("path in base_url", lambda t: _swap(t, '"http://localhost:9000"', '"http://localhost:9000/api"'),
     ["base_url", "[[endpoints]] path"]),
    ("two monitor targets", lambda t: t + '\n[monitor]\npid = 12\ncontainer = "web"\n', ["monitor", "pid, container"]),
    ("empty monitor command", lambda t: t + "\n[monitor]\ncommand = []\n", ["monitor.command", "non-empty list"]),
    ("docker_url without container", lambda t: t + '\n[monitor]\npid = 3\ndocker_url = "unix:///x"\n',
     ["monitor.docker_url", "container"]),
    ("negative alert", lambda t: t + "\n[alerts]\nmemory_mb = -1\n", ["alerts.memory_mb", "greater than 0"]),
    ("success rate over 1", lambda t: t + "\n[criteria]\nsuccess_rate = 95\n", ["criteria.success_rate", "between 0 and 1"]),
    ("required over 5", lambda t: t + "\n[criteria]\nrequired = 6\n", ["criteria.required", "at most 5"]),
    ("scaling without levels", lambda t: t + "\n[scaling]\nwindow = 3\n", ["scaling.levels", "missing"]),
    ("restart without command", lambda t: t + "\n[scaling]\nlevels = [1]\nrestart = true\n", ["scaling.restart", "command"]),
    ("invalid TOML", lambda t: t + "\n[model\n", ["not valid TOML"]),
]


@pytest.mark.parametrize(("edit", "words"), [pytest.param(edit, words, id=name) for name, edit, words in MISTAKES])
def test_every_mistake_is_one_line_naming_the_file_and_key(tmp_path: Path, edit: object, words: list[str]) -> None:
    path = write(tmp_path, edit(MINIMAL))  # type: ignore[operator]
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    for word in words:
        assert word in message, message
    assert isinstance(caught.value, ConfigError)
    assert caught.value.exit_code == 2


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match=r"^cannot read scenario .*nope\.toml"):
        load_scenario(tmp_path / "nope.toml")


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h", 3600.0),
                                               ("2.5", 2.5), ("1.5m", 90.0)])
def test_durations_take_units(tmp_path: Path, text: str, seconds: float) -> None:
    scenario = load_scenario(write(tmp_path, _swap(MINIMAL, "duration = 30", f'duration = "{text}"')))
    assert scenario.duration_s == seconds


def test_adhoc_scenario_splits_the_url_and_picks_the_model() -> None:
    scenario = adhoc_scenario("http://127.0.0.1:8080/items?page=2", rate=25, duration_s=5)
    assert scenario.base_url == "http://127.0.0.1:8080"
    assert scenario.endpoints == (Endpoint("GET", "/items?page=2"),)
    assert scenario.model == LoadModel("open", rate=25.0)
    closed = adhoc_scenario("http://localhost:1", users=3, think_s=5, method="post")
    assert closed.model == LoadModel("closed", users=3, think_s=5.0)
    assert closed.endpoints == (Endpoint("POST", "/"),)
    assert adhoc_scenario("http://localhost:1").model == LoadModel("open", rate=10.0)


@pytest.mark.parametrize(("url", "options", "words"), [
    ("localhost:8080/x", {}, "invalid URL"),
    ("http://localhost:1", {"rate": 5, "users": 2}, "not both"),
    ("http://localhost:1", {"rate": 0}, "--rate must be positive"),
    ("http://localhost:1", {"users": 0}, "--users must be at least 1"),
    ("http://localhost:1", {"duration_s": 5, "warmup_s": 5}, "--warmup"),
    ("http://localhost:1", {"method": "FETCH"}, "unknown HTTP method"),
])
def test_adhoc_mistakes_are_usage_errors(url: str, options: dict[str, object], words: str) -> None:
    with pytest.raises(UsageError, match=words) as caught:
        adhoc_scenario(url, **options)  # type: ignore[arg-type]
    assert isinstance(caught.value, BenchtrackError)
    assert "\n" not in str(caught.value)
