"""`benchtrack check`: is this machine ready to measure, and can it reach the store?"""

from __future__ import annotations

import importlib.metadata
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from benchtrack.errors import BenchtrackError
from benchtrack.probes.environment import advisories, git_info
from benchtrack.probes.instructions import INSTALL_HINT, find_valgrind
from benchtrack.probes.memory import KernelHighWaterMark

REQUIRED_DISTRIBUTIONS = ("mlflow", "typer", "psutil", "numpy", "rich")


def run_checks(tracking_uri: str | None) -> dict[str, Any]:
    checks = [_distribution(name) for name in REQUIRED_DISTRIBUTIONS]
    checks.append(_store(tracking_uri))
    checks.append(_git())
    checks.append(_valgrind())
    checks.append({
        "check": "peak-rss",
        "status": "ok",
        "detail": "exact per-sample peak from the kernel (VmHWM reset)" if KernelHighWaterMark.available()
        else "kernel peak mark unavailable: a sampler thread is used (coarser, ~GIL contention)",
    })
    notes = [{"check": a.check, "status": a.severity, "detail": a.message} for a in advisories()]
    return {
        "schema": "benchtrack.check/1",
        "ok": all(c["status"] != "error" for c in checks),
        "checks": checks + notes,
    }


def _distribution(name: str) -> dict[str, Any]:
    try:
        return {"check": f"package {name}", "status": "ok", "detail": importlib.metadata.version(name)}
    except importlib.metadata.PackageNotFoundError:
        return {"check": f"package {name}", "status": "error", "detail": f"not installed: pip install {name}"}


def _store(tracking_uri: str | None) -> dict[str, Any]:
    from benchtrack.tracking.uri import resolve_tracking_uri

    try:
        uri = resolve_tracking_uri(tracking_uri)
        from benchtrack.tracking.store import MlflowStore

        store = MlflowStore(uri)
    except BenchtrackError as exc:
        return {"check": "tracking store", "status": "error", "detail": str(exc)}
    mode = "bulk SQL writes" if store.bulk_writes else "log_batch"
    return {"check": "tracking store", "status": "ok", "detail": f"{uri} reachable ({mode})"}


def _git() -> dict[str, Any]:
    if shutil.which("git") is None:
        return {"check": "git", "status": "warning", "detail": "git not found: runs will carry no commit"}
    info = git_info(Path.cwd())
    if info.commit is None:
        return {"check": "git", "status": "warning", "detail": "not in a git work tree with commits: runs carry no commit"}
    dirty = " (uncommitted changes: runs are tagged dirty)" if info.dirty else ""
    return {"check": "git", "status": "ok", "detail": f"{info.branch or 'detached'} @ {info.commit[:12]}{dirty}"}


def _valgrind() -> dict[str, Any]:
    found = find_valgrind()
    if found is None:
        return {"check": "instruction counts", "status": "warning",
                "detail": f"valgrind not found: --instructions unavailable ({INSTALL_HINT})"}
    return {"check": "instruction counts", "status": "ok", "detail": f"valgrind at {found} (--instructions)"}


def print_checks(document: dict[str, Any], console: Console) -> None:
    table = Table(title="benchtrack check")
    for column in ("check", "status", "detail"):
        table.add_column(column)
    colours = {"ok": "green", "error": "red", "warning": "yellow", "info": "blue"}
    for check in document["checks"]:
        colour = colours.get(check["status"], "white")
        table.add_row(check["check"], f"[{colour}]{check['status']}[/]", check["detail"])
    console.print(table)
