"""Containers as memory targets, through any engine that speaks the Docker API (Docker, or
podman's ``podman system service``), with the docker SDK.

A read is one ``inspect`` (state, restart count, configured limit) plus, while the container
runs, one one-shot ``stats`` call (a few ms; without ``one_shot`` Docker waits ~1 s to fill
``precpu_stats``). Memory is the engine's ``usage`` minus inactive page cache when the engine
reports it (Docker's ``total_inactive_file`` on cgroup v1, ``inactive_file`` on v2, ``cache`` on
old engines); podman's stats hold ``usage`` and ``limit`` only, so its usage is taken as is.

OOM kills: engines' ``OOMKilled`` flags are unreliable (podman always says false), so a kill is
seen the way it shows everywhere:

- ``restart``: the restart count rose, once per restart. The exit code of a restarted run is
  gone by then (the engine resets it on start), and podman's events API answers queries over a
  past window incompletely, so every restart counts: a container that restarts for another
  reason is reported too (the detail says what was seen);
- ``exit_137``: the container is not running (stopped, exited or waiting to restart) with exit
  code 137, i.e. it was SIGKILLed: an OOM kill, or a kill by hand.

A kill seen both ways (exit 137 seen, then the restart it caused) is reported once.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchtrack.errors import UsageError
from benchtrack.probes.targets import NoSuchTarget, TargetReading
from benchtrack.results import OomEvent

PODMAN_SOCKET = Path("/run/podman/podman.sock")
DOCKER_SOCKET_URL = "unix:///var/run/docker.sock"
API_TIMEOUT_S = 10.0
RESTART_GRACE_S = 5.0  # a stopped container whose policy restarts it counts as alive this long
_INSPECT_REUSE_S = 0.25  # new_oom_events() reuses read()'s inspect when it is this fresh
_NO_LIMIT_BYTES = 2**62
_ONE_SHOT_API = "1.41"


def default_docker_url() -> str:
    """DOCKER_HOST, else podman's root socket when it exists, else Docker's default socket."""
    host = os.environ.get("DOCKER_HOST", "").strip()
    if host:
        return host
    if PODMAN_SOCKET.exists():
        return f"unix://{PODMAN_SOCKET}"
    return DOCKER_SOCKET_URL


def make_container_target(name: str, docker_url: str | None = None) -> ContainerTarget:
    """The container called (or with the id) ``name`` on the engine at ``docker_url``
    (see :func:`default_docker_url`); UsageError (one line) when either cannot be found."""
    return ContainerTarget(name, docker_url)


class ContainerTarget:
    """A container watched through the Docker API; see the module docstring."""

    kind = "container"

    def __init__(self, name: str, docker_url: str | None = None) -> None:
        name = name.strip()
        if not name:
            raise UsageError("no container name given")
        self.name = name
        self._client, self.url = _connect(docker_url)
        self._api = self._client.api
        errors = _docker_errors()
        try:
            attrs = self._api.inspect_container(name)
        except errors.NotFound:
            self._client.close()
            raise NoSuchTarget(f"no container named {name!r} at {self.url}") from None
        except errors.DockerException as exc:
            self._client.close()
            raise UsageError(f"cannot inspect container {name!r} at {self.url}: {_one_line(exc)}") from None
        except _transport_errors() as exc:
            self._client.close()
            raise UsageError(f"lost the Docker API at {self.url}: {_one_line(exc)}") from None
        self.id: str = attrs.get("Id", name)
        self.description = f"container {name} ({self.id[:12]}) at {self.url}"
        self.last_error: str | None = None  # why the last read could not reach the engine
        self._one_shot = _version_gte(self._api.api_version, _ONE_SHOT_API)
        self._attrs: Mapping[str, Any] | None = attrs
        self._attrs_at = time.monotonic()
        self._stopped_since: float | None = None
        # Kills before we started watching are not ours to report: start from the current state.
        self._restart_count = _restart_count(attrs)
        self._exit_key = _exit_137_key(attrs)
        self._exit_reported_at_count: int | None = self._restart_count if self._exit_key else None

    # --- MemoryTarget --------------------------------------------------------------------------

    def read(self) -> TargetReading:
        attrs = self._inspect()
        if attrs is None:
            return TargetReading(0.0, None, alive=False)
        state = _state(attrs)
        configured = _configured_limit(attrs)
        extra = {"restart_count": float(_restart_count(attrs))}
        if not state.get("Running") or state.get("Restarting"):
            return TargetReading(0.0, configured if configured else None, alive=self._alive(attrs), extra=extra)
        self._stopped_since = None
        memory = self._memory_stats()
        if memory is None:  # exited between inspect and stats
            return TargetReading(0.0, configured if configured else None, alive=True, extra=extra)
        usage, raw = _usage(memory)
        if raw != usage:
            extra["usage_with_cache_bytes"] = raw
        return TargetReading(usage, _limit(memory, configured), alive=True, extra=extra)

    def new_oom_events(self, time_s: float) -> list[OomEvent]:
        attrs = self._attrs if self._attrs is not None and time.monotonic() - self._attrs_at < _INSPECT_REUSE_S else None
        attrs = attrs or self._inspect()
        if attrs is None:
            return []
        events: list[OomEvent] = []
        count = _restart_count(attrs)
        if count > self._restart_count:
            restarts = count - self._restart_count
            if self._exit_reported_at_count == self._restart_count:
                restarts -= 1  # the first restart follows an exit 137 already reported
            detail = (f"{self.name}: restart count {self._restart_count} -> {count} (the engine restarted it "
                      "after an exit; under podman an OOM kill shows only this way)")
            events.extend(OomEvent(time_s, "restart", detail) for _ in range(restarts))
            self._restart_count = count
            self._exit_reported_at_count = None
        key = _exit_137_key(attrs)
        if key is not None and key != self._exit_key:
            self._exit_key = key
            self._exit_reported_at_count = count
            flag = "; the engine reports OOMKilled" if _state(attrs).get("OOMKilled") else ""
            detail = f"{self.name} exited with code 137 (an OOM kill, or another SIGKILL{flag})"
            events.append(OomEvent(time_s, "exit_137", detail))
        return events

    def close(self) -> None:
        self._client.close()

    # --- engine calls --------------------------------------------------------------------------

    def _inspect(self) -> Mapping[str, Any] | None:
        """The container's inspect document; None when it is gone or the engine is unreachable."""
        errors = _docker_errors()
        try:
            attrs: Mapping[str, Any] = self._api.inspect_container(self.id)
        except errors.NotFound:
            self.last_error = f"container {self.name} was removed"
            return None
        except (errors.DockerException, *_transport_errors()) as exc:
            self.last_error = f"lost the Docker API at {self.url}: {_one_line(exc)}"
            return None
        self.last_error = None
        self._attrs, self._attrs_at = attrs, time.monotonic()
        return attrs

    def _memory_stats(self) -> Mapping[str, Any] | None:
        errors = _docker_errors()
        kwargs: dict[str, Any] = {"stream": False}
        if self._one_shot:
            kwargs["one_shot"] = True
        try:
            stats = self._api.stats(self.id, **kwargs)
        except (errors.DockerException, ValueError, *_transport_errors()):
            return None  # podman answers an empty body for a container that is not running
        memory = stats.get("memory_stats") if isinstance(stats, Mapping) else None
        return memory if isinstance(memory, Mapping) and memory.get("usage") is not None else None

    def _alive(self, attrs: Mapping[str, Any]) -> bool:
        """Running, or stopped but about to be restarted by its policy (for RESTART_GRACE_S at
        most: a container stopped by hand keeps a restart policy it will not act on)."""
        state = _state(attrs)
        if state.get("Running") or state.get("Restarting"):
            return True
        if state.get("Dead") or not _policy_restarts(attrs):
            return False
        now = time.monotonic()
        if self._stopped_since is None:
            self._stopped_since = now
        return now - self._stopped_since < RESTART_GRACE_S


