"""Every document benchtrack writes, normalised into one `benchtrack.report/1` document that the
Markdown, HTML and Prometheus renderers read (pure: dicts in, dicts out).

Inputs, told apart by their ``schema`` field: a run (``benchtrack.run/1``, with ``verdicts`` per
suite and ``memory_checks``), a comparison (``benchtrack.compare/1``, also with ``rerun``), a watch
(``benchtrack.watch/1``), a memory profile (``benchtrack.profile/1``), a bare timeline
(``benchtrack.timeline/1``) and a report itself (``benchtrack.report/1``, returned as it is).

History of ``benchtrack.report``:
  1 - kind, title, headline counts, verdict rows worst first, details, suites, memory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from benchtrack.errors import ResultFormatError

REPORT_SCHEMA = "benchtrack.report/1"
RUN_SCHEMA = "benchtrack.run/1"
COMPARE_SCHEMA = "benchtrack.compare/1"
WATCH_SCHEMA = "benchtrack.watch/1"
PROFILE_SCHEMA = "benchtrack.profile/1"
TIMELINE_SCHEMA = "benchtrack.timeline/1"
KNOWN_SCHEMAS = (RUN_SCHEMA, COMPARE_SCHEMA, WATCH_SCHEMA, PROFILE_SCHEMA, TIMELINE_SCHEMA, REPORT_SCHEMA)
SEVERITIES = ("critical", "major", "minor", "none")
SHIFT_WORTH_A_LINE = 0.03  # as verdicts.policy.SHIFT_REPORTED
MIB = 1024.0 * 1024.0
# worst first: what fails, then regressions, slowdowns left undecided, other inconclusive, improvements
_VERDICT_RANK = {"regression": 0, "inconclusive": 2, "improvement": 3, "unchanged": 4}


class ReportInputError(ResultFormatError):
    """A document the report cannot read: unknown schema, malformed, or holding NaN."""


def parse_document(text: str, source: str) -> dict[str, Any]:
    """JSON text -> a document with a known schema; NaN and Infinity are refused."""

    def refuse(constant: str) -> Any:
        raise ReportInputError(f"{source}: {constant} is not allowed in a benchtrack document")

    try:
        document = json.loads(text, parse_constant=refuse)
    except json.JSONDecodeError as exc:
        raise ReportInputError(f"{source} is not JSON: {exc.msg} at line {exc.lineno}") from None
    schema = document.get("schema") if isinstance(document, dict) else None
    if schema not in KNOWN_SCHEMAS:
        raise ReportInputError(f"{source} is not a benchtrack document benchtrack report knows (schema={schema!r}; "
                               f"expected one of {', '.join(KNOWN_SCHEMAS)})")
    return document


def build_report(document: Mapping[str, Any], source: str = "document") -> dict[str, Any]:
    """The `benchtrack.report/1` document of any input; ReportInputError when malformed."""
    schema = document.get("schema")
    builders = {RUN_SCHEMA: _from_run, COMPARE_SCHEMA: _from_compare, WATCH_SCHEMA: _from_watch,
                PROFILE_SCHEMA: _from_profile, TIMELINE_SCHEMA: _from_timeline, REPORT_SCHEMA: _checked_report}
    builder = builders.get(schema)  # type: ignore[arg-type]
    if builder is None:
        raise ReportInputError(f"{source}: unknown schema {schema!r}")
    try:
        report = builder(document)
        _check_finite(report)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise ReportInputError(f"{source}: malformed {schema} document ({type(exc).__name__}: {exc})") from None
    return report


# --- runs and comparisons ---------------------------------------------------------------------


def _from_run(document: Mapping[str, Any]) -> dict[str, Any]:
    verdicts: Mapping[str, Any] = document.get("verdicts") or {}
    suites = [_suite_entry(s) for s in document["suites"]]
    rows = [row for suite, compared in verdicts.items() for row in _rows(suite, compared)]
    checks = [dict(c) for c in document.get("memory_checks") or []]
    failed_benchmarks = [{"suite": s["suite"], "benchmark": b["name"], "error": b.get("error") or "failed"}
                         for s in document["suites"] for b in s["benchmarks"] if b.get("status") == "failed"]
    details = _details(verdicts)
    details["memory_checks"] = checks
    details["leaks"] = [{"suite": c["suite"], "benchmark": c["benchmark"], "severity": c["severity"], "detail": c["detail"]}
                        for c in checks if c["check"] == "leak" and not c["passed"]]
    details["failed_benchmarks"] = failed_benchmarks
    fail_on = next((str(v["fail_on"]) for v in verdicts.values()), None)
    failed = (any(v["summary"]["failed"] for v in verdicts.values()) or any(c.get("fails") for c in checks)
              or bool(failed_benchmarks))
    commit = next((s["commit"] for s in suites if s.get("commit")), None)
    names = ", ".join(s["suite"] for s in suites) or "no suite"
    return _report("run", f"benchtrack run: {names}", rows, details, level=document.get("level"), fail_on=fail_on,
                   commit=commit, failed=failed, suites=suites,
                   source={"schema": RUN_SCHEMA, "invocation": document.get("invocation")})


def _suite_entry(suite: Mapping[str, Any]) -> dict[str, Any]:
    benchmarks = []
    for bench in suite["benchmarks"]:
        wall = (bench.get("summary") or {}).get("wall_s") or {}
        benchmarks.append({"name": str(bench["name"]), "status": str(bench.get("status", "ok")),
                           "run_id": bench.get("run_id"), "wall_s_median": wall.get("median")})
    return {"suite": str(suite["suite"]), "level": suite.get("level"), "parent_run_id": suite.get("parent_run_id"),
            "commit": suite.get("commit"), "branch": suite.get("branch"), "fingerprint": suite.get("fingerprint"),
            "finished_at": suite.get("finished_at"), "benchmarks": benchmarks}


def _from_compare(document: Mapping[str, Any]) -> dict[str, Any]:
    rows = _rows("", document)
    details = _details({"": document})
    title = f"benchtrack compare: {document['baseline']} -> {document['candidate']}"
    rerun = document.get("rerun")
    if rerun:
        title += f" (measured side by side, {rerun.get('mode', '')} rounds)"
    return _report("compare", title, rows, details, level=document.get("level"), fail_on=document.get("fail_on"),
                   commit=None, failed=bool(document["summary"]["failed"]),
                   source={"schema": COMPARE_SCHEMA, "baseline": document["baseline"], "candidate": document["candidate"],
                           "rerun": rerun.get("id") if rerun else None})


def _rows(suite: str, compared: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for c in compared["comparisons"]:
        centres = c.get("process_centres") or {}
        rows.append({
            "suite": suite, "benchmark": str(c["benchmark"]), "metric": str(c["metric"]), "verdict": str(c["verdict"]),
            "severity": str(c["severity"]), "change": float(c["change"]), "ci_low": float(c["ci_low"]),
            "ci_high": float(c["ci_high"]), "p_adjusted": float(c["p_adjusted"]), "baseline": float(c["baseline"]),
            "candidate": float(c["candidate"]), "fails": bool(c.get("fails")), "anomalous": bool(c.get("anomalous")),
            "notes": [str(n) for n in c.get("notes", [])],
            "process_centres": {"baseline": [float(v) for v in centres.get("baseline", [])],
                                "candidate": [float(v) for v in centres.get("candidate", [])]},
        })
    return rows


def _details(verdicts: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Everything below the table, gathered over suites."""
    details: dict[str, list[dict[str, Any]]] = {key: [] for key in (
        "notes", "undecided", "anomalies", "contention", "suite_shifts", "skipped", "missing", "promotions")}
    for suite, compared in verdicts.items():
        for c in compared["comparisons"]:
            details["notes"] += [{"suite": suite, "benchmark": c["benchmark"], "metric": c["metric"], "note": str(n)}
                                 for n in c.get("notes", [])]
        details["undecided"] += [{"suite": suite, **u} for u in compared.get("undecided", [])]
        details["anomalies"] += [{"suite": suite, "benchmark": name, "method": a["method"], "reasons": list(a["reasons"])}
                                 for name, a in compared.get("anomalies", {}).items() if a["anomalous"]]
        details["contention"] += [{"suite": suite, "benchmark": name, **sides}
                                  for name, sides in compared.get("contention", {}).items()]
        details["suite_shifts"] += [{"suite": suite, **s} for s in compared.get("suite_shifts", [])
                                    if abs(float(s["change"])) >= SHIFT_WORTH_A_LINE]
        details["skipped"] += [{"suite": suite, "benchmark": name, "reason": str(why)}
                               for name, why in compared.get("skipped", {}).items()]
        details["missing"] += [{"suite": suite, "benchmark": name, "side": side}
                               for side in ("baseline", "candidate") for name in compared.get(f"only_in_{side}", [])]
        details["promotions"] += [{"suite": suite, "benchmark": name, **p}
                                  for name, p in compared.get("promotions", {}).items() if p["promoted"]]
    return details


