"""A seeded synthetic corpus with the noise structure real runs on this machine show (see
noise_corpus/ and real_corpus.py's noise_profile), for exploring and for noise levels the
machine did not have.

What real runs showed, and what the model therefore has (log scale of time):
- worker processes land in *speed modes*: about half in the fast mode, the others 5-40% slower
  (the spread between processes of one invocation is ~20%, the gap between the two fastest ~2%);
- the fast mode itself moves between invocations by a few percent per benchmark (sigma_run,
  twice as much for a quarter of the benchmarks: the GC-heavy and system-call ones are noisier),
  and now and then (1%) one benchmark jumps 8-20% for a whole invocation on its own,
  plus an *invocation effect* every benchmark of the invocation shares (sigma_inv, heavy-tailed);
- within a process, small symmetric noise plus one-sided interference (only ever adds time);
- *contention* in a quarter of the invocations: samples descheduled (wall = CPU x 1.5-3, with
  involuntary context switches) and CPU time itself a little slower, benchmark by benchmark.

Each invocation is a suite of SUITE_SIZE benchmarks; a changed invocation makes a third of them
do 5, 10 or 20% more work, as in the real corpus. Verdicts are scored exactly as there.
"""

from __future__ import annotations

import numpy as np
from real_corpus import Invocation

from benchtrack.results import BenchmarkResult, RunResult, Sample

SUITE_SIZE = 16
PROCESSES = 5
SAMPLES = 6
# Noise levels: (invocation effect SD, benchmark run-effect SD).
NOISE_LEVELS = tuple((inv, run) for inv in (0.0, 0.05, 0.20) for run in (0.01, 0.02, 0.04))
CONTENDED_SHARE = 0.25
# A quiet benchmark now and then runs a whole invocation 8-20% slower on its own (real corpus:
# cpu.nbody +18% in one of ten quiet invocations, cpu.float_math +12% in another; about 1% of
# benchmark-invocations)
JUMP_SHARE = 0.01
NULL_INVOCATIONS = 11
CHANGED = (1.05, 1.05, 1.10, 1.10, 1.20, 1.20)


def _benchmark(rng: np.random.Generator, name: str, base: float, log_level: float, contended: bool,
               cpu_inflation: float) -> BenchmarkResult:
    samples = []
    for process in range(PROCESSES):
        mode = 0.0 if rng.random() < 0.5 else float(rng.uniform(0.05, 0.4))
        for index in range(SAMPLES):
            symmetric = rng.normal(0.0, 0.02)
            interference = rng.exponential(0.03) if rng.random() < 0.3 else 0.0
            cpu = base * np.exp(log_level + mode + symmetric + interference + cpu_inflation)
            wall, switches = cpu * (1.0 + rng.uniform(0.0, 0.01)), float(rng.random() < 0.05)
            if contended and rng.random() < 0.5:
                wall, switches = cpu * rng.uniform(1.5, 3.0), float(rng.integers(1, 6))
            samples.append(Sample(process, index, 64, {"wall_s": float(wall), "cpu_s": float(cpu),
                                                       "ctx_involuntary": switches}))
    return BenchmarkResult(name, name, "bench_synthetic.py", "time", samples=tuple(samples))


def generate_level(seed: int, sigma_inv: float, sigma_run: float) -> list[Invocation]:
    rng = np.random.default_rng(seed)
    names = [f"b{i:02d}" for i in range(SUITE_SIZE)]
    bases = {n: float(np.exp(rng.uniform(np.log(1e-6), np.log(1e-2)))) for n in names}
    run_sds = {n: sigma_run * (2.0 if i % 4 == 0 else 1.0) for i, n in enumerate(names)}  # a quarter noisier
    plan = [1.0] * NULL_INVOCATIONS + list(CHANGED)
    invocations = []
    for position, factor in enumerate(plan):
        contended = position % round(1 / CONTENDED_SHARE) == 1  # every fourth invocation, nulls and changed alike
        invocation_effect = rng.normal(0.0, sigma_inv) + (rng.exponential(sigma_inv) if rng.random() < 0.1 else 0.0)
        factors = {} if factor == 1.0 else {n: factor for i, n in enumerate(names) if i % 3 == position % 3}
        benches = []
        for name in names:
            jump = float(rng.uniform(0.08, 0.2)) if rng.random() < JUMP_SHARE else 0.0
            level = invocation_effect + rng.normal(0.0, run_sds[name]) + jump + np.log(factors.get(name, 1.0))
            inflation = abs(rng.normal(0.05, 0.05)) if contended else 0.0
            benches.append(_benchmark(rng, name, bases[name], level, contended, inflation))
        metadata = {"benchtrack.invocation": f"inv{position}", "benchtrack.cpu.count": "2"}
        run = RunResult("synthetic", "corpus", 0.0, 1.0, metadata, tuple(benches))
        invocations.append(Invocation(f"inv{position:02d}", "synthetic", "loaded" if contended else "quiet",
                                      "contended" if contended else "none", factors, run))
    return invocations


def generate(seed: int = 20261201) -> dict[tuple[float, float], list[Invocation]]:
    return {level: generate_level(seed + i, *level) for i, level in enumerate(NOISE_LEVELS)}
