"""The noise-corpus benchmarks as a pyperf script (pyperf's own worker processes).

Run by make_noise_corpus.py: python noise_pyperf.py --processes 5 -o FILE."""

from __future__ import annotations

from typing import Any

import pyperf
from bench_noise import CORPUS, units


def _runner_for(name: str) -> Any:
    unit, repeats = CORPUS[name](), range(units(name))

    def run() -> None:
        for _ in repeats:
            unit()

    return run


if __name__ == "__main__":
    runner = pyperf.Runner()
    for benchmark_name in sorted(CORPUS):
        runner.bench_func(benchmark_name, _runner_for(benchmark_name))
