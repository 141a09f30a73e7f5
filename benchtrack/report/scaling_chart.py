"""PNG chart of a scaling run: one panel per resource (memory, CPU) with the measured points, every
fitted model as a thin dashed curve and the best fit drawn bold, each formula and R² in the legend.
Drawn like report/charts.py: a ``Figure`` on the Agg canvas, never pyplot, so no display or global
backend is touched; the PNG carries no time stamp, so the same analyses give the same bytes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchtrack.analysis.scaling import ScalingAnalysis

if TYPE_CHECKING:
    from matplotlib.axes import Axes

POINT_COLOR = "#1f4e9c"
MODEL_COLORS = {"linear": "#2a7f62", "power": "#d9480f", "logarithmic": "#7048e8", "exponential": "#c92a2a"}
CURVE_POINTS = 200


def scaling_chart(path: Path, analyses: Sequence[ScalingAnalysis], *, title: str) -> Path:
    """Draw one panel per analysis at ``path`` and return ``path``."""
    if not analyses:
        raise ValueError("a scaling chart needs at least one analysis")
    path = Path(path)
    figure = Figure(figsize=(6.5 * len(analyses), 4.8), dpi=100)
    FigureCanvasAgg(figure)
    for index, analysis in enumerate(analyses, start=1):
        _panel(figure.add_subplot(1, len(analyses), index), analysis)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", metadata={"Software": None})
    return path


def _panel(axes: Axes, analysis: ScalingAnalysis) -> None:
    axes.plot(analysis.levels, analysis.values, "o", color=POINT_COLOR, markersize=6, label="measured", zorder=3)
    if analysis.levels:
        low, high = min(analysis.levels), max(analysis.levels)
        grid = np.linspace(low, high, CURVE_POINTS)
        for fit in analysis.fits:
            best = fit is analysis.best
            curve = [fit.predict(float(x)) for x in grid]
            axes.plot(grid, curve, "-" if best else "--", color=MODEL_COLORS[fit.model], linewidth=2.5 if best else 1,
                      alpha=1.0 if best else 0.7, label=f"{'best: ' if best else ''}{fit.formula} (R² {fit.r2:.3f})",
                      zorder=2 if best else 1)
    if analysis.note:
        axes.text(0.02, 0.98, analysis.note, transform=axes.transAxes, va="top", fontsize=8)
    for number, warning in enumerate(analysis.warnings):
        axes.text(0.02, 0.90 - 0.06 * number, warning, transform=axes.transAxes, va="top", fontsize=8, color="#c92a2a")
    axes.set_xlabel(analysis.load)
    axes.set_ylabel(analysis.quantity)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7, loc="lower right")
