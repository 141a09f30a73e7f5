"""A stored A/A calibration: how much whole invocations of identical code differ on one machine
fingerprint, per benchmark and metric (written by `benchtrack calibrate`, an interleaved A/A run of one
commit against itself; read as a source of the noise between invocations).

History of ``benchtrack.calibration``:
  1 - fingerprint, created_at, and entries of benchmark ("*" for every benchmark), metric,
      variance (log scale for times) and degrees of freedom.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from benchtrack import results as r
from benchtrack.analysis.compare import RunNoise
from benchtrack.analysis.features import process_low_quantiles
from benchtrack.errors import ResultFormatError
from benchtrack.results import BenchmarkResult, RunResult

CALIBRATION_SCHEMA = "benchtrack.calibration/1"
CALIBRATION_FOLDER = Path(".benchtrack") / "calibration"
ANY_BENCHMARK = "*"


@dataclass(frozen=True)
class Calibration:
    fingerprint: str
    created_at: float
    noise: Mapping[tuple[str, str], RunNoise] = field(default_factory=dict)  # (benchmark, metric) -> noise

    def run_noise(self, benchmark: str, metric: str) -> RunNoise | None:
        return self.noise.get((benchmark, metric)) or self.noise.get((ANY_BENCHMARK, metric))


def calibration_path(fingerprint: str, root: Path) -> Path:
    return root / CALIBRATION_FOLDER / f"{fingerprint}.json"


def find_calibration(fingerprint: str, root: Path, max_age_s: float = math.inf, now: float | None = None,
                     stored: Callable[[str], str | None] | None = None) -> Calibration | None:
    """The newest calibration of this fingerprint, from the tracking store (``stored``: the
    store's latest_calibration) or else root/.benchtrack/calibration, if one was made and is
    younger than max_age_s (a machine's noise changes: neighbours, kernel, host)."""
    found: list[Calibration] = []
    text = stored(fingerprint) if stored is not None else None
    if text is not None:
        found.append(calibration_from_text(text, "the tracking store's calibration"))
    path = calibration_path(fingerprint, root)
    if path.is_file():
        found.append(load_calibration(path))
    current = time.time() if now is None else now
    usable = [c for c in found if c.fingerprint == fingerprint and current - c.created_at <= max_age_s]
    return max(usable, key=lambda c: c.created_at, default=None)


def save_calibration(calibration: Calibration, root: Path) -> Path:
    path = calibration_path(calibration.fingerprint, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(calibration_to_dict(calibration), indent=1), encoding="utf-8")
    return path


def calibration_noise(baseline: RunResult, candidate: RunResult, processes: int) -> dict[tuple[str, str], RunNoise]:
    """From an A/A side-by-side run of one commit: each side's rounds cut into groups of
    ``processes`` consecutive worker processes, each group standing for one invocation at that
    level (its fastest process's low quantile, as the comparator takes it); the variance of those
    group centres over both sides is the noise between invocations. One job's groups miss the
    drift between days, so a calibration ages out (find_calibration's max_age_s). Metrics not
    measured get the median benchmark's figure as "*"."""
    noise: dict[tuple[str, str], RunNoise] = {}
    candidates = {b.name: b for b in candidate.benchmarks}
    for bench in baseline.benchmarks:
        other = candidates.get(bench.name)
        if other is None or not bench.ok or not other.ok:
            continue
        for metric in (r.WALL, r.CPU):
            centres = [*_group_centres(bench, metric, processes), *_group_centres(other, metric, processes)]
            if len(centres) >= 3:
                noise[(bench.name, metric)] = RunNoise(float(np.var(centres, ddof=1)), len(centres) - 1.0, "calibration")
    for metric in (r.WALL, r.CPU):
        found = [n for (_, m), n in noise.items() if m == metric]
        if found:
            noise[(ANY_BENCHMARK, metric)] = RunNoise(float(np.median([n.variance for n in found])),
                                                      min(n.df for n in found), "calibration")
    return noise


def _group_centres(bench: BenchmarkResult, metric: str, processes: int) -> list[float]:
    ordered = list(process_low_quantiles(bench, metric).values())
    size = max(1, processes)
    return [min(ordered[i:i + size]) for i in range(0, len(ordered) - size + 1, size)]


def load_calibration(path: Path) -> Calibration:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ResultFormatError(f"cannot read calibration {path}: {exc}") from None
    return calibration_from_text(text, str(path))


def calibration_from_text(text: str, where: str) -> Calibration:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ResultFormatError(f"cannot read calibration {where}: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != CALIBRATION_SCHEMA:
        raise ResultFormatError(f"{where} is not a {CALIBRATION_SCHEMA} document")
    try:
        noise = {}
        for entry in data["entries"]:
            variance, df = float(entry["variance"]), float(entry["df"])
            if not (math.isfinite(variance) and variance >= 0 and math.isfinite(df) and df >= 1):
                raise ValueError(f"bad variance or df in {entry}")
            noise[(str(entry["benchmark"]), str(entry["metric"]))] = RunNoise(variance, df, "calibration")
        return Calibration(str(data["fingerprint"]), float(data["created_at"]), noise)
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultFormatError(f"malformed calibration {where}: {exc}") from None


def calibration_to_dict(calibration: Calibration) -> dict[str, object]:
    return {
        "schema": CALIBRATION_SCHEMA,
        "fingerprint": calibration.fingerprint,
        "created_at": calibration.created_at,
        "entries": [{"benchmark": b, "metric": m, "variance": n.variance, "df": n.df}
                    for (b, m), n in sorted(calibration.noise.items())],
    }
