"""Generate the labelled real-run noise corpus that bench_detection.py scores verdicts on.

Each entry is one separate invocation of a real tool on this machine (`benchtrack run
--output`, pytest-benchmark's --benchmark-json, a pyperf script) over the benchmarks of
_noise_suite/. Null invocations run identical code; a changed invocation makes a third of the
benchmarks do exactly 5, 10 or 20% more work (the rest stay identical, so every invocation
also holds unchanged benchmarks, as a real commit does). Part of the invocations run while this
script loads the machine with its own processes: a CPU burner, or a CPU burner plus a
memory-bandwidth hog. The order is shuffled (seeded) so drift over time hits every condition.

Stored compactly: benchtrack files keep the compared metrics and the load details, gzipped;
pytest-benchmark rounds are reduced to 200 order statistics (plus the exact mean and count);
pyperf files keep every value. index.json lists every file with its labels.

    python experiments/self/make_noise_corpus.py            # the full corpus, about 40 minutes
    python experiments/self/make_noise_corpus.py --scale 0.3  # a smaller one, for a try
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
SUITE = HERE / "_noise_suite"
OUT = HERE / "noise_corpus"
INDEX_SCHEMA = "benchtrack.noise-corpus/1"
FACTORS = (1.05, 1.10, 1.20)
KEPT_METRICS = ("wall_s", "cpu_s", "ctx_involuntary", "rss_peak_bytes", "gc_pause_s",
                "gc_gen0_collections", "gc_gen1_collections", "gc_gen2_collections")
PYTEST_QUANTILES = 200
# (tool, condition) -> (null invocations, invocations per factor)
PLAN = {
    ("benchtrack", "quiet"): (10, 3), ("benchtrack", "loaded"): (6, 2),
    ("pytest-benchmark", "quiet"): (6, 1), ("pytest-benchmark", "loaded"): (4, 1),
    ("pyperf", "quiet"): (6, 1), ("pyperf", "loaded"): (3, 1),
}


@dataclass(frozen=True)
class Entry:
    file: str
    tool: str
    condition: str  # "quiet" | "loaded"
    load: str  # "none" | "cpu" | "cpu+membw"
    factor: float  # of the changed benchmarks (1.0 for a null invocation)
    factors: dict[str, float]  # benchmark -> factor, for every benchmark that did more work
    started_at: float = 0.0
    duration_s: float = 0.0
    busy_cpus: float = 0.0  # whole machine, this tool included
    load1_before: float = 0.0


def corpus_names() -> list[str]:
    sys.path.insert(0, str(SUITE))
    from bench_noise import CORPUS

    return sorted(CORPUS)


def schedule(scale: float, seed: int) -> list[Entry]:
    names = corpus_names()
    entries: list[Entry] = []
    for (tool, condition), (nulls, per_factor) in PLAN.items():
        runs = [1.0] * max(2, round(nulls * scale)) + [f for f in FACTORS for _ in range(max(1, round(per_factor * scale)))]
        for position, factor in enumerate(runs):
            changed = {} if factor == 1.0 else {n: factor for i, n in enumerate(names) if i % 3 == position % 3}
            load = "none" if condition == "quiet" else ("cpu" if position % 2 else "cpu+membw")
            entries.append(Entry("", tool, condition, load, factor, changed))
    random.Random(seed).shuffle(entries)
    suffix = {"benchtrack": ".json.gz", "pytest-benchmark": ".json.gz", "pyperf": ".json.gz"}
    return [replace(e, file=f"{i:03d}-{e.tool}-{e.condition}-{e.factor:.2f}{suffix[e.tool]}") for i, e in enumerate(entries)]


BURNER = "while True: pass"
BANDWIDTH = "b = bytearray(64 << 20)\nwhile True: bytes(b)"


@contextlib.contextmanager
def machine_load(kind: str) -> Iterator[None]:
    """This script's own load: started before the invocation, killed after it."""
    programs = {"none": [], "cpu": [BURNER], "cpu+membw": [BURNER, BANDWIDTH]}[kind]
    hogs = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.DEVNULL) for code in programs]
    try:
        time.sleep(0.5 if hogs else 0.0)
        yield
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


def busy_seconds() -> float:
    with open("/proc/stat", encoding="ascii") as handle:
        fields = [float(v) for v in handle.readline().split()[1:]]
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7]) / os.sysconf("SC_CLK_TCK")


