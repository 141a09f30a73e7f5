"""The benchmarks behind the real-run noise corpus (experiments/self/make_noise_corpus.py).

Varied on purpose: CPU-bound pure Python and C code, allocation- and GC-heavy, memory
bandwidth, system calls, and tiny calls. Each call repeats a unit of work UNITS times, and the
corpus script makes chosen benchmarks do exactly 5, 10 or 20% more units through
BENCHTRACK_NOISE_FACTORS ({"name": factor}), so the true change in work is known. The folder
starts with "_" so `benchtrack run experiments` does not pick it up.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import re
import socket
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchtrack import benchmark

UNITS = 20  # 21, 22 and 24 units are exactly +5, +10 and +20% of the work
FACTORS: dict[str, float] = json.loads(os.environ.get("BENCHTRACK_NOISE_FACTORS", "{}"))
# A copy committed into a git repository (experiments/self/sidebyside_trials.py) reads its work
# from work.json beside it instead: then each commit holds its own work, as real code does.
_WORK_FILE = Path(__file__).resolve().with_name("work.json")
if _WORK_FILE.exists():
    _work = json.loads(_WORK_FILE.read_text(encoding="utf-8"))
    UNITS, FACTORS = int(_work["units"]), {str(k): float(v) for k, v in _work["factors"].items()}


def units(name: str) -> int:
    return round(UNITS * FACTORS.get(name, 1.0))


def scaled(name: str, make_unit: Callable[[], Callable[[], Any]], **options: Any) -> Callable[[], Any]:
    """Declare benchmark `name` whose call runs the unit built by make_unit units(name) times."""

    def setup() -> tuple[Callable[[], Any], range]:
        return make_unit(), range(units(name))

    def run(state: tuple[Callable[[], Any], range]) -> None:
        unit, repeats = state
        for _ in repeats:
            unit()

    run.__name__ = name.replace(".", "_")
    return benchmark(name=name, setup=setup, **options)(run)  # type: ignore[no-any-return]


def _arith() -> Callable[[], int]:
    def unit() -> int:
        total = 0
        for i in range(300):
            total += (i * i) % 7
        return total
    return unit


def _float_math() -> Callable[[], float]:
    def unit() -> float:
        return sum(math.sin(i) * math.sqrt(i + 1.0) for i in range(200))
    return unit


def _nbody() -> Callable[[], None]:
    bodies = [[random.Random(i).random() for _ in range(6)] for i in range(5)]

    def unit() -> None:
        for i, a in enumerate(bodies):
            for b in bodies[i + 1:]:
                dx, dy, dz = a[0] - b[0], a[1] - b[1], a[2] - b[2]
                mag = 0.01 / ((dx * dx + dy * dy + dz * dz + 0.01) ** 1.5)
                a[3] -= dx * mag
                b[3] += dx * mag
        for body in bodies:
            body[0] += 0.01 * body[3]
    return unit


_LOG = re.compile(r"(?P<ip>\d+\.\d+\.\d+\.\d+) - - \[(?P<ts>[^\]]+)\] \"(?P<method>[A-Z]+) (?P<path>\S+)")


def _regex() -> Callable[[], int]:
    rng = random.Random(3)
    text = "\n".join(
        f'10.0.{rng.randrange(256)}.{rng.randrange(256)} - - [22/Nov/2026:03:{i % 60:02d}:00 +0000] '
        f'"GET /api/v1/items/{rng.randrange(10_000)} HTTP/1.1" 200 {rng.randrange(5_000)}'
        for i in range(40)
    )
    return lambda: sum(1 for m in _LOG.finditer(text) if m.group("method") == "GET")


def _json() -> Callable[[], object]:
    rng = random.Random(5)
    document = {"items": [{"id": i, "name": f"item-{i}", "price": round(rng.uniform(1, 500), 2),
                           "tags": [rng.choice("abcdefgh") for _ in range(4)], "active": i % 3 == 0}
                          for i in range(8)]}
    return lambda: json.loads(json.dumps(document))


def _sort() -> Callable[[], object]:
    rng = random.Random(7)
    records = [(f"user{rng.randrange(500)}", rng.randrange(100), rng.random()) for _ in range(300)]
    return lambda: sorted(records, key=lambda r: (r[1], r[0]))


def _sha256() -> Callable[[], bytes]:
    data = random.Random(11).randbytes(16_384)
    return lambda: hashlib.sha256(data).digest()


def _zlib() -> Callable[[], bytes]:
    rng = random.Random(13)
    data = " ".join(rng.choice(("alpha", "beta", "gamma", "delta", str(rng.random()))) for _ in range(1500)).encode()
    return lambda: zlib.compress(data, 6)


def _string_building() -> Callable[[], str]:
    return lambda: ",".join(f"{i}:{i * 3.5:.2f}" for i in range(100))


@dataclass
class _Node:
    value: int
    children: list[_Node] = field(default_factory=list)
    parent: _Node | None = None


def _tree() -> Callable[[], int]:
    def unit() -> int:
        root = _Node(0)
        frontier = [root]
        for value in range(1, 400):
            parent = frontier[value // 4]
            child = _Node(value, parent=parent)  # parent links: cycles for the collector
            parent.children.append(child)
            frontier.append(child)
        return len(root.children)
    return unit


def _dicts() -> Callable[[], list[dict[str, object]]]:
    return lambda: [{"id": i, "name": "x", "values": [i, i + 1]} for i in range(150)]


def _bandwidth() -> Callable[[], int]:
    buffer = bytearray(4 * 1024 * 1024)

    def unit() -> int:
        copy = bytes(buffer)  # 4 MiB read and written: memory bandwidth, not the CPU core
        return len(copy)
    return unit


_KEPT: list[Any] = []  # sockets and files live as long as the process: never closed mid-run


def _socketpair() -> Callable[[], bytes]:
    left, right = socket.socketpair()
    _KEPT.extend((left, right))
    payload = b"x" * 1024

    def unit() -> bytes:
        left.sendall(payload)
        return right.recv(2048)
    return unit


def _file_io() -> Callable[[], bytes]:
    handle = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the worker process
    _KEPT.append(handle)
    payload = b"y" * 8192

    def unit() -> bytes:
        handle.seek(0)
        handle.write(payload)
        handle.seek(0)
        return handle.read()
    return unit


# The tiny-call units repeat their call TINY_CALLS times inside the unit: one call per unit left
# the per-call overhead of the timing loop as large as the work, so 24 units measured only ~+10%.
TINY_CALLS = 50


def _dict_get() -> Callable[[], int]:
    table = {f"k{i}": i for i in range(64)}
    get, calls = table.get, range(TINY_CALLS)

    def unit() -> int:
        found = 0
        for _ in calls:
            found = get("k17", 0)
        return found
    return unit


class _Point:
    def __init__(self) -> None:
        self.x = 1

    def bump(self) -> int:
        self.x += 1
        return self.x


def _method_call() -> Callable[[], int]:
    point, calls = _Point(), range(TINY_CALLS)

    def unit() -> int:
        for _ in calls:
            point.bump()
        return point.x
    return unit


CORPUS: dict[str, Callable[[], Callable[[], Any]]] = {
    "cpu.arith": _arith, "cpu.float_math": _float_math, "cpu.nbody": _nbody, "cpu.regex": _regex,
    "cpu.json_roundtrip": _json, "cpu.sort_records": _sort, "cpu.sha256": _sha256, "cpu.zlib": _zlib,
    "cpu.string_building": _string_building, "alloc.tree_cycles": _tree, "alloc.dicts": _dicts,
    "alloc.bandwidth_4mib": _bandwidth, "io.socketpair_1kib": _socketpair, "io.tempfile_8kib": _file_io,
    "tiny.dict_get": _dict_get, "tiny.method_call": _method_call,
}

for _name, _unit in CORPUS.items():
    globals()[_name.replace(".", "_")] = scaled(_name, _unit, tags=("noise-corpus",))
