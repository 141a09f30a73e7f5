"""Change points in histories: benchtrack's detector against Apache Otava's `compute_change_points`
on the same seeded series (changepoint_corpus.py: steps of 1.5-5 noise sds, single spikes, bursts
of two slow runs, slow drift, heavy tails, noise only), scored in the same run: the share of true
change points found within 2 runs, and false change points per series.

Otava pins its own numpy, so it runs in a virtual environment of its own, created on first use
(``pip install apache-otava``) under .benchtrack/venvs/otava (or $BENCHTRACK_OTAVA_VENV); it gets
the series as times (exp of the log-times benchtrack's history holds), as a user would feed it.

    benchtrack run experiments/self -b changepoints.vs_otava --level nightly --no-track --format json
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import venv
from pathlib import Path

from benchtrack import benchmark

OTAVA_VERSION = "0.8.0"
OTAVA_SCRIPT = """
import json, sys
from otava.analysis import compute_change_points
series = json.load(sys.stdin)["series"]
print(json.dumps([[int(p.index) for p in compute_change_points(s)[0]] for s in series]))
"""


def _otava_python() -> Path:
    """The interpreter of Otava's virtual environment, created and installed on first use."""
    folder = Path(os.environ.get("BENCHTRACK_OTAVA_VENV", Path.cwd() / ".benchtrack" / "venvs" / "otava"))
    python = folder / "bin" / "python"
    if not python.exists():
        venv.create(folder, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", f"apache-otava=={OTAVA_VERSION}"],
                       check=True, stdout=sys.stderr)
    return python


def _otava_change_points(python: Path, series: list[list[float]]) -> list[list[int]]:
    done = subprocess.run([str(python), "-c", OTAVA_SCRIPT], input=json.dumps({"series": series}),
                          capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(done.stdout)


def _prepare() -> object:
    import changepoint_corpus

    return changepoint_corpus.generate(per_family=20), _otava_python()


@benchmark(name="changepoints.vs_otava", kind="track", setup=_prepare, levels=("nightly",), processes=1, samples=1,
           warmups=0, timeout=3600, tags=("analysis", "slow"),
           targets={"track.benchtrack.all.false_per_series.max": 0.15})
def vs_otava(prepared: object) -> dict[str, float]:
    import changepoint_corpus

    from benchtrack.analysis.changepoints import change_points

    corpus, python = prepared  # type: ignore[misc]
    report: dict[str, float] = {}
    detections = {
        "benchtrack": [[p.index for p in change_points(s.values, log_scale=True)] for s in corpus],
        "benchtrack_strict": [[p.index for p in change_points(s.values, alpha=0.01, log_scale=True)] for s in corpus],
        "otava": _otava_change_points(python, [[math.exp(v) for v in s.values] for s in corpus]),
    }
    for detector, found in detections.items():
        summary = changepoint_corpus.summarise(corpus, found)
        report.update({f"{detector}.{k}": v for k, v in summary.items() if not math.isnan(v)})
    report["series"] = float(len(corpus))
    return report