# --- watches, profiles, timelines -------------------------------------------------------------


def _from_watch(document: Mapping[str, Any]) -> dict[str, Any]:
    leak = dict(document["leak"])
    memory = {key: document[key] for key in ("target", "kind", "samples", "duration_s", "start_mb", "end_mb", "peak_mb",
                                             "peak_time_s", "limit_mb")}
    memory.update(leak=leak, oom_events=list(document["oom_events"]), phases=[],
                  timeline=document.get("timeline"), exit_code=document.get("exit_code"))
    details = {"leaks": [_leak_entry(str(document["target"]), leak)] if leak["detected"] else []}
    return _report("watch", f"benchtrack watch: {document['kind']} {document['target']}", [], details,
                   level=document.get("level"), fail_on=None, commit=None, failed=bool(document["failed"]),
                   memory=memory, source={"schema": WATCH_SCHEMA, "run_id": document.get("run_id")})


def _from_profile(document: Mapping[str, Any]) -> dict[str, Any]:
    memory = _timeline_memory(document["timeline"])
    memory["phases"] = [{"name": str(name), **{k: float(v) for k, v in stats.items()}}
                        for name, stats in document.get("phases", {}).items()]
    leak = document.get("leak")
    memory["leak"] = dict(leak) if leak else None
    details = {"leaks": [_leak_entry(memory["target"], leak)] if leak and leak["detected"] else []}
    return _report("profile", f"memory profile: {memory['target']}", [], details, level=None, fail_on=None, commit=None,
                   failed=bool(leak and leak["detected"]), memory=memory, source={"schema": PROFILE_SCHEMA})


