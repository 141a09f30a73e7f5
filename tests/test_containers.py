"""Container targets (benchtrack.probes.containers) against a real engine: a private podman
serving the Docker API (see container_support.py for the recipe), a container under a 64 MB
limit that the kernel OOM-kills and podman restarts, watched through the docker SDK."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from container_support import LIMIT_BYTES, PodmanEngine, allocator_command, podman_engine_fixture  # noqa: F401
from support import Invoked, assert_one_error_line

from benchtrack.errors import UsageError
from benchtrack.probes import containers
from benchtrack.probes.containers import ContainerTarget, make_container_target
from benchtrack.probes.targets import MemoryTarget, NoSuchTarget, TargetReading
from benchtrack.results import OomEvent

MB = 1024 * 1024
POLL_S = 0.5
WATCH_LIMIT_S = 90.0  # an upper bound only: the watch ends once the container stays dead; kills came 13 s apart once
DEAD_FOR_S = 3.0


def _watch(target: ContainerTarget, until_dead: bool = True) -> tuple[list[tuple[float, TargetReading]], list[OomEvent]]:
    """read() + new_oom_events() every POLL_S until the target is dead (or WATCH_LIMIT_S). Dead
    means not alive for DEAD_FOR_S: a read may catch the container between an OOM kill and podman
    restarting it, which under load took over a second."""
    readings: list[tuple[float, TargetReading]] = []
    events: list[OomEvent] = []
    start = time.monotonic()
    dead_since: float | None = None
    while time.monotonic() - start < WATCH_LIMIT_S:
        now = time.monotonic() - start
        reading = target.read()
        readings.append((now, reading))
        events += target.new_oom_events(now)
        dead_since = None if reading.alive else (now if dead_since is None else dead_since)
        if until_dead and dead_since is not None and now - dead_since >= DEAD_FOR_S:
            break
        time.sleep(POLL_S)
    return readings, events


# --- against podman ----------------------------------------------------------------------------


def test_oom_kills_under_a_64mb_limit_are_seen_as_restarts_then_exit_137(podman_engine: PodmanEngine) -> None:
    # idle 2 s, then +4 MB every 0.1 s: killed near 64 MB ~1.6 s later; on-failure:2 means three
    # kills (two restarts, then it stays exited with code 137).
    podman_engine.run("bt-oom", allocator_command(delay_s=2), restart="on-failure:2")
    target = make_container_target("bt-oom", podman_engine.url)
    try:
        assert isinstance(target, MemoryTarget)
        assert target.kind == "container"
        assert "bt-oom" in target.description
        assert podman_engine.url in target.description
        readings, events = _watch(target)
    finally:
        target.close()
    final = podman_engine.state("bt-oom")
    alive = [r for _, r in readings if r.alive]
    peak = max(r.memory_bytes for r in alive)
    first_kill = min(e.time_s for e in events) if events else None
    print(f"\n{len(readings)} readings over {readings[-1][0]:.1f} s; peak {peak / MB:.1f} MB; limits "
          f"{sorted({r.limit_bytes for r in alive if r.limit_bytes})}; first OOM event at {first_kill} s; "
          f"events {[(round(e.time_s, 1), e.kind) for e in events]}; engine: {final}")

    # podman reports "stopped" until its cleanup process has run, "exited" after: both are final here
    status, counts = final.split(" ", 1)
    assert status in {"exited", "stopped"}, final
    assert counts == "restarts=2 exit=137", final
    assert all(r.limit_bytes == LIMIT_BYTES for r in alive), [r.limit_bytes for r in alive]
    assert any(r.memory_bytes > 0 for r in alive)
    assert 16 * MB < peak <= LIMIT_BYTES, peak  # the allocation is seen before the kill
    assert not readings[-1][1].alive  # exited for good: the restart policy is used up
    assert readings[-1][1].memory_bytes == 0.0
    assert readings[-1][1].extra["restart_count"] == 2.0
    # Three kills, each reported once: as a restart, or as exit 137 when a read caught the
    # container between the kill and podman restarting it. The last one can only be exit 137.
    assert len(events) == 3, events
    assert {e.kind for e in events} <= {"restart", "exit_137"}
    assert events[-1].kind == "exit_137"
    assert all("bt-oom" in e.detail for e in events)
    assert [e.time_s for e in events] == sorted(e.time_s for e in events)
    assert first_kill is not None
    assert first_kill < 20


def test_an_unknown_container_name_is_one_usage_error_line(podman_engine: PodmanEngine) -> None:
    with pytest.raises(NoSuchTarget) as caught:
        make_container_target("bt-no-such-container", podman_engine.url)
    message = str(caught.value)
    assert isinstance(caught.value, UsageError)
    assert "bt-no-such-container" in message
    assert podman_engine.url in message
    assert "\n" not in message


def test_watch_cli_reports_the_oom_kills_of_a_container(podman_engine: PodmanEngine, invoke: Any, chdir_tmp: Path) -> None:
    podman_engine.run("bt-oom-cli", allocator_command(delay_s=1), restart="on-failure:1")
    started = time.monotonic()
    result: Invoked = invoke(["watch", "--container", "bt-oom-cli", "--docker-url", podman_engine.url, "--interval", "0.5",
                              "--duration", "60", "--no-track", "--format", "json"])
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result
    document = json.loads(result.stdout)
    print(f"\nwatch took {elapsed:.1f} s: samples {document['samples']}, peak {document['peak_mb']:.1f} MB, "
          f"limit {document['limit_mb']} MB, oom_events {[(round(e['time_s'], 1), e['kind']) for e in document['oom_events']]}")
    assert document["kind"] == "container"
    assert document["oom_events"], document
    assert {e["kind"] for e in document["oom_events"]} <= {"restart", "exit_137"}
    assert document["limit_mb"] == 64.0
    assert document["peak_mb"] > 0
    # the watch ends when the container has exited for good, not at --duration (podman took 13-17 s to
    # restart an OOM-killed container here, so both kills take 20-30 s)
    assert elapsed < 60


# --- no engine needed --------------------------------------------------------------------------


def test_an_unreachable_unix_socket_is_one_usage_error_line(tmp_path: Path) -> None:
    url = f"unix://{tmp_path / 'nothing-here.sock'}"
    with pytest.raises(UsageError) as caught:
        make_container_target("anything", url)
    message = str(caught.value)
    assert message.startswith(f"cannot reach a Docker API at {url}: start `podman system service` or Docker")
    assert "\n" not in message


def test_a_closed_tcp_port_is_one_usage_error_line() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    with pytest.raises(UsageError) as caught:
        make_container_target("anything", url)
    assert str(caught.value) == f"cannot reach a Docker API at {url}: start `podman system service` or Docker"


def test_a_malformed_address_is_one_usage_error_line() -> None:
    with pytest.raises(UsageError) as caught:
        make_container_target("anything", "bogus://x")
    assert "not a usable Docker API address: bogus://x" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_watch_cli_with_no_engine_prints_one_error_line(invoke: Any, chdir_tmp: Path) -> None:
    url = f"unix://{chdir_tmp / 'no-engine.sock'}"
    result = invoke(["watch", "--container", "web", "--docker-url", url, "--duration", "1", "--no-track"])
    assert_one_error_line(result, f"cannot reach a Docker API at {url}", "podman system service")


def test_default_url_prefers_docker_host_then_the_podman_socket(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://engine.example:2375")
    assert containers.default_docker_url() == "tcp://engine.example:2375"
    monkeypatch.delenv("DOCKER_HOST")
    sock = tmp_path / "podman.sock"
    monkeypatch.setattr(containers, "PODMAN_SOCKET", sock)
    assert containers.default_docker_url() == "unix:///var/run/docker.sock"
    sock.touch()
    assert containers.default_docker_url() == f"unix://{sock}"


# --- Docker's shapes, through a scripted engine --------------------------------------------------


class ScriptedApi:
    """The few low-level docker SDK calls a ContainerTarget makes, answering from a script."""

    api_version = "1.45"

    def __init__(self, states: list[Mapping[str, Any]]) -> None:
        self.states = states
        self.inspected: list[str] = []
        self.stats_calls: list[tuple[str, dict[str, Any]]] = []

    def inspect_container(self, name: str) -> Mapping[str, Any]:
        self.inspected.append(name)
        return self.states[0]

    def stats(self, container: str, **kwargs: Any) -> Mapping[str, Any]:
        self.stats_calls.append((container, kwargs))
        return {"memory_stats": {"usage": 50 * MB, "limit": 128 * MB,
                                 "stats": {"total_inactive_file": 10 * MB, "cache": 12 * MB}}}


class ScriptedClient:
    def __init__(self, api: ScriptedApi) -> None:
        self.api = api

    def close(self) -> None:
        pass


def _docker_state(*, running: bool, restarts: int, exit_code: int = 0, restarting: bool = False, oom: bool = False,
                  finished: str = "0001-01-01T00:00:00Z") -> Mapping[str, Any]:
    return {"Id": "f" * 64, "RestartCount": restarts,
            "State": {"Status": "running" if running else "exited", "Running": running, "Restarting": restarting,
                      "OOMKilled": oom, "Dead": False, "ExitCode": exit_code, "FinishedAt": finished},
            "HostConfig": {"Memory": 128 * MB, "RestartPolicy": {"Name": "always", "MaximumRetryCount": 0}}}


def test_docker_shapes_cache_is_subtracted_and_each_kill_is_reported_once(monkeypatch: pytest.MonkeyPatch) -> None:
    api = ScriptedApi([_docker_state(running=True, restarts=0)])
    monkeypatch.setattr(containers, "_connect", lambda _url: (ScriptedClient(api), "tcp://engine:2375"))
    target = make_container_target("web", None)

    reading = target.read()
    assert reading == TargetReading(40.0 * MB, 128.0 * MB, alive=True,
                                    extra={"restart_count": 0.0, "usage_with_cache_bytes": 50.0 * MB})
    assert api.stats_calls == [("f" * 64, {"stream": False, "one_shot": True})]  # by id, one-shot
    assert api.inspected == ["web", "f" * 64]
    assert target.new_oom_events(1.0) == []

    # Docker: killed, waiting to restart (Restarting, exit code 137 kept, OOMKilled set) ...
    api.states[0] = _docker_state(running=True, restarting=True, restarts=0, exit_code=137, oom=True,
                                  finished="2026-01-01T00:00:01Z")
    assert target.read().alive
    events = target.new_oom_events(2.0)
    assert [(e.time_s, e.kind) for e in events] == [(2.0, "exit_137")]
    assert "OOMKilled" in events[0].detail
    # ... then restarted: the same kill, not reported again
    api.states[0] = _docker_state(running=True, restarts=1)
    target.read()
    assert target.new_oom_events(3.0) == []
    # two more kills between two reads, seen only through the restart count
    api.states[0] = _docker_state(running=True, restarts=3)
    target.read()
    assert [e.kind for e in target.new_oom_events(4.0)] == ["restart", "restart"]
    # removed under our feet: dead, no events
    api.states[0] = _docker_state(running=False, restarts=3, exit_code=0)
    monkeypatch.setattr(api, "inspect_container", _raise_not_found)
    assert target.read() == TargetReading(0.0, None, alive=False)
    assert target.new_oom_events(5.0) == []
    assert target.last_error == "container web was removed"


def _raise_not_found(name: str) -> Mapping[str, Any]:
    import docker

    raise docker.errors.NotFound("no such container")
