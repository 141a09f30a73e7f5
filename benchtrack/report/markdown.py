"""A `benchtrack.report/1` document as GitHub-flavoured Markdown, sized for a CI step summary or a
PR comment: headline, verdict table worst first, then details in <details> blocks.

GitHub refuses a step summary over 1 MiB, so the text is built against a byte budget: rows are
added worst first (regressions before anything else) and whatever does not fit is named in one
line saying what was left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

GITHUB_SUMMARY_LIMIT = 1024 * 1024
DEFAULT_BUDGET = 1_000_000  # bytes, below GitHub's limit with room for what CI appends
TABLE_SHARE = 0.8  # of the budget the verdict table may take before details get their turn
_MARKS = {"regression": "🔴", "improvement": "🟢", "inconclusive": "🟡", "unchanged": "⚪"}


class _Budget:
    """Lines that fit in a byte budget; `add` says whether the line was taken."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.lines: list[str] = []

    def add(self, line: str, reserve: int = 0) -> bool:
        size = len(line.encode("utf-8")) + 1
        if self.used + size + reserve > self.limit:
            return False
        self.lines.append(line)
        self.used += size
        return True

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def render_markdown(report: Mapping[str, Any], budget: int = DEFAULT_BUDGET) -> str:
    out = _Budget(budget)
    for line in _headline(report):
        out.add(line)
    if report["memory"]:
        for line in _memory(report["memory"]):
            out.add(line)
    _table(out, report)
    _detail_blocks(out, report)
    return out.text()


def escape(text: object) -> str:
    """Safe inside a table cell: no pipes, no HTML, no line breaks."""
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
            .replace("\n", " "))


def percent(value: float) -> str:
    return f"{value:+.1%}"


def headline_text(report: Mapping[str, Any]) -> str:
    """One sentence of counts: regressions by severity, improvements, inconclusive, unchanged."""
    h = report["headline"]
    regressions = h["regressions"]
    total = sum(regressions.values())
    parts = [f"{total} regression{'s' if total != 1 else ''}"]
    by_severity = ", ".join(f"{n} {severity}" for severity, n in regressions.items() if n)
    if by_severity:
        parts[0] += f" ({by_severity})"
    parts += [f"{h['improvements']} improvement{'s' if h['improvements'] != 1 else ''}",
              f"{h['inconclusive']} inconclusive", f"{h['unchanged']} unchanged"]
    if h["leaks"]:
        parts.append(f"{h['leaks']} leak{'s' if h['leaks'] != 1 else ''}")
    return ", ".join(parts)


def status_text(report: Mapping[str, Any]) -> str:
    if report["failed"]:
        return f"fails level {report['level']}" if report.get("level") else "fails"
    return f"passes level {report['level']}" if report.get("level") else "passes"


def _headline(report: Mapping[str, Any]) -> list[str]:
    mark = "❌" if report["failed"] else "✅"
    facts = [f"level `{report['level']}`" if report.get("level") else None,
             f"fails on `{report['fail_on']}`" if report.get("fail_on") else None,
             f"commit `{str(report['commit'])[:12]}`" if report.get("commit") else None]
    lines = [f"## {mark} {escape(report['title'])} — {status_text(report)}", ""]
    if report["kind"] in ("run", "compare"):
        lines.append(f"**{headline_text(report)}**" + "".join(f" · {fact}" for fact in facts if fact))
        lines.append("")
    elif any(facts):
        lines += [" · ".join(fact for fact in facts if fact), ""]
    return lines


def shown_in_table(row: Mapping[str, Any]) -> bool:
    """Every benchmark's wall time; other metrics only when they did not stay unchanged."""
    return row["metric"] in ("wall_s", "instructions") or row["verdict"] != "unchanged"


def _table(out: _Budget, report: Mapping[str, Any]) -> None:
    rows = [row for row in report["verdicts"] if shown_in_table(row)]
    if report["kind"] not in ("run", "compare"):
        return
    if not rows:
        out.add("_Nothing compared: no baseline yet for any benchmark._" if not report["verdicts"] else "")
        out.add("")
        return
    several = len({row["suite"] for row in rows}) > 1
    out.add("| | benchmark | metric | change | confidence interval | severity | verdict |")
    out.add("|---|---|---|---:|---|---|---|")
    limit = int(out.limit * TABLE_SHARE)
    left_out: dict[str, int] = {}
    for row in rows:
        name = f"{row['suite']}/{row['benchmark']}" if several else row["benchmark"]
        flags = (" **FAIL**" if row["fails"] else "") + (" (anomalous)" if row["anomalous"] else "")
        line = (f"| {_MARKS.get(row['verdict'], '')} | {escape(name)} | {escape(row['metric'])} | {percent(row['change'])} "
                f"| [{percent(row['ci_low'])}, {percent(row['ci_high'])}] | {row['severity']} | {row['verdict']}{flags} |")
        if out.used + len(line.encode("utf-8")) + 1 > limit or not out.add(line):
            left_out[row["verdict"]] = left_out.get(row["verdict"], 0) + 1
    hidden = len(report["verdicts"]) - len(rows)
    out.add("")
    if left_out:
        counts = ", ".join(f"{n} {verdict}" for verdict, n in left_out.items())
        out.add(f"_{sum(left_out.values())} rows left out to stay under GitHub's 1 MiB summary limit ({counts}); "
                "the full table is in the HTML and JSON reports._")
        out.add("")
    if hidden:
        out.add(f"_{hidden} unchanged results of other metrics than wall time are not listed._")
        out.add("")


