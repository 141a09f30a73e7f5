"""A stored A/A calibration: how much whole invocations of identical code differ on one machine
fingerprint, per benchmark and metric (written by an interleaved A/A run of one commit against
itself; read here as a source of the noise between invocations).

History of ``benchtrack.calibration``:
  1 - fingerprint, created_at, and entries of benchmark ("*" for every benchmark), metric,
      variance (log scale for times) and degrees of freedom.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from benchtrack.analysis.compare import RunNoise
from benchtrack.errors import ResultFormatError

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


def find_calibration(fingerprint: str, root: Path) -> Calibration | None:
    """The calibration of this fingerprint under root/.benchtrack/calibration, if one was made."""
    path = calibration_path(fingerprint, root)
    return load_calibration(path) if path.is_file() else None


def load_calibration(path: Path) -> Calibration:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ResultFormatError(f"cannot read calibration {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("schema") != CALIBRATION_SCHEMA:
        raise ResultFormatError(f"{path} is not a {CALIBRATION_SCHEMA} document")
    try:
        noise = {}
        for entry in data["entries"]:
            variance, df = float(entry["variance"]), float(entry["df"])
            if not (math.isfinite(variance) and variance >= 0 and math.isfinite(df) and df >= 1):
                raise ValueError(f"bad variance or df in {entry}")
            noise[(str(entry["benchmark"]), str(entry["metric"]))] = RunNoise(variance, df, "calibration")
        return Calibration(str(data["fingerprint"]), float(data["created_at"]), noise)
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultFormatError(f"malformed calibration {path}: {exc}") from None


def calibration_to_dict(calibration: Calibration) -> dict[str, object]:
    return {
        "schema": CALIBRATION_SCHEMA,
        "fingerprint": calibration.fingerprint,
        "created_at": calibration.created_at,
        "entries": [{"benchmark": b, "metric": m, "variance": n.variance, "df": n.df}
                    for (b, m), n in sorted(calibration.noise.items())],
    }
