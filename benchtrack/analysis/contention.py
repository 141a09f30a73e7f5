"""Was the worker running when its wall clock said it was? (pure)

The rule, per sample of a time benchmark: the sample was *descheduled* when the kernel
preempted the worker during it (ctx_involuntary >= 1) and its wall time exceeds its CPU time by
more than DESCHEDULED_GAP. Such a sample's wall time holds someone else's work, so it is left
out of the wall-time centre (while three or more clean samples remain in its process).

A side was measured *under contention* when at least CONTENDED_FRACTION of its samples were
descheduled, or when other programs used at least half of the machine's other CPUs (others_cpus
from the worker's load details; at least BUSY_OTHERS_CPUS). A busy neighbour slows even CPU time
(shared core, caches, memory bandwidth): on the real-run corpus one busy loop on the other vCPU
(a hyperthread sibling) moved tiny calls' CPU time by up to 40%, most benchmarks' by a few
percent. A wall-time change that CPU time does not show, with a contended side, is reported as
contention, never as a regression; time comparisons of a contended pair carry CONTENTION_SD of
extra noise per contended side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

DESCHEDULED_GAP = 0.05
CONTENDED_FRACTION = 0.2
BUSY_SHARE = 0.5  # of the other CPUs
BUSY_OTHERS_CPUS = 0.5
CONTENTION_SD = 0.15  # log scale, per contended side: sized on the real-run corpus


@dataclass(frozen=True)
class Contention:
    descheduled_fraction: float
    others_cpus: float | None  # median over worker processes of other programs' CPU use
    contended: bool
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"contended": self.contended, "descheduled_fraction": self.descheduled_fraction,
                "others_cpus": self.others_cpus, "reason": self.reason}


def descheduled(values: Mapping[str, float]) -> bool:
    wall, cpu, switches = values.get("wall_s"), values.get("cpu_s"), values.get("ctx_involuntary")
    if wall is None or cpu is None or switches is None:
        return False
    return switches >= 1 and wall > cpu * (1.0 + DESCHEDULED_GAP)


def side_contention(samples: Sequence[Mapping[str, float]], loads: Sequence[Mapping[str, float]], cpus: int) -> Contention:
    flags = [descheduled(values) for values in samples]
    fraction = float(np.mean(flags)) if flags else 0.0
    # others_cpus where benchtrack measured it; else the load average less the worker itself
    # (pyperf records that per run)
    others = [float(load["others_cpus"]) if "others_cpus" in load else max(0.0, float(load["load1"]) - 1.0)
              for load in loads if "others_cpus" in load or "load1" in load]
    busy = float(np.median(others)) if others else None
    reasons = []
    if flags and fraction >= CONTENDED_FRACTION:
        reasons.append(f"{fraction:.0%} of samples descheduled")
    if busy is not None and busy >= max(BUSY_OTHERS_CPUS, BUSY_SHARE * (cpus - 1)):
        reasons.append(f"other programs used {busy:.1f} of {cpus or '?'} CPUs")
    return Contention(fraction, busy, bool(reasons), "; ".join(reasons))