def _memory(memory: Mapping[str, Any]) -> list[str]:
    lines = ["| | |", "|---|---|",
             f"| target | {escape(memory['target'])} ({escape(memory['kind'])}) |",
             f"| samples | {memory['samples']} over {memory['duration_s']:.1f} s |",
             f"| memory | start {memory['start_mb']:,.1f} MB, end {memory['end_mb']:,.1f} MB, peak {memory['peak_mb']:,.1f} MB "
             f"at {memory['peak_time_s']:.1f} s |"]
    if memory.get("limit_mb") is not None:
        lines.append(f"| limit | {memory['limit_mb']:,.1f} MB |")
    leak = memory.get("leak")
    if leak:
        verdict = f"**LEAK ({leak['severity']})**" if leak["detected"] else "no leak"
        if leak.get("judged", True):
            verdict += (f": {leak['slope_mb_per_min']:+.3g} MB/min (95% CI {leak['ci_low']:.3g} to {leak['ci_high']:.3g}), "
                        f"growth {leak['growth_mb']:+.3g} MB")
        else:
            verdict += ": not judged (too few samples after the warm-up)"
        lines.append(f"| leak | {verdict} |")
    lines.append(f"| OOM events | {len(memory['oom_events'])} |")
    if memory.get("exit_code") is not None:
        lines.append(f"| exit code | {memory['exit_code']} |")
    return [*lines, ""]


def _detail_blocks(out: _Budget, report: Mapping[str, Any]) -> None:
    for title, items in detail_items(report):
        _block(out, title, items)


def detail_items(report: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """(title, plain-text lines) of every non-empty details block, in the order shown."""
    details = report["details"]
    memory = report["memory"] or {}
    blocks: list[tuple[str, Iterable[str]]] = [
        ("Failed benchmarks", (f"{_where(d)}: {d['error']}" for d in details["failed_benchmarks"])),
        ("Leaks", (f"{_where(d)}: {d['severity']}: {d['detail']}" for d in details["leaks"])),
        ("Undecided slowdowns", (f"{_where(d)} {d['metric']}: {percent(d['change'])} "
                                 f"[{percent(d['ci_low'])}, {percent(d['ci_high'])}]" for d in details["undecided"])),
        ("Memory and GC checks", (f"{_where(d)} {d['check']}: {'passed' if d['passed'] else 'FAILED'} "
                                  f"({d['severity']}) {d['detail']}" for d in details["memory_checks"])),
        ("Anomalies", (f"{_where(d)} ({d['method']}): {'; '.join(d['reasons'])}" for d in details["anomalies"])),
        ("Contention", (f"{_where(d)}: " + "; ".join(f"{side} {d[side].get('reason') or 'contended'}"
                                                      for side in ("baseline", "candidate") if d[side].get("contended"))
                        for d in details["contention"])),
        ("Suite-wide shift", (f"{d['suite'] or 'suite'} {d['metric']}: {percent(d['change'])} "
                              f"({d['moved_together']} of {d['benchmarks']} benchmarks moved together)"
                              for d in details["suite_shifts"])),
        ("Notes", (f"{_where(d)} {d['metric']}: {d['note']}" for d in details["notes"])),
        ("Not compared", [*(f"{_where(d)}: {d['reason']}" for d in details["skipped"]),
                          *(f"{_where(d)}: only in the {d['side']}" for d in details["missing"])]),
        ("Promoted to baseline", (f"{_where(d)}: {d['reason']}" for d in details["promotions"])),
        ("OOM events", (f"{e['time_s']:.1f} s {e['kind']}: {e['detail']}" for e in memory.get("oom_events", []))),
        ("Phases", (_phase_line(p) for p in memory.get("phases", []))),
    ]
    return [(title, lines) for title, items in blocks if (lines := list(items))]


def _block(out: _Budget, title: str, items: list[str]) -> None:
    closing = "\n</details>\n"
    reserve = len(closing) + 200  # room for the closing tag and a "left out" line
    if not out.add(f"<details><summary>{title} ({len(items)})</summary>\n", reserve):
        return
    taken = 0
    for item in items:
        if not out.add(f"- {escape(item)}", reserve):
            break
        taken += 1
    if taken < len(items):
        out.add(f"- _{len(items) - taken} more left out to stay under GitHub's 1 MiB summary limit_")
    out.add(closing)


def _where(entry: Mapping[str, Any]) -> str:
    return f"{entry['suite']}/{entry['benchmark']}" if entry.get("suite") else str(entry["benchmark"])


def _phase_line(phase: Mapping[str, Any]) -> str:
    facts = [f"{key} {phase[key]:,.1f}" for key in ("start_mb", "end_mb", "peak_mb", "delta_mb") if key in phase]
    return f"{phase['name']}: " + ", ".join([*facts, f"{phase.get('duration_s', 0.0):.2f} s"])
