"""A `benchtrack.report/1` document as ONE self-contained HTML file: inline CSS, inline JS that
sorts a table when its header is clicked, charts as base64 PNG data URIs. Nothing is fetched
from anywhere (no CDN, no web fonts), so the file opens offline and from a CI artifact."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from benchtrack.report.markdown import detail_items, headline_text, percent, shown_in_table, status_text
from benchtrack.units import format_metric

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5rem auto;max-width:1200px;color:#212529;
 padding:0 1rem;line-height:1.4}
h1{font-size:1.4rem}h2{font-size:1.1rem;margin-top:1.6rem}
.failed{color:#c92a2a}.passed{color:#2b8a3e}
table{border-collapse:collapse;margin:.5rem 0;font-size:.85rem}
th,td{border:1px solid #dee2e6;padding:.25rem .5rem;text-align:left}
th{background:#f1f3f5}table.sortable th{cursor:pointer;user-select:none}
table.sortable th[aria-sort=ascending]::after{content:" ▲"}table.sortable th[aria-sort=descending]::after{content:" ▼"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.regression td.verdict{color:#c92a2a;font-weight:600}tr.improvement td.verdict{color:#2b8a3e}
tr.inconclusive td.verdict{color:#e67700}.fail{color:#c92a2a;font-weight:700}
.charts{display:flex;flex-wrap:wrap;gap:.75rem}.charts figure{margin:0}
figcaption{font-size:.75rem;color:#495057}details{margin:.4rem 0}summary{cursor:pointer;font-weight:600}
"""

# Sort a table by the clicked column: numbers by their data-sort value, text by locale order.
_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column], y = b.cells[column];
        var nx = parseFloat(x.getAttribute("data-sort")), ny = parseFloat(y.getAttribute("data-sort"));
        var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.textContent.localeCompare(y.textContent);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""


def render_html(report: Mapping[str, Any], distributions: Sequence[tuple[str, bytes]] = (),
                timeline_png: bytes | None = None) -> str:
    """``distributions``: (caption, PNG bytes) per charted comparison; ``timeline_png``: the memory chart."""
    # a word, not an emoji: headless browsers and CI artifact viewers often lack an emoji font
    parts = [f"<h1 class=\"{'failed' if report['failed'] else 'passed'}\">{'FAILED' if report['failed'] else 'PASSED'} · "
             f"{escape(str(report['title']))} — {escape(status_text(report))}</h1>", _facts(report)]
    if report["memory"]:
        parts.append(_memory(report["memory"]))
    if timeline_png:
        parts.append(f"<h2>Memory timeline</h2><figure>{_image(timeline_png, 'memory timeline', 960)}</figure>")
    if report["kind"] in ("run", "compare"):
        parts.append(_verdict_table(report))
    if distributions:
        figures = "".join(f"<figure>{_image(png, caption, 400)}<figcaption>{escape(caption)}</figcaption></figure>"
                          for caption, png in distributions)
        moved = len({(r["suite"], r["benchmark"]) for r in report["verdicts"] if r["verdict"] != "unchanged"})
        note = (f"<p>The {len(distributions)} worst of the {moved} benchmarks that changed or stayed inconclusive.</p>"
                if moved > len(distributions) else "")
        parts.append(f"<h2>Distributions by worker process</h2>{note}<div class=\"charts\">{figures}</div>")
    parts.append(_details(report))
    body = "\n".join(parts)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(str(report['title']))}</title><style>{_CSS}</style></head>\n"
            f"<body>\n{body}\n<script>{_JS}</script>\n</body></html>\n")


def _image(png: bytes, alt: str, width: int) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f"<img src=\"data:image/png;base64,{data}\" alt=\"{escape(alt)}\" style=\"max-width:{width}px;width:100%\">"


