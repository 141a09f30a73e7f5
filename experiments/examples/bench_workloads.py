"""Realistic user-style workloads: what a typical Python service spends its time on."""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field

from benchtrack import benchmark


def _make_document(size: int) -> dict[str, object]:
    rng = random.Random(size)
    return {
        "items": [
            {"id": i, "name": f"item-{i}", "price": round(rng.uniform(1, 500), 2),
             "tags": [rng.choice("abcdefgh") for _ in range(4)], "active": i % 3 == 0}
            for i in range(size)
        ],
        "meta": {"version": 3, "source": "benchmark"},
    }


@benchmark(name="json.roundtrip", params={"size": [100, 5_000]}, setup=_make_document, tags=("json",))
def json_roundtrip(document: dict[str, object]) -> object:
    return json.loads(json.dumps(document))


_LOG_LINE = re.compile(r"(?P<ip>\d+\.\d+\.\d+\.\d+) - - \[(?P<ts>[^\]]+)\] \"(?P<method>[A-Z]+) (?P<path>\S+)")


def _make_log(lines: int) -> str:
    rng = random.Random(lines)
    return "\n".join(
        f'10.0.{rng.randrange(256)}.{rng.randrange(256)} - - [22/Nov/2026:03:{i % 60:02d}:00 +0000] '
        f'"GET /api/v1/items/{rng.randrange(10_000)} HTTP/1.1" 200 {rng.randrange(5_000)}'
        for i in range(lines)
    )


@benchmark(name="regex.parse_access_log", params={"lines": [1_000]}, setup=_make_log, tags=("regex",))
def parse_access_log(log: str) -> int:
    return sum(1 for match in _LOG_LINE.finditer(log) if match.group("method") == "GET")


def _make_records(count: int) -> list[tuple[str, int, float]]:
    rng = random.Random(count)
    return [(f"user{rng.randrange(count)}", rng.randrange(100), rng.random()) for _ in range(count)]


@benchmark(name="sort.records", params={"count": [10_000]}, setup=_make_records, tags=("sort",))
def sort_records(records: list[tuple[str, int, float]]) -> list[tuple[str, int, float]]:
    return sorted(records, key=lambda r: (r[1], r[0]))


@dataclass
class Node:
    value: int
    children: list[Node] = field(default_factory=list)
    parent: Node | None = None


def _build_tree(nodes: int) -> Node:
    root = Node(0)
    frontier = [root]
    for value in range(1, nodes):
        parent = frontier[value // 4]
        child = Node(value, parent=parent)  # parent links make reference cycles for the collector
        parent.children.append(child)
        frontier.append(child)
    return root


@benchmark(name="objects.tree_build", params={"nodes": [20_000]}, kind="time", tags=("alloc", "gc"))
def tree_build(nodes: int) -> int:
    return len(_build_tree(nodes).children)


@benchmark(name="objects.tree_memory", params={"nodes": [50_000]}, kind="memory", tags=("alloc", "gc"))
def tree_memory(nodes: int) -> int:
    return len(_build_tree(nodes).children)
