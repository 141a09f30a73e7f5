"""How does a resource grow with load? Fits of memory (MB) or CPU (%) against load levels (pure).

Input: the load levels (users of a closed model, requests/s of an open one) and one measured value
per level (or several: repeated levels are fine). No I/O, no clock, no randomness.

The four candidate models, each fitted by least squares on the scale that makes it a straight line:

=============  =====================  ==========================  ==============================
model          formula                fitted as                   ``slope`` (with its 95 % CI)
=============  =====================  ==========================  ==============================
linear         y = a * x + b          y against x                 a
power          y = a * x^b            ln y against ln x           b, the exponent
logarithmic    y = a * ln(x) + b      y against ln x              a
exponential    y = a * e^(b * x)      ln y against x              b, the growth rate per unit load
=============  =====================  ==========================  ==============================

The confidence interval is the usual t interval of the regression slope on that fitted scale
(``n - 2`` degrees of freedom). R² and the AIC are computed on y's own scale for every model (the
residuals of the curve in MB or %), so the models are compared on the same footing. Power and
logarithmic need x > 0; power and exponential need y > 0: a model whose domain the data leaves is
skipped, and the reason is listed in ``skipped``.

Choosing the best fit
---------------------
All four models have two parameters, so adjusted R² would rank them exactly like R², and the AIC
(``n ln(RSS/n) + 2k``, k = 3 with the noise variance) like the residual sum of squares. Complexity
is penalised instead by preferring the model that is easiest to read and to extrapolate: linear is
chosen unless another model's AIC is lower by at least ``AIC_MARGIN`` (6; from 4 on, Burnham and
Anderson call the weaker model's support "considerably less"). With equal parameter counts this
means linear's residual sum of squares is at least exp(AIC_MARGIN / n) times the other's: 4.5x at
4 levels, 3.3x at 5. Among the challengers that clear the margin, the lowest AIC wins. An
exponential is a challenger only when its curve at least doubles over the measured levels
(e^(b * span) >= ``EXPONENTIAL_MIN_GROWTH``): a flatter exponential is within 9 % of the rise of a
straight line, and a linear truth with a large intercept and a little chance convexity would
otherwise be called exponential now and then. When the best fit is exponential, ``warnings``
says that the resource grows exponentially with load.

Measured on seeded synthetic series (300 each, noise sd 3 on y = 2x + 300 and y = 2x + 30, 3 %
on 0.5 x^2 and on an exponential that grows 12x over the levels): at 4 levels (5, 10, 20, 40)
y = 2x + 300 is chosen linear every time, y = 2x + 30 linear 95 % (3 % exponential, 2 % power),
x^2 power and the exponential exponential every time; at 5 levels (5 .. 80 or 10 .. 160) all four
are recognised every time. A logarithm is chosen logarithmic 76-87 % of the time, otherwise power
(a small exponent is its close cousin). Four levels are the minimum for a useful choice; five or
more are better.

With fewer than ``MIN_LEVELS`` distinct levels nothing is fitted (``best`` is None and ``note``
says why). A constant series (every value equal) gets only the flat linear fit, slope 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from scipy import stats

Model = Literal["linear", "power", "logarithmic", "exponential"]
MODELS: tuple[Model, ...] = ("linear", "power", "logarithmic", "exponential")
MIN_LEVELS = 3  # two points always fit a straight line exactly: no confidence interval, no choice
AIC_MARGIN = 6.0  # a non-linear model must beat linear's AIC by this much to be chosen
EXPONENTIAL_MIN_GROWTH = 2.0  # an exponential must at least double over the levels to be chosen
CI_LEVEL = 0.95
PARAMETERS = 3  # a, b and the noise variance, for the AIC

_FloatArray = np.ndarray[Any, np.dtype[np.float64]]


@dataclass(frozen=True)
class Fit:
    """One fitted model. ``a`` and ``b`` as in the table above; ``slope`` is a (linear,
    logarithmic) or b (power, exponential), with its CI on the scale it was fitted."""

    model: Model
    a: float
    b: float
    slope: float
    slope_ci: tuple[float, float]
    r2: float  # on y's own scale; 1.0 for an exact fit
    aic: float
    formula: str  # e.g. "memory_mb = 2.45 * users + 312.5"

    def predict(self, x: float) -> float:
        return _curve(self.model, self.a, self.b)(np.asarray([x], dtype=float))[0].item()


@dataclass(frozen=True)
class ScalingAnalysis:
    quantity: str  # e.g. "memory_mb", "cpu_percent"
    load: str  # e.g. "users", "rate"
    levels: tuple[float, ...]
    values: tuple[float, ...]
    fits: tuple[Fit, ...]  # in MODELS order, feasible models only
    best: Fit | None
    skipped: tuple[str, ...]  # "power: needs every value > 0", ...
    warnings: tuple[str, ...]
    note: str | None  # why nothing was fitted, or that the series is constant


@dataclass(frozen=True)
class ResetCheck:
    """Memory after the load stopped and the target settled, against the baseline before load."""

    baseline_mb: float
    after_mb: float
    retained_mb: float  # after - baseline
    allowed_mb: float  # max(tolerance * baseline, min_allowed_mb)
    passed: bool


def reset_check(baseline_mb: float, after_mb: float, tolerance: float = 0.10, *, min_allowed_mb: float = 5.0) -> ResetCheck:
    """Did memory come back after the load? Passed when it retains at most ``tolerance`` of the
    baseline (a fraction) or ``min_allowed_mb``, whichever is larger: allocators keep some freed
    memory, and a small process would otherwise fail on noise alone."""
    if tolerance < 0 or min_allowed_mb < 0:
        raise ValueError("tolerance and min_allowed_mb must not be negative")
    retained = after_mb - baseline_mb
    allowed = max(tolerance * baseline_mb, min_allowed_mb)
    return ResetCheck(baseline_mb, after_mb, retained, allowed, passed=retained <= allowed)


def fit_scaling(levels: Sequence[float], values: Sequence[float], *, quantity: str = "memory_mb",
                load: str = "load") -> ScalingAnalysis:
    """Fit every feasible model to ``values`` against ``levels`` and choose the best (module doc)."""
    x = np.asarray(levels, dtype=float)
    y = np.asarray(values, dtype=float)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"levels and values must be two sequences of one length, got {x.shape} and {y.shape}")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("levels and values must be finite numbers")

    def analysis(fits: tuple[Fit, ...], best: Fit | None, skipped: tuple[str, ...] = (),
                 warnings: tuple[str, ...] = (), note: str | None = None) -> ScalingAnalysis:
        return ScalingAnalysis(quantity, load, tuple(x.tolist()), tuple(y.tolist()), fits, best, skipped, warnings, note)

    distinct = len(np.unique(x))
    if distinct < MIN_LEVELS:
        return analysis((), None, note=f"not enough levels: {distinct} distinct load levels, at least {MIN_LEVELS} are needed")
    if np.ptp(y) == 0:
        level = float(y[0])
        flat = Fit("linear", 0.0, level, 0.0, (0.0, 0.0), 1.0, -math.inf, _formula("linear", 0.0, level, quantity, load))
        return analysis((flat,), flat, note=f"{quantity} does not change with {load}")
    fits: list[Fit] = []
    skipped: list[str] = []
    for model in MODELS:
        reason = _infeasible(model, x, y)
        if reason:
            skipped.append(f"{model}: {reason}")
        else:
            fits.append(_fit(model, x, y, quantity, load))
    best = choose(fits, float(np.ptp(x)))
    warnings = (f"{quantity} grows exponentially with {load}",) if best is not None and best.model == "exponential" else ()
    return analysis(tuple(fits), best, tuple(skipped), warnings)


def choose(fits: Sequence[Fit], span: float) -> Fit | None:
    """Linear unless a challenger's AIC is lower by AIC_MARGIN; then the challenger with the lowest AIC.
    ``span`` is the distance between the lowest and the highest load level."""
    linear = next((f for f in fits if f.model == "linear"), None)
    challengers = [f for f in fits if f.model != "linear" and (f.model != "exponential" or _curves(f, span))]
    if linear is None:
        return min(challengers, key=lambda f: f.aic, default=None)
    clear = [f for f in challengers if f.aic <= linear.aic - AIC_MARGIN]
    return min(clear, key=lambda f: f.aic) if clear else linear


def _curves(exponential: Fit, span: float) -> bool:
    return exponential.b * span >= math.log(EXPONENTIAL_MIN_GROWTH)


def _infeasible(model: Model, x: _FloatArray, y: _FloatArray) -> str | None:
    if model in ("power", "logarithmic") and np.any(x <= 0):
        return "needs every load level > 0"
    if model in ("power", "exponential") and np.any(y <= 0):
        return "needs every value > 0"
    return None


def _fit(model: Model, x: _FloatArray, y: _FloatArray, quantity: str, load: str) -> Fit:
    # Each model is a straight line u = slope * t + intercept on its own scale.
    t = np.log(x) if model in ("power", "logarithmic") else x
    u = np.log(y) if model in ("power", "exponential") else y
    line = stats.linregress(t, u)
    slope, intercept = float(line.slope), float(line.intercept)
    if model in ("linear", "logarithmic"):
        a, b = slope, intercept
    else:
        a, b = math.exp(intercept), slope
    predicted = _curve(model, a, b)(x)
    rss = float(np.sum((y - predicted) ** 2))
    tss = float(np.sum((y - y.mean()) ** 2))
    return Fit(model, a, b, slope, _slope_ci(slope, float(line.stderr), len(x)), 1.0 - rss / tss, _aic(rss, tss, len(x)),
               _formula(model, a, b, quantity, load))


def _slope_ci(slope: float, stderr: float, n: int) -> tuple[float, float]:
    half = float(stats.t.ppf(0.5 + CI_LEVEL / 2, n - 2)) * stderr
    return (slope - half, slope + half)


def _aic(rss: float, tss: float, n: int) -> float:
    # An exact fit would give log(0): floor the residuals at a negligible share of the spread.
    return n * math.log(max(rss, 1e-12 * tss) / n) + 2 * PARAMETERS


def _curve(model: Model, a: float, b: float) -> Callable[[_FloatArray], _FloatArray]:
    if model == "linear":
        return lambda x: a * x + b
    if model == "power":
        return lambda x: a * np.power(x, b)
    if model == "logarithmic":
        return lambda x: a * np.log(x) + b
    return lambda x: a * np.exp(b * x)


def _number(value: float) -> str:
    return f"{value:.4g}"


def _formula(model: Model, a: float, b: float, quantity: str, load: str) -> str:
    if model == "linear":
        sign = "-" if b < 0 else "+"
        return f"{quantity} = {_number(a)} * {load} {sign} {_number(abs(b))}"
    if model == "power":
        return f"{quantity} = {_number(a)} * {load}^{_number(b)}"
    if model == "logarithmic":
        sign = "-" if b < 0 else "+"
        return f"{quantity} = {_number(a)} * ln({load}) {sign} {_number(abs(b))}"
    return f"{quantity} = {_number(a)} * e^({_number(b)} * {load})"