def _facts(report: Mapping[str, Any]) -> str:
    facts = [headline_text(report)] if report["kind"] in ("run", "compare") else []
    facts += [f"level {report['level']}" if report.get("level") else "",
              f"fails on {report['fail_on']}" if report.get("fail_on") else "",
              f"commit {str(report['commit'])[:12]}" if report.get("commit") else ""]
    return f"<p>{escape(' · '.join(f for f in facts if f))}</p>"


def _verdict_table(report: Mapping[str, Any]) -> str:
    rows = report["verdicts"]
    if not rows:
        return "<p>Nothing compared: no baseline yet for any benchmark.</p>"
    header = "".join(f"<th scope=\"col\">{name}</th>" for name in (
        "suite", "benchmark", "metric", "baseline", "candidate", "change", "confidence interval", "p adj", "severity", "verdict"))
    body = []
    for row in rows:
        flags = (" <span class=\"fail\">FAIL</span>" if row["fails"] else "") + (" (anomalous)" if row["anomalous"] else "")
        ci = f"[{percent(row['ci_low'])}, {percent(row['ci_high'])}]"
        body.append(
            f"<tr class=\"{escape(row['verdict'])}\"><td>{escape(row['suite'])}</td><td>{escape(row['benchmark'])}</td>"
            f"<td>{escape(row['metric'])}</td>{_num(row['baseline'], format_metric(row['metric'], row['baseline']))}"
            f"{_num(row['candidate'], format_metric(row['metric'], row['candidate']))}"
            f"{_num(row['change'], percent(row['change']))}"
            f"{_num(row['ci_low'], ci)}{_num(row['p_adjusted'], format(row['p_adjusted'], '.2g'))}"
            f"<td data-sort=\"{_SEVERITY_ORDER.get(row['severity'], 0)}\">{escape(row['severity'])}</td>"
            f"<td class=\"verdict\">{escape(row['verdict'])}{flags}</td></tr>")
    hidden = sum(1 for row in rows if not shown_in_table(row))
    note = f"<p>{hidden} of the rows are unchanged metrics other than wall time.</p>" if hidden else ""
    return (f"<h2>Verdicts (worst first; click a header to sort)</h2><table class=\"sortable\" id=\"verdicts\">"
            f"<thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>{note}")


_SEVERITY_ORDER = {"none": 0, "minor": 1, "major": 2, "critical": 3}


def _num(value: float, text: str) -> str:
    return f"<td class=\"num\" data-sort=\"{value!r}\">{escape(text)}</td>"


def _memory(memory: Mapping[str, Any]) -> str:
    rows = [("target", f"{memory['target']} ({memory['kind']})"),
            ("samples", f"{memory['samples']} over {memory['duration_s']:.1f} s"),
            ("memory", f"start {memory['start_mb']:,.1f} MB, end {memory['end_mb']:,.1f} MB, "
                       f"peak {memory['peak_mb']:,.1f} MB at {memory['peak_time_s']:.1f} s")]
    if memory.get("limit_mb") is not None:
        rows.append(("limit", f"{memory['limit_mb']:,.1f} MB"))
    leak = memory.get("leak")
    if leak:
        verdict = f"LEAK ({leak['severity']})" if leak["detected"] else "no leak"
        if leak.get("judged", True):
            verdict += f": {leak['slope_mb_per_min']:+.3g} MB/min, growth {leak['growth_mb']:+.3g} MB"
        rows.append(("leak", verdict))
    rows.append(("OOM events", str(len(memory["oom_events"]))))
    cells = "".join(f"<tr><th scope=\"row\">{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    return f"<h2>Memory</h2><table>{cells}</table>"


def _details(report: Mapping[str, Any]) -> str:
    """The same details as the Markdown, one <details> block each, never truncated."""
    blocks = [f"<details><summary>{escape(title)} ({len(items)})</summary><ul>"
              + "".join(f"<li>{escape(item)}</li>" for item in items) + "</ul></details>"
              for title, items in detail_items(report)]
    return ("<h2>Details</h2>" + "\n".join(blocks)) if blocks else ""
