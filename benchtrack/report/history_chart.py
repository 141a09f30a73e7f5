"""PNG chart of one benchmark's history: a metric over time, promoted runs marked, change points
as vertical lines and each segment's level. Drawn like report/charts.py: a ``Figure`` on the Agg
canvas, never pyplot, so no display or global backend is touched."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import date2num
from matplotlib.figure import Figure

VALUE_COLOR = "#1f4e9c"
PROMOTED_COLOR = "#2a7f62"
CHANGE_COLOR = "#c92a2a"
LEVEL_COLOR = "#d9480f"


@dataclass(frozen=True)
class ChartSegment:
    start: int
    stop: int  # exclusive
    level: float  # in the chart's unit


def history_chart(path: Path, *, title: str, unit: str, times_ms: Sequence[int], values: Sequence[float],
                  promoted: Sequence[bool], change_indices: Sequence[int], segments: Sequence[ChartSegment]) -> Path:
    """Draw the history at ``path`` (values already in ``unit``) and return ``path``."""
    path = Path(path)
    times = [float(date2num(datetime.fromtimestamp(ms / 1000, tz=UTC))) for ms in times_ms]
    figure = Figure(figsize=(10, 4.5), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot(times, values, "o-", color=VALUE_COLOR, markersize=4, linewidth=1, label="run centre")
    marked = [(t, v) for t, v, p in zip(times, values, promoted, strict=True) if p]
    if marked:
        axes.plot([t for t, _ in marked], [v for _, v in marked], "D", color=PROMOTED_COLOR, markersize=8,
                  fillstyle="none", markeredgewidth=1.5, label="promoted to baseline")
    for number, index in enumerate(change_indices):
        between = (times[index - 1] + times[index]) / 2
        axes.axvline(between, color=CHANGE_COLOR, linestyle="--", linewidth=1.2, label="_" if number else "change point")
    for number, segment in enumerate(segments):
        axes.hlines(segment.level, times[segment.start], times[segment.stop - 1], colors=LEVEL_COLOR, linewidth=2,
                    label="_" if number else "segment level (median)")
    axes.xaxis_date(tz=UTC)
    axes.set_title(title, fontsize=10)
    axes.set_ylabel(unit)
    axes.set_xlabel("run start (UTC)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="best")
    figure.autofmt_xdate()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
