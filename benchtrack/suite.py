"""The @benchmark API and discovery of benchmark files (``bench_*.py``) under a folder."""

from __future__ import annotations

import importlib.util
import itertools
import sys
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal, TypeVar

from benchtrack.errors import DiscoveryError, UsageError

# time: calibrated loops, timed; memory: one call per sample, plus a separate tracemalloc call;
# track: the function measures something itself and returns {metric: number} (asv's track_*);
# leak: setup is a component factory, the function one operation on it, repeated in batches
# with RSS recorded after each batch (after a full collection) for a leak trend.
Kind = Literal["time", "memory", "track", "leak"]
KINDS: tuple[str, ...] = ("time", "memory", "track", "leak")
LEAK_BATCHES = 24
BENCH_FILE_GLOB = "bench_*.py"
_SPEC_ATTRIBUTE = "__benchtrack__"

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class BenchmarkSpec:
    """A benchmark as declared by @benchmark, before its parameter grid is expanded."""

    name: str
    func: Callable[..., Any]
    params: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    setup: Callable[..., Any] | None = None
    teardown: Callable[..., Any] | None = None
    tags: tuple[str, ...] = ()
    levels: tuple[str, ...] = ()
    kind: Kind = "time"
    samples: int | None = None
    processes: int | None = None
    warmups: int | None = None
    timeout: float | None = None
    uss: bool = False
    targets: Mapping[str, float] = field(default_factory=dict)
    operations: int = 100  # leak benchmarks: operations per batch

    def instances(self) -> list[BenchmarkInstance]:
        if not self.params:
            return [BenchmarkInstance(self, {})]
        keys = list(self.params)
        return [
            BenchmarkInstance(self, dict(zip(keys, combination, strict=True)))
            for combination in itertools.product(*(self.params[k] for k in keys))
        ]


@dataclass(frozen=True)
class BenchmarkInstance:
    """One benchmark with one parameter set: the unit that is run, stored and compared."""

    spec: BenchmarkSpec
    params: Mapping[str, Any]

    @property
    def name(self) -> str:
        if not self.params:
            return self.spec.name
        inner = ",".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.spec.name}[{inner}]"

    @property
    def param_strings(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.params.items()}


def benchmark(
    func: F | None = None,
    *,
    name: str | None = None,
    params: Mapping[str, Iterable[Any]] | None = None,
    setup: Callable[..., Any] | None = None,
    teardown: Callable[..., Any] | None = None,
    tags: Sequence[str] = (),
    levels: Sequence[str] = (),
    kind: Kind = "time",
    samples: int | None = None,
    processes: int | None = None,
    warmups: int | None = None,
    timeout: float | None = None,
    uss: bool = False,
    targets: Mapping[str, float] | None = None,
    operations: int = 100,
) -> Any:
    """Declare a benchmark.

    Without ``setup`` the function is called with the parameters as keyword arguments. With
    ``setup``, ``setup(**params)`` runs once per worker process, outside any measurement, and
    its return value is passed to the function (and to ``teardown``) as the only argument.

    ``targets`` maps ``"<metric>.<statistic>"`` (e.g. ``"wall_s.median"``) to an upper bound
    the run reports as met or missed.

    ``kind="leak"``: ``setup(**params)`` builds the component once per process, the function
    is one operation on it, run ``operations`` times per batch for ``samples`` batches
    (default 24); a detected leak is attributed in a separate tracemalloc run.
    """

    def decorate(target: F) -> F:
        spec = _make_spec(
            target, name=name, params=params, setup=setup, teardown=teardown, tags=tags,
            levels=levels, kind=kind, samples=samples, processes=processes, warmups=warmups,
            timeout=timeout, uss=uss, targets=targets, operations=operations,
        )
        setattr(target, _SPEC_ATTRIBUTE, spec)
        return target

    return decorate(func) if func is not None else decorate


def _make_spec(func: Callable[..., Any], **options: Any) -> BenchmarkSpec:
    kind = options["kind"]
    if kind not in KINDS:
        raise UsageError(f"@benchmark kind must be one of {KINDS}, got {kind!r}")
    for option in ("samples", "processes", "operations"):
        value = options[option]
        if value is not None and (not isinstance(value, int) or value < 1):
            raise UsageError(f"@benchmark {option} must be a positive integer, got {value!r}")
    params = {str(k): tuple(v) for k, v in (options["params"] or {}).items()}
    if any(not values for values in params.values()):
        raise UsageError(f"@benchmark params of {func.__name__} has an empty value list")
    return BenchmarkSpec(
        name=options["name"] or func.__name__,
        func=func,
        params=params,
        setup=options["setup"],
        teardown=options["teardown"],
        tags=tuple(options["tags"]),
        levels=tuple(options["levels"]),
        kind=kind,
        samples=options["samples"],
        processes=options["processes"],
        warmups=options["warmups"],
        timeout=options["timeout"],
        uss=bool(options["uss"]),
        targets={str(k): float(v) for k, v in (options["targets"] or {}).items()},
        operations=options["operations"],
    )


