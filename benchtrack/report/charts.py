"""PNG charts of memory timelines: the only module that imports matplotlib.

Figures are built with matplotlib's object-oriented API (``Figure`` drawn on the Agg canvas),
never through pyplot: nothing is registered with pyplot's figure manager, so no display is
needed, no figure outlives the call, the caller's own pyplot backend is left alone (no global
``matplotlib.use``), and charts can be drawn from any thread (a watcher's, a profiler's).

"MB" is MiB (1,048,576 bytes), as in :mod:`benchtrack.analysis.leaks`.
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.transforms import blended_transform_factory

from benchtrack.results import Phase, Timeline

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from benchtrack.analysis.leaks import LeakVerdict

MIB = 1024.0 * 1024.0
_FloatArray = np.ndarray[Any, np.dtype[np.float64]]

MEMORY_COLOR = "#1f4e9c"
RATE_COLOR = "#2a7f62"
TREND_COLOR = "#d9480f"
LIMIT_COLOR = "#c92a2a"
OOM_COLOR = "#a61e4d"
PHASE_COLORS = ("#4dabf7", "#ffa94d", "#69db7c", "#da77f2", "#ffd43b", "#38d9a9", "#a9a9a9", "#f783ac")
LABEL_CHAR_WIDTH = 0.0075  # width of one label character (8.5 pt) as a fraction of the time span shown
PHASE_BAND = 0.055  # height of one row of phase labels, as a fraction of the memory axes
LIMIT_SHOWN_UP_TO = 3.0  # a limit above this multiple of the highest sample is noted, not drawn
RATE_WINDOWS = 30  # the change rate is smoothed over duration / RATE_WINDOWS (at least 3 intervals)
SYMLOG_RANGE = 25.0  # a rate panel whose spikes exceed this multiple of its typical level goes symlog


def timeline_chart(timeline: Timeline, path: Path, *, title: str, leak: LeakVerdict | None = None) -> Path:
    """Draw ``timeline`` as a PNG at ``path`` and return ``path``.

    Top panel: memory (MB) over time with phases shaded and labelled, the peak marked with its
    value, the limit line when ``timeline.limit_bytes`` is set (noted instead of drawn when it is
    far above the data), OOM events as vertical markers and, with ``leak``, the Theil-Sen trend
    line over the analysed span and the discarded warm-up. Bottom panel: the memory change rate,
    a least-squares slope over a sliding time window (MB/min), with the leak slope and its 95 %
    interval when ``leak`` is given.
    """
    path = Path(path)
    times = np.asarray(timeline.times_s, dtype=float)
    mb = np.asarray(timeline.memory_bytes, dtype=float) / MIB
    if times.shape != mb.shape:
        raise ValueError(f"timeline times and memory differ in length: {times.size} != {mb.size}")
    scale, unit = _time_unit(_span(times, timeline))

    figure = Figure(figsize=(12, 7.2), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    memory_ax, rate_ax = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3.2, 1.3]})
    figure.suptitle(title, fontsize=14, fontweight="bold")
    memory_ax.set_title(_subtitle(timeline, times, mb, leak), fontsize=9.5, loc="left", color="#333333")

    rate_ax.set_ylabel("change rate\n(MB/min)")  # _draw_rate notes a symlog scale
    levels = _phase_levels(timeline.phases, max(_span(times, timeline) - _start(times, timeline), 1e-9))
    _draw_phases(memory_ax, rate_ax, timeline.phases, levels, scale)
    if times.size:
        _draw_memory(memory_ax, times / scale, mb)
        limit_note = _draw_limit(memory_ax, timeline.limit_bytes, float(mb.max()))
        if leak is not None:
            _draw_trend(memory_ax, times, mb, leak, scale)
        _frame_memory(memory_ax, mb, timeline.limit_bytes, limit_note, max(levels, default=-1) + 1)
        _draw_rate(rate_ax, times, mb, leak, scale)
    else:
        memory_ax.text(0.5, 0.5, "no samples", transform=memory_ax.transAxes, ha="center", va="center",
                       fontsize=14, color="#868e96")
    _draw_oom(memory_ax, rate_ax, timeline, scale)

    memory_ax.set_ylabel("memory (MB)")
    memory_ax.grid(True, alpha=0.3)
    rate_ax.set_xlabel(f"time since start ({unit})")
    rate_ax.grid(True, alpha=0.3)
    handles, labels = memory_ax.get_legend_handles_labels()
    rate_handles, rate_labels = rate_ax.get_legend_handles_labels()
    if handles or rate_handles:
        figure.legend([*handles, *rate_handles], [*labels, *rate_labels], loc="outside lower center",
                      ncol=min(4, len(handles) + len(rate_handles)), fontsize=9, frameon=False)
    try:
        figure.savefig(path, format="png")
    finally:
        figure.clear()
    return path


def smoothed_rate(times_s: _FloatArray, mb: _FloatArray, window_s: float) -> _FloatArray:
    """Least-squares slope of MB against time over ``[t - window/2, t + window/2]`` at every
    sample, in MB/min (NaN where the window holds fewer than two distinct times). O(n) with
    prefix sums; timestamps need not be evenly spaced."""
    n = times_s.size
    if n < 2:
        return np.full(n, math.nan)
    t = times_s - times_s.mean()
    y = mb - mb.mean()
    zero = np.zeros(1)
    s_t, s_y = np.concatenate([zero, np.cumsum(t)]), np.concatenate([zero, np.cumsum(y)])
    s_tt, s_ty = np.concatenate([zero, np.cumsum(t * t)]), np.concatenate([zero, np.cumsum(t * y)])
    lo = np.searchsorted(times_s, times_s - window_s / 2, side="left")
    hi = np.searchsorted(times_s, times_s + window_s / 2, side="right")
    count = (hi - lo).astype(float)
    sum_t, sum_y = s_t[hi] - s_t[lo], s_y[hi] - s_y[lo]
    sxx = (s_tt[hi] - s_tt[lo]) - sum_t * sum_t / np.maximum(count, 1)
    sxy = (s_ty[hi] - s_ty[lo]) - sum_t * sum_y / np.maximum(count, 1)
    spread = window_s * window_s * 1e-9 + 1e-18
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.where((count >= 2) & (sxx > spread), sxy / sxx, math.nan)
    return np.asarray(slope * 60.0, dtype=float)


# --- pieces -------------------------------------------------------------------------------------


def _span(times: _FloatArray, timeline: Timeline) -> float:
    ends = [float(times[-1])] if times.size else []
    ends += [p.end_s for p in timeline.phases] + [e.time_s for e in timeline.oom_events]
    return max(ends, default=0.0)


def _start(times: _FloatArray, timeline: Timeline) -> float:
    starts = [float(times[0])] if times.size else []
    starts += [p.start_s for p in timeline.phases] + [e.time_s for e in timeline.oom_events]
    return min(starts, default=0.0)


def _time_unit(span_s: float) -> tuple[float, str]:
    if span_s >= 3 * 3600:
        return 3600.0, "h"
    if span_s >= 180:
        return 60.0, "min"
    return 1.0, "s"


def _subtitle(timeline: Timeline, times: _FloatArray, mb: _FloatArray, leak: LeakVerdict | None) -> str:
    started = datetime.fromtimestamp(timeline.started_at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [f"{timeline.target}  ·  started {started}  ·  {times.size} samples"]
    if times.size >= 2:
        interval_ms = float(np.median(np.diff(times))) * 1000.0
        lines[0] += f" over {_duration(float(times[-1] - times[0]))}, median interval {_duration(interval_ms / 1000)}"
    if mb.size:
        lines.append(f"start {mb[0]:,.1f} MB  →  end {mb[-1]:,.1f} MB  (change {round(float(mb[-1] - mb[0]), 1) + 0.0:+,.1f} MB),"
                     f"  peak {mb.max():,.1f} MB")
    if leak is not None:
        lines.append(_leak_line(leak))
    return "\n".join(lines)


def _leak_line(leak: LeakVerdict) -> str:
    if not math.isfinite(leak.slope_mb_per_min):
        return f"leak check: no verdict ({leak.samples} samples after a {_duration(leak.warmup_s)} warm-up)"
    head = f"LEAK DETECTED ({leak.severity})" if leak.detected else "no leak detected"
    return (f"{head}: Theil-Sen slope {leak.slope_mb_per_min:+.3g} MB/min (95% CI {leak.ci_low:.3g} to "
            f"{leak.ci_high:.3g}), projected growth {leak.growth_mb:+.3g} MB, Mann-Kendall p = {leak.mann_kendall_p:.2g}, "
            f"{'persistent' if leak.persistent else 'not persistent'}")


def _phase_levels(phases: tuple[Phase, ...], span_s: float) -> list[int]:
    """Row of each phase label: the lowest row where neither the phase nor its label (estimated
    width) overlaps an earlier one, so nested, overlapping and short phases stay readable."""
    row_ends: list[float] = []
    levels = [0] * len(phases)
    for index in sorted(range(len(phases)), key=lambda i: (phases[i].start_s, -phases[i].end_s)):
        phase = phases[index]
        label_end = phase.start_s + len(_phase_label(phase)) * LABEL_CHAR_WIDTH * span_s
        row = next((r for r, end in enumerate(row_ends) if end <= phase.start_s), len(row_ends))
        if row == len(row_ends):
            row_ends.append(0.0)
        row_ends[row] = max(phase.end_s, label_end)
        levels[index] = row
    return levels


def _phase_label(phase: Phase) -> str:
    return f" {phase.name} ({_duration(phase.end_s - phase.start_s)})"


def _draw_phases(memory_ax: Axes, rate_ax: Axes, phases: tuple[Phase, ...], levels: list[int], scale: float) -> None:
    band = blended_transform_factory(memory_ax.transData, memory_ax.transAxes)
    for index, (phase, level) in enumerate(zip(phases, levels, strict=True)):
        color = PHASE_COLORS[index % len(PHASE_COLORS)]
        start, end = phase.start_s / scale, phase.end_s / scale
        for ax in (memory_ax, rate_ax):
            ax.axvspan(start, end, color=color, alpha=0.13, lw=0)
            ax.axvline(start, color=color, lw=0.8, alpha=0.7)
        top = 1.0 - PHASE_BAND * level
        memory_ax.axvspan(start, end, ymin=top - PHASE_BAND * 0.9, ymax=top, color=color, alpha=0.55, lw=0)
        memory_ax.text(start, top - PHASE_BAND * 0.45, _phase_label(phase),
                       transform=band, va="center", ha="left", fontsize=8.5, clip_on=True)


def _draw_memory(ax: Axes, t: _FloatArray, mb: _FloatArray) -> None:
    ax.plot(t, mb, color=MEMORY_COLOR, lw=1.4, marker="." if t.size <= 80 else None, ms=4, label="memory (RSS)",
            zorder=3)
    peak = int(np.argmax(mb))
    where = (t[peak] - t[0]) / max(float(t[-1] - t[0]), 1e-12)
    align = "right" if where > 0.9 else "left" if where < 0.1 else "center"
    ax.plot([t[peak]], [mb[peak]], marker="v", color=TREND_COLOR, ms=9, ls="none", zorder=4,
            label=f"peak {mb[peak]:,.1f} MB")
    ax.annotate(f"peak {mb[peak]:,.1f} MB", (float(t[peak]), float(mb[peak])), xytext=(0, 9),
                textcoords="offset points", ha=align, va="bottom", fontsize=9, fontweight="bold",
                color=TREND_COLOR, zorder=5)


def _draw_limit(ax: Axes, limit_bytes: float | None, highest_mb: float) -> str | None:
    if limit_bytes is None:
        return None
    limit_mb = limit_bytes / MIB
    if limit_mb > LIMIT_SHOWN_UP_TO * max(highest_mb, 1e-9):
        return f"limit {limit_mb:,.0f} MB (off scale: peak is {100 * highest_mb / limit_mb:.1f}% of it)"
    ax.axhline(limit_mb, color=LIMIT_COLOR, ls="--", lw=1.6, label=f"limit {limit_mb:,.0f} MB", zorder=2)
    return None


def _draw_trend(ax: Axes, times: _FloatArray, mb: _FloatArray, leak: LeakVerdict, scale: float) -> None:
    start = float(times[0])
    if leak.warmup_s > 0:
        ax.axvspan(start / scale, (start + leak.warmup_s) / scale, facecolor="none", edgecolor="#adb5bd",
                   hatch="//", lw=0, label="warm-up (not analysed)", zorder=1)
    if not math.isfinite(leak.slope_mb_per_min):
        return
    keep = times >= start + leak.warmup_s
    if np.count_nonzero(keep) < 2:
        return
    t_min = (times[keep] - start) / 60.0
    intercept = float(np.median(mb[keep])) - leak.slope_mb_per_min * float(np.median(t_min))
    ends = np.array([t_min[0], t_min[-1]])
    ax.plot((ends * 60.0 + start) / scale, intercept + leak.slope_mb_per_min * ends, color=TREND_COLOR, ls="--",
            lw=2.0, label=f"Theil-Sen trend {leak.slope_mb_per_min:+.3g} MB/min", zorder=4)


def _frame_memory(ax: Axes, mb: _FloatArray, limit_bytes: float | None, limit_note: str | None, rows: int) -> None:
    low, high = float(mb.min()), float(mb.max())
    if limit_bytes is not None and limit_note is None:
        high = max(high, limit_bytes / MIB)
    span = max(high - low, 0.02 * max(abs(high), 1.0), 0.5)
    top_fraction = PHASE_BAND * rows + 0.1  # room for phase labels and the peak label
    ax.set_ylim(low - 0.06 * span, high + span * top_fraction / (1 - top_fraction))
    if limit_note:
        ax.text(0.995, 0.02, limit_note, transform=ax.transAxes, ha="right", va="bottom", fontsize=8.5,
                color=LIMIT_COLOR)


def _draw_rate(ax: Axes, times: _FloatArray, mb: _FloatArray, leak: LeakVerdict | None, scale: float) -> None:
    ax.axhline(0.0, color="#495057", lw=0.8)
    if times.size >= 3:
        duration = float(times[-1] - times[0])
        window = max(duration / RATE_WINDOWS, 3 * float(np.median(np.diff(times))))
        rate = smoothed_rate(times, mb, window)
        ax.plot(times / scale, rate, color=RATE_COLOR, lw=1.2, label=f"change rate ({_duration(window)} window)")
        finite = np.abs(rate[np.isfinite(rate)])
        typical = float(np.percentile(finite, 75)) if finite.size else 0.0
        if leak is not None and math.isfinite(leak.slope_mb_per_min):
            typical = max(typical, abs(leak.slope_mb_per_min), abs(leak.ci_high))
        if finite.size and float(finite.max()) > SYMLOG_RANGE * max(typical, 1e-3):
            ax.set_yscale("symlog", linthresh=max(typical, 0.01))
            ax.set_ylabel("change rate\n(MB/min, symlog)")
    if leak is not None and math.isfinite(leak.slope_mb_per_min):
        start = float(times[0]) + leak.warmup_s
        end = float(times[-1])
        ax.fill_between([start / scale, end / scale], leak.ci_low, leak.ci_high, color=TREND_COLOR, alpha=0.18, lw=0)
        ax.plot([start / scale, end / scale], [leak.slope_mb_per_min] * 2, color=TREND_COLOR, ls="--", lw=1.6,
                label="leak slope and 95% CI")


def _draw_oom(memory_ax: Axes, rate_ax: Axes, timeline: Timeline, scale: float) -> None:
    top = blended_transform_factory(memory_ax.transData, memory_ax.transAxes)
    for number, event in enumerate(timeline.oom_events):
        x = event.time_s / scale
        for ax in (memory_ax, rate_ax):
            ax.axvline(x, color=OOM_COLOR, lw=2.0, ls="-", alpha=0.85,
                       label=("OOM event" if number == 0 and ax is memory_ax else None), zorder=5)
        memory_ax.text(x, 0.03, f" {event.kind} ", transform=top, rotation=90, ha="right", va="bottom",
                       fontsize=8.5, color=OOM_COLOR, fontweight="bold", zorder=6,
                       bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})


def _duration(seconds: float) -> str:
    if seconds >= 5400:
        return f"{seconds / 3600:.3g} h"
    if seconds >= 120:
        return f"{seconds / 60:.3g} min"
    if seconds >= 1:
        return f"{seconds:.3g} s"
    return f"{seconds * 1000:.3g} ms"


# --- distributions of a comparison --------------------------------------------------------------

BASELINE_COLOR = "#495057"
CANDIDATE_COLOR = "#d9480f"


def distribution_chart(benchmark: str, metric: str, baseline: list[float], candidate: list[float], *,
                       subtitle: str = "") -> bytes:
    """PNG bytes of one comparison: each side's per-process centres as a strip over a box plot,
    one colour per side, every point labelled with its worker process index (p0, p1, ...).
    Small (400 x 250 px) and deterministic: the same numbers give the same bytes."""
    scale, unit = _value_unit(metric, [*baseline, *candidate])
    figure = Figure(figsize=(5.0, 3.1), dpi=80, layout="constrained")
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    figure.suptitle(f"{benchmark}: {metric}", fontsize=10, fontweight="bold")
    if subtitle:
        ax.set_title(subtitle, fontsize=8, loc="left", color="#333333")
    for position, (label, values, color) in enumerate((("baseline", baseline, BASELINE_COLOR),
                                                        ("candidate", candidate, CANDIDATE_COLOR))):
        shown = np.asarray(values, dtype=float) / scale
        if shown.size >= 3:
            ax.boxplot([shown], positions=[position], widths=0.5, showfliers=False, medianprops={"color": color},
                       boxprops={"color": color, "alpha": 0.6}, whiskerprops={"color": color, "alpha": 0.6},
                       capprops={"color": color, "alpha": 0.6})
        offsets = np.linspace(-0.16, 0.16, shown.size) if shown.size > 1 else np.zeros(shown.size)
        ax.scatter(position + offsets, shown, s=22, color=color, zorder=3, label=f"{label} ({shown.size} processes)")
        for process, (x, y) in enumerate(zip(position + offsets, shown, strict=True)):
            if shown.size <= 12:  # labels of more processes would only overlap
                ax.annotate(f"p{process}", (float(x), float(y)), xytext=(4, 0), textcoords="offset points",
                            fontsize=6.5, color=color, va="center")
    ax.set_xticks([0, 1], ["baseline", "candidate"])
    ax.set_xlim(-0.6, 1.6)
    ax.set_ylabel(f"per-process centre ({unit})" if unit else "per-process centre", fontsize=8)
    ax.tick_params(labelsize=7.5)
    ax.grid(True, axis="y", alpha=0.3)
    buffer = io.BytesIO()
    try:
        figure.savefig(buffer, format="png", metadata={"Software": None})
    finally:
        figure.clear()
    return buffer.getvalue()


def _value_unit(metric: str, values: list[float]) -> tuple[float, str]:
    largest = max((abs(v) for v in values), default=0.0)
    if metric.endswith("_bytes"):
        return MIB, "MiB"
    if metric.endswith("_s"):
        for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "µs")):
            if largest >= scale:
                return scale, unit
        return 1e-9, "ns"
    return 1.0, ""