def measure(entry: Entry, raw: Path) -> None:
    env = {**os.environ, "BENCHTRACK_NOISE_FACTORS": json.dumps(entry.factors), "MLFLOW_DISABLE_TELEMETRY": "true"}
    commands = {
        "benchtrack": [sys.executable, "-m", "benchtrack", "run", str(SUITE), "--level", "corpus", "--no-track",
                       "--output", str(raw), "--format", "json"],
        "pytest-benchmark": [sys.executable, "-m", "pytest", str(SUITE / "noise_pytest.py"), "-q", "-p", "no:cacheprovider",
                             f"--rootdir={SUITE}", f"--benchmark-json={raw}"],
        "pyperf": [sys.executable, str(SUITE / "noise_pyperf.py"), "--processes", "4", "--min-time", "0.05",
                   # pyperf's workers start with a clean environment: without this they run factor 1.00
                   "--inherit-environ", "BENCHTRACK_NOISE_FACTORS", "--quiet", "-o", str(raw)],
    }
    result = subprocess.run(commands[entry.tool], env=env, cwd=SUITE, capture_output=True, text=True, check=False)
    if not raw.exists():
        raise RuntimeError(f"{entry.tool} wrote nothing (exit {result.returncode}): {result.stderr[-2000:]}")


def compact(entry: Entry, raw: Path) -> dict[str, object]:
    from benchtrack.importers import load_any
    from benchtrack.results import run_result_to_dict

    runs = load_any(raw)
    document = run_result_to_dict(runs[0])
    for bench in document["benchmarks"]:  # type: ignore[union-attr]
        if entry.tool == "pytest-benchmark":
            _order_statistics(bench)
        for sample in bench["samples"]:
            sample["values"] = {k: v for k, v in sample["values"].items() if k in KEPT_METRICS}
        bench["details"] = {k: v for k, v in bench["details"].items() if k in ("load", "rounds", "mean_s")}
    return document


def _order_statistics(bench: dict[str, object]) -> None:
    """pytest-benchmark keeps every round (hundreds of thousands for tiny calls): keep 200 evenly
    spaced order statistics, which hold the distribution, plus the exact count and mean."""
    import numpy as np

    values = np.sort([s["values"]["wall_s"] for s in bench["samples"]])  # type: ignore[index, union-attr]
    loops = bench["samples"][0]["loops"]  # type: ignore[index]
    bench["details"] = {"rounds": len(values), "mean_s": float(values.mean())}
    if len(values) > PYTEST_QUANTILES:
        values = np.quantile(values, np.linspace(0.0, 1.0, PYTEST_QUANTILES), method="inverted_cdf")
    bench["samples"] = [{"process": 0, "index": i, "loops": loops, "values": {"wall_s": float(v)}} for i, v in enumerate(values)]


def main() -> int:
    # A SIGTERM ends the script through its finally blocks, so no load process outlives it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the planned invocations")
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--tool", action="append", help="only this tool (repeatable)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    index_path = args.out / "index.json"
    done = {e["file"]: e for e in json.loads(index_path.read_text())["entries"]} if index_path.exists() else {}
    entries = [e for e in schedule(args.scale, args.seed) if not args.tool or e.tool in args.tool]
    for count, entry in enumerate(entries, 1):
        if entry.file in done:
            continue
        with tempfile.TemporaryDirectory() as tmp, machine_load(entry.load):
            raw = Path(tmp, "raw.json")
            load1, busy0, started = os.getloadavg()[0], busy_seconds(), time.time()
            measure(entry, raw)
            duration = time.time() - started
            measured = replace(entry, started_at=started, duration_s=duration, load1_before=load1,
                               busy_cpus=(busy_seconds() - busy0) / duration)
            document = compact(measured, raw)
        (args.out / entry.file).write_bytes(gzip.compress(json.dumps(document, separators=(",", ":")).encode(), mtime=0))
        done[entry.file] = asdict(measured)
        index_path.write_text(json.dumps({"schema": INDEX_SCHEMA, "entries": sorted(done.values(), key=lambda e: e["file"])},
                                         indent=1))
        print(f"[{count}/{len(entries)}] {entry.file}: {duration:.0f} s, {measured.busy_cpus:.2f} CPUs busy", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