@dataclass(frozen=True)
class BenchmarkFile:
    path: Path
    relative: str
    specs: tuple[BenchmarkSpec, ...]


@dataclass(frozen=True)
class FileError:
    """A benchmark file that could not be imported; the other files still run."""

    relative: str
    message: str


@dataclass(frozen=True)
class Suite:
    name: str
    folder: Path
    files: tuple[BenchmarkFile, ...]

    def instances(self) -> list[tuple[BenchmarkFile, BenchmarkInstance]]:
        return [(f, inst) for f in self.files for spec in f.specs for inst in spec.instances()]


@dataclass(frozen=True)
class Discovery:
    root: Path
    suites: tuple[Suite, ...]
    errors: tuple[FileError, ...]


def discover(root: Path) -> Discovery:
    """Find every ``bench_*.py`` under root; each folder holding such files is one suite."""
    if not root.is_dir():
        raise DiscoveryError(f"benchmark folder not found: {root}")
    root = root.resolve()
    by_folder: dict[Path, list[BenchmarkFile]] = {}
    errors: list[FileError] = []
    for path in sorted(root.rglob(BENCH_FILE_GLOB)):
        if any(part.startswith((".", "_")) for part in path.relative_to(root).parts[:-1]):
            continue
        relative = path.relative_to(root).as_posix()
        try:
            specs = load_specs(path)
        except BenchmarkLoadError as exc:
            errors.append(FileError(relative, str(exc)))
            continue
        if specs:  # a bench_*.py declaring no @benchmark adds nothing runnable
            by_folder.setdefault(path.parent, []).append(BenchmarkFile(path, relative, specs))
    suites = tuple(
        Suite(_suite_name(root, folder), folder, tuple(files))
        for folder, files in sorted(by_folder.items())
    )
    if not suites and not errors:
        raise DiscoveryError(f"no {BENCH_FILE_GLOB} files with @benchmark functions under {root}")
    _check_unique_names(suites)
    return Discovery(root, suites, tuple(errors))


def _suite_name(root: Path, folder: Path) -> str:
    return root.name if folder == root else folder.relative_to(root).as_posix()


def _check_unique_names(suites: Iterable[Suite]) -> None:
    for suite in suites:
        seen: dict[str, str] = {}
        for bench_file, instance in suite.instances():
            if instance.name in seen:
                raise DiscoveryError(
                    f"benchmark {instance.name!r} is declared twice in suite {suite.name!r} "
                    f"({seen[instance.name]} and {bench_file.relative})"
                )
            seen[instance.name] = bench_file.relative


class BenchmarkLoadError(Exception):
    """A benchmark file failed to import; carries a one-line reason."""


def load_specs(path: Path) -> tuple[BenchmarkSpec, ...]:
    module = import_benchmark_file(path)
    specs = [getattr(obj, _SPEC_ATTRIBUTE) for obj in vars(module).values() if hasattr(obj, _SPEC_ATTRIBUTE)]
    return tuple(s for s in specs if isinstance(s, BenchmarkSpec))


def import_benchmark_file(path: Path) -> ModuleType:
    """Import a benchmark file by path, with its folder importable for local helper modules."""
    module_name = f"benchtrack_bench_{abs(hash(str(path.resolve())))}_{path.stem}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise BenchmarkLoadError(f"cannot import {path.name}")
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    sys.path.insert(0, folder)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - any failure of user code is reported per file
        del sys.modules[module_name]
        raise BenchmarkLoadError(describe_exception(exc)) from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def describe_exception(exc: BaseException) -> str:
    """One line for a user: the exception and where in their code it was raised."""
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    message = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {message}{where}".replace(": at", " at")


def find_instance(path: Path, name: str) -> BenchmarkInstance:
    """Used by worker processes to re-find their benchmark after importing its file."""
    try:
        specs = load_specs(path)
    except BenchmarkLoadError as exc:
        raise UsageError(f"{path.name}: {exc}") from None
    for spec in specs:
        for instance in spec.instances():
            if instance.name == name:
                return instance
    raise UsageError(f"unknown benchmark {name!r} in {path.name}")