def _from_timeline(document: Mapping[str, Any]) -> dict[str, Any]:
    memory = _timeline_memory(document)
    memory["phases"] = [{"name": str(p["name"]), "duration_s": float(p["end_s"]) - float(p["start_s"])}
                        for p in document.get("phases", [])]
    return _report("profile", f"memory timeline: {memory['target']}", [], {"leaks": []}, level=None, fail_on=None,
                   commit=None, failed=False, memory=memory, source={"schema": TIMELINE_SCHEMA})


def _timeline_memory(timeline: Mapping[str, Any]) -> dict[str, Any]:
    times = [float(t) for t in timeline["times_s"]]
    mb = [float(m) / MIB for m in timeline["memory_bytes"]]
    if len(times) != len(mb):
        raise ValueError("times_s and memory_bytes differ in length")
    peak = max(range(len(mb)), key=mb.__getitem__) if mb else None
    limit = timeline.get("limit_bytes")
    return {
        "target": str(timeline["target"]), "kind": "profile", "samples": len(mb),
        "duration_s": times[-1] - times[0] if times else 0.0,
        "start_mb": mb[0] if mb else 0.0, "end_mb": mb[-1] if mb else 0.0,
        "peak_mb": mb[peak] if peak is not None else 0.0, "peak_time_s": times[peak] if peak is not None else 0.0,
        "limit_mb": float(limit) / MIB if limit is not None else None, "leak": None,
        "oom_events": list(timeline.get("oom_events", [])), "timeline": dict(timeline), "exit_code": None,
    }


