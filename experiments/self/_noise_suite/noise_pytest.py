"""The noise-corpus benchmarks as pytest-benchmark tests, with pytest-benchmark's defaults.

Run by make_noise_corpus.py: python -m pytest noise_pytest.py --benchmark-json=FILE
(not named test_*.py, so no test run collects it by accident)."""

from __future__ import annotations

from typing import Any

import pytest
from bench_noise import CORPUS, units


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_noise(benchmark: Any, name: str) -> None:
    unit, repeats = CORPUS[name](), range(units(name))

    def run() -> None:
        for _ in repeats:
            unit()

    benchmark.name = name
    benchmark(run)
