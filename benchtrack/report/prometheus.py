"""`benchtrack.report/1` documents in the Prometheus text exposition format (version 0.0.4), for
node-exporter's textfile collector (pure: documents in, text out).

Every series carries suite, branch and fingerprint labels (and benchmark, metric where they
apply), so dashboards can tell machines and branches apart. Series are stable from run to run:
``benchtrack_regression`` has one series per severity, 1 for the severity found, else 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("none", "minor", "major", "critical")


@dataclass
class _Family:
    name: str
    help: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


def escape_label(value: object) -> str:
    """Backslash, double quote and line feed escaped, as the exposition format requires."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_prometheus(reports: Sequence[Mapping[str, Any]]) -> str:
    families = {name: _Family(name, text) for name, text in (
        ("benchtrack_change_ratio", "Relative change of a metric against its baseline (0.1 = 10% slower or larger)."),
        ("benchtrack_change_ci_low_ratio", "Lower bound of the confidence interval (1 - alpha) of the relative change."),
        ("benchtrack_change_ci_high_ratio", "Upper bound of the confidence interval (1 - alpha) of the relative change."),
        ("benchtrack_regression", "1 when the metric regressed at this severity, else 0."),
        ("benchtrack_improvement", "1 when the metric improved significantly, else 0."),
        ("benchtrack_inconclusive", "1 when the data could not decide the metric's verdict, else 0."),
        ("benchtrack_fails", "1 when the verdict fails the level it was judged at, else 0."),
        ("benchtrack_wall_seconds", "Median wall time per operation in the latest run."),
        ("benchtrack_suite_failed", "1 when the latest run of the suite failed its level, else 0."),
        ("benchtrack_last_run_timestamp_seconds", "When the latest run of the suite finished (Unix time)."),
    )}
    for report in reports:
        _add_report(families, report)
    lines = []
    for family in families.values():
        lines += [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} gauge"]
        lines += [f"{family.name}{_labels(labels)} {_number(value)}" for labels, value in family.samples]
    return "\n".join(lines) + "\n"


def _add_report(families: Mapping[str, _Family], report: Mapping[str, Any]) -> None:
    suites = {s["suite"]: s for s in report.get("suites", [])}
    for row in report["verdicts"]:
        labels = {**_suite_labels(row["suite"], suites.get(row["suite"], {})), "benchmark": row["benchmark"],
                  "metric": row["metric"]}
        families["benchtrack_change_ratio"].samples.append((labels, row["change"]))
        families["benchtrack_change_ci_low_ratio"].samples.append((labels, row["ci_low"]))
        families["benchtrack_change_ci_high_ratio"].samples.append((labels, row["ci_high"]))
        for severity in SEVERITIES:
            regressed = row["verdict"] == "regression" and row["severity"] == severity
            families["benchtrack_regression"].samples.append(({**labels, "severity": severity}, float(regressed)))
        families["benchtrack_improvement"].samples.append((labels, float(row["verdict"] == "improvement")))
        families["benchtrack_inconclusive"].samples.append((labels, float(row["verdict"] == "inconclusive")))
        families["benchtrack_fails"].samples.append((labels, float(row["fails"])))
    for suite in suites.values():
        labels = _suite_labels(suite["suite"], suite)
        for bench in suite["benchmarks"]:
            if bench.get("wall_s_median") is not None:
                families["benchtrack_wall_seconds"].samples.append(({**labels, "benchmark": bench["name"]},
                                                                    float(bench["wall_s_median"])))
        families["benchtrack_suite_failed"].samples.append((labels, float(report["failed"])))
        if suite.get("finished_at") is not None:
            families["benchtrack_last_run_timestamp_seconds"].samples.append((labels, float(suite["finished_at"])))


def _suite_labels(name: str, suite: Mapping[str, Any]) -> dict[str, str]:
    return {"suite": name, "branch": suite.get("branch") or "", "fingerprint": suite.get("fingerprint") or ""}


def _labels(labels: Mapping[str, str]) -> str:
    return "{" + ",".join(f'{key}="{escape_label(value)}"' for key, value in labels.items()) + "}"


def _number(value: float) -> str:
    return repr(float(value))