def _leak_entry(target: str, leak: Mapping[str, Any]) -> dict[str, Any]:
    slope = float(leak.get("slope_mb_per_min", 0.0))
    return {"suite": "", "benchmark": target, "severity": str(leak["severity"]),
            "detail": f"{slope:+.3g} MB/min (95% CI {float(leak.get('ci_low', 0.0)):.3g} to "
                      f"{float(leak.get('ci_high', 0.0)):.3g}), growth {float(leak.get('growth_mb', 0.0)):+.3g} MB"}


# --- the document -----------------------------------------------------------------------------


def _report(kind: str, title: str, rows: list[dict[str, Any]], details: dict[str, Any], *, level: Any, fail_on: Any,
            commit: Any, failed: bool, suites: list[dict[str, Any]] | None = None, memory: dict[str, Any] | None = None,
            source: dict[str, Any]) -> dict[str, Any]:
    rows = sorted(rows, key=_worst_first)
    for key in ("notes", "undecided", "memory_checks", "leaks", "anomalies", "contention", "suite_shifts", "skipped",
                "missing", "promotions", "failed_benchmarks"):
        details.setdefault(key, [])
    return {
        "schema": REPORT_SCHEMA, "kind": kind, "title": title,
        "level": level, "fail_on": fail_on, "commit": commit, "failed": failed,
        "headline": headline(rows, details),
        "verdicts": rows, "details": details, "suites": suites or [], "memory": memory, "source": source,
    }


def headline(rows: Iterable[Mapping[str, Any]], details: Mapping[str, Any]) -> dict[str, Any]:
    rows = list(rows)
    regressions = {severity: sum(1 for r in rows if r["verdict"] == "regression" and r["severity"] == severity)
                   for severity in SEVERITIES}
    return {
        "regressions": regressions,
        "improvements": sum(1 for r in rows if r["verdict"] == "improvement"),
        "inconclusive": sum(1 for r in rows if r["verdict"] == "inconclusive"),
        "unchanged": sum(1 for r in rows if r["verdict"] == "unchanged"),
        "failing": sum(1 for r in rows if r["fails"]),
        "leaks": len(details.get("leaks", [])),
        "compared": len(rows),
    }


def _worst_first(row: Mapping[str, Any]) -> tuple[int, int, int, float, str, str]:
    rank = _VERDICT_RANK.get(row["verdict"], 5)
    if row["verdict"] == "inconclusive" and row["change"] > 0 and row["ci_high"] > 0:
        rank = 1  # an undecided slowdown is never to pass in silence
    severity = SEVERITIES.index(row["severity"]) if row["severity"] in SEVERITIES else len(SEVERITIES)
    return (0 if row["fails"] else 1, rank, severity, -abs(row["change"]), row["benchmark"], row["metric"])


def _checked_report(document: Mapping[str, Any]) -> dict[str, Any]:
    report = dict(document)
    for key in ("kind", "title", "headline", "verdicts", "details"):
        if key not in report:
            raise KeyError(key)
    if report["kind"] not in ("run", "compare", "watch", "profile"):
        raise ValueError(f"unknown report kind {report['kind']!r}")
    return report


def _check_finite(value: Any, where: str = "") -> None:
    """NaN or infinity anywhere (a document built in Python, not parsed) is refused."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"non-finite number at {where or 'top level'}")
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_finite(item, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _check_finite(item, f"{where}[{index}]")