# --- helpers -----------------------------------------------------------------------------------


def _docker() -> Any:
    try:
        import docker
    except ImportError:
        raise UsageError("watching a container needs the docker SDK: pip install docker") from None
    return docker


def _docker_errors() -> Any:
    return _docker().errors


def _transport_errors() -> tuple[type[BaseException], ...]:
    import requests

    return (requests.exceptions.RequestException, OSError)


def _connect(docker_url: str | None) -> tuple[Any, str]:
    docker = _docker()
    url = (docker_url or "").strip() or default_docker_url()
    if url.startswith("/"):
        url = f"unix://{url}"
    kwargs: dict[str, Any] = {}
    try:
        if not docker_url and os.environ.get("DOCKER_HOST", "").strip():
            kwargs = docker.utils.kwargs_from_env()  # DOCKER_TLS_VERIFY / DOCKER_CERT_PATH too
        else:
            kwargs = {"base_url": url}
        docker.utils.parse_host(kwargs["base_url"], tls=bool(kwargs.get("tls")))
    except docker.errors.DockerException as exc:
        raise UsageError(f"not a usable Docker API address: {url} ({_one_line(exc)}; "
                         "expected unix:///path/to.sock or tcp://host:port)") from None
    unreachable = UsageError(f"cannot reach a Docker API at {url}: start `podman system service` or Docker"
                             f"{_socket_hint(url)}")
    if url.startswith("unix://") and not _unix_socket_accepts(Path(url.removeprefix("unix://"))):
        # Checked here: the SDK leaks its socket when connecting to a unix socket fails.
        raise unreachable
    try:
        client = docker.DockerClient(timeout=API_TIMEOUT_S, **kwargs)  # asks the engine its API version
    except (docker.errors.DockerException, *_transport_errors()):
        raise unreachable from None
    return client, url


