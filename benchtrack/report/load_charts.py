"""PNG charts of load runs, drawn like report/charts.py (a ``Figure`` on the Agg canvas, never pyplot).

- :func:`load_timeline_chart`: latency percentiles and throughput (with errors) per window over time;
- :func:`load_compare_chart`: two runs side by side: their latency percentiles, and their memory
  timelines on one axis (when measured).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchtrack.load.result import LoadWindow

PERCENTILE_COLORS = {"p50": "#1f4e9c", "p95": "#d9480f", "p99": "#c92a2a"}
THROUGHPUT_COLOR = "#2a7f62"
ERROR_COLOR = "#a61e4d"
SIDE_COLORS = ("#868e96", "#1f4e9c")  # baseline, candidate


def load_timeline_chart(windows: Sequence[LoadWindow], path: Path, *, title: str, warmup_s: float = 0.0,
                        requested_rps: float | None = None) -> Path:
    figure = Figure(figsize=(12, 7), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    latency_ax, rate_ax = figure.subplots(2, 1, sharex=True)
    figure.suptitle(title, fontsize=14, fontweight="bold")
    middles = [(w.start_s + w.end_s) / 2 for w in windows]
    for key, color in PERCENTILE_COLORS.items():
        latency_ax.plot(middles, [getattr(w, f"{key}_ms") for w in windows], color=color, label=key, linewidth=1.4)
    latency_ax.set_ylabel("latency (ms)")
    latency_ax.legend(loc="upper left")
    rate_ax.plot(middles, [w.throughput_rps for w in windows], color=THROUGHPUT_COLOR, label="throughput")
    rate_ax.bar(middles, [w.errors for w in windows], width=0.8 * _width(windows), color=ERROR_COLOR, alpha=0.5,
                label="errors per window")
    if requested_rps is not None:
        rate_ax.axhline(requested_rps, color=THROUGHPUT_COLOR, linestyle="--", linewidth=1, label="requested rate")
    rate_ax.set_ylabel("requests/s")
    rate_ax.set_xlabel("time since start (s)")
    rate_ax.legend(loc="upper left")
    if warmup_s > 0:
        for ax in (latency_ax, rate_ax):
            ax.axvspan(0, warmup_s, color="#ffa94d", alpha=0.15, label=None)
        latency_ax.text(warmup_s / 2, 1.0, "warm-up", transform=latency_ax.get_xaxis_transform(), ha="center",
                        va="top", fontsize=8.5)
    figure.savefig(path)
    return path


def load_compare_chart(path: Path, *, labels: tuple[str, str], percentiles: tuple[Mapping[str, float], Mapping[str, float]],
                       memory: tuple[tuple[Sequence[float], Sequence[float]], tuple[Sequence[float], Sequence[float]]],
                       title: str) -> Path:
    """percentiles: {"p50": ms, ...} per side; memory: (times_s, MB) per side (empty when not measured)."""
    has_memory = any(times for times, _ in memory)
    figure = Figure(figsize=(12, 5.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2 if has_memory else 1, squeeze=False)[0]
    figure.suptitle(title, fontsize=14, fontweight="bold")
    names = list(PERCENTILE_COLORS)
    width = 0.38
    for side, (label, values, color) in enumerate(zip(labels, percentiles, SIDE_COLORS, strict=True)):
        xs = [i + (side - 0.5) * width for i in range(len(names))]
        heights = [values.get(name, 0.0) for name in names]
        bars = axes[0].bar(xs, heights, width=width, color=color, label=label)
        axes[0].bar_label(bars, fmt="%.3g", fontsize=8)
    axes[0].set_xticks(range(len(names)), names)
    axes[0].set_ylabel("latency (ms)")
    axes[0].set_title("latency percentiles", fontsize=10)
    axes[0].legend()
    if has_memory:
        for label, (times, mb), color in zip(labels, memory, SIDE_COLORS, strict=True):
            if times:
                axes[1].plot(times, mb, color=color, label=label, linewidth=1.4)
        axes[1].set_xlabel("time since start (s)")
        axes[1].set_ylabel("memory (MB)")
        axes[1].set_title("memory of the monitored target", fontsize=10)
        axes[1].legend()
    figure.savefig(path)
    return path


def _width(windows: Sequence[LoadWindow]) -> float:
    return (windows[0].end_s - windows[0].start_s) if windows else 1.0
