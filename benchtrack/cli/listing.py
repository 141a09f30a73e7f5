"""`benchtrack list`: what discovery found, per suite, with parameters and levels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from benchtrack.config import find_levels_file, load_levels, select_level
from benchtrack.suite import discover


def list_document(folder: Path, level_name: str | None) -> dict[str, Any]:
    discovery = discover(folder)
    level = select_level(load_levels(find_levels_file(folder)), level_name) if level_name else None
    benchmarks = []
    for suite in discovery.suites:
        for bench_file, instance in suite.instances():
            spec = instance.spec
            if level is not None and not level.selects(spec.tags, spec.levels):
                continue
            benchmarks.append({
                "suite": suite.name,
                "name": instance.name,
                "file": bench_file.relative,
                "kind": spec.kind,
                "params": instance.param_strings,
                "tags": list(spec.tags),
                "levels": list(spec.levels) or ["all"],
            })
    return {
        "schema": "benchtrack.list/1",
        "folder": str(folder),
        "level": level_name,
        "benchmarks": benchmarks,
        "file_errors": [{"file": e.relative, "error": e.message} for e in discovery.errors],
    }


def print_listing(document: dict[str, Any], console: Console, stderr: Console) -> None:
    table = Table(title=f"{len(document['benchmarks'])} benchmarks in {document['folder']}")
    for column in ("suite", "benchmark", "kind", "params", "tags", "levels", "file"):
        table.add_column(column)
    for bench in document["benchmarks"]:
        params = ", ".join(f"{k}={v}" for k, v in bench["params"].items())
        table.add_row(*(escape(cell) for cell in (bench["suite"], bench["name"], bench["kind"], params,
                      ", ".join(bench["tags"]), ", ".join(bench["levels"]), bench["file"])))
    console.print(table)
    for error in document["file_errors"]:
        stderr.print(f"benchtrack: error: {error['file']}: {error['error']}", highlight=False, markup=False, soft_wrap=True)