def _unix_socket_accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(API_TIMEOUT_S)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _socket_hint(url: str) -> str:
    if url.startswith("unix://"):
        path = Path(url.removeprefix("unix://"))
        if not path.exists():
            return f" (no socket at {path})"
        if not path.is_socket():
            return f" ({path} is not a socket)"
        if not os.access(path, os.R_OK | os.W_OK):
            return f" (no permission to use {path})"
    return ""


def _one_line(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc) or type(exc).__name__
    return " ".join(text.split())[:300]


def _version_gte(version: object, minimum: str) -> bool:
    try:
        return tuple(int(p) for p in str(version).split(".")) >= tuple(int(p) for p in minimum.split("."))
    except ValueError:
        return False


def _state(attrs: Mapping[str, Any]) -> Mapping[str, Any]:
    state = attrs.get("State")
    return state if isinstance(state, Mapping) else {}


def _restart_count(attrs: Mapping[str, Any]) -> int:
    try:
        return int(attrs.get("RestartCount") or 0)
    except (TypeError, ValueError):
        return 0


def _exit_137_key(attrs: Mapping[str, Any]) -> tuple[int, str] | None:
    """Identifies one exit with code 137 of a container that is not running normally."""
    state = _state(attrs)
    if state.get("ExitCode") != 137 or (state.get("Running") and not state.get("Restarting")):
        return None
    return _restart_count(attrs), str(state.get("FinishedAt", ""))


def _policy_restarts(attrs: Mapping[str, Any]) -> bool:
    host = attrs.get("HostConfig") or {}
    policy = host.get("RestartPolicy") or {}
    name = policy.get("Name") or ""
    if name in {"always", "unless-stopped"}:
        return True
    if name == "on-failure":
        maximum = int(policy.get("MaximumRetryCount") or 0)
        return _state(attrs).get("ExitCode") != 0 and (maximum == 0 or _restart_count(attrs) < maximum)
    return False


def _configured_limit(attrs: Mapping[str, Any]) -> float | None:
    """HostConfig.Memory: a positive limit, 0.0 for "no limit", None when the engine omits it."""
    host = attrs.get("HostConfig") or {}
    value = host.get("Memory")
    if not isinstance(value, int | float):
        return None
    return float(value) if 0 < value < _NO_LIMIT_BYTES else 0.0


def _limit(memory: Mapping[str, Any], configured: float | None) -> float | None:
    if configured == 0.0:
        return None  # unlimited: the engine's "limit" is then just the host's memory
    limit = memory.get("limit")
    if isinstance(limit, int | float) and 0 < limit < _NO_LIMIT_BYTES:
        return float(limit)
    return configured


def _usage(memory: Mapping[str, Any]) -> tuple[float, float]:
    """(usage without inactive page cache, usage as the engine reports it), like `docker stats`."""
    raw = float(memory.get("usage") or 0)
    detail = memory.get("stats")
    detail = detail if isinstance(detail, Mapping) else {}
    for key in ("total_inactive_file", "inactive_file", "cache"):
        cache = detail.get(key)
        if isinstance(cache, int | float):
            return (raw - cache if cache < raw else raw), raw
    return raw, raw
