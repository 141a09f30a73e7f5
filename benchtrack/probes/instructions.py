"""Instructions executed per operation, counted by valgrind: a metric that does not drift with
the machine's load (the same total twice on this machine, one core loaded or not).

How only the benchmark's operations are counted: the worker marks the start and end of every
sample by calling ``os.getpgrp()`` (libc's getpgrp, which CPython never calls on its own), and
callgrind runs with ``--dump-before=getpgrp``, so it writes its counters to a new file, and
zeroes them, at every mark. The parts between marks hold one sample's operations each, with
nothing of the interpreter's start-up, imports or set-up; one empty part (two marks in a row)
measures what a mark itself costs, which is taken off. Hash randomisation is fixed
(PYTHONHASHSEED=0) so dict and set layouts repeat between runs.

What it does not see: time spent waiting (I/O, locks, sleeping), cache misses and memory
bandwidth, and parallelism. A change in instructions and a change in wall time are reported
side by side, never one for the other.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchtrack.errors import UsageError

BLIND_SPOTS = ("instructions per operation are deterministic but blind to I/O waits, cache misses and "
               "parallelism: read them beside wall time, never for it")
MARKER_FUNCTION = "getpgrp"
HASH_SEED = "0"
# An instruction-count part should take this long natively: under callgrind (30-60x slower)
# that is well under a second, and a part of fewer operations would let one-off costs (a dict
# resize, a cyclic collection) weigh more than they do in the timed loop.
TARGET_PART_S = 0.005
MAX_LOOPS = 1_000_000
_TOTALS = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


class InstructionCountError(Exception):
    """Instruction counts could not be taken (no valgrind, or its output is not what was expected)."""


def mark() -> None:
    """A part boundary for callgrind (--dump-before=getpgrp)."""
    os.getpgrp()


INSTALL_HINT = "Debian: apt-get install valgrind"


def find_valgrind() -> str | None:
    return shutil.which("valgrind")


def require_valgrind() -> None:
    """--instructions was asked for: without valgrind that is a usage error, before measuring."""
    if find_valgrind() is None:
        raise UsageError(f"--instructions counts under valgrind, which is not installed ({INSTALL_HINT})")


@dataclass(frozen=True)
class CountingPlan:
    """Where callgrind writes its parts and how the worker is started under it."""

    valgrind: str
    out_prefix: Path

    @property
    def log_path(self) -> Path:
        return Path(f"{self.out_prefix}.log")

    def command(self, worker_command: Sequence[str]) -> list[str]:
        # the interpreter itself, not a shim script, must be the program valgrind starts
        return [self.valgrind, "--tool=callgrind", f"--dump-before={MARKER_FUNCTION}", "--dump-instr=no",
                "--dump-line=no", f"--callgrind-out-file={self.out_prefix}", f"--log-file={self.log_path}",
                *worker_command]

    @staticmethod
    def environment(base: dict[str, str]) -> dict[str, str]:
        return {**base, "PYTHONHASHSEED": HASH_SEED}


def loops_for(seconds_per_operation: float | None) -> int:
    """Operations per counted part, from the timed loop's measured seconds per operation."""
    if seconds_per_operation is None or not seconds_per_operation > 0:
        return 1
    return max(1, min(MAX_LOOPS, round(TARGET_PART_S / seconds_per_operation)))


def part_totals(out_prefix: Path) -> list[int]:
    """The instruction totals of callgrind's parts in the order they were written: one file per
    mark (``prefix.1``, ``prefix.2``, ...), the part before the first mark first."""
    numbered = []
    for path in out_prefix.parent.glob(f"{out_prefix.name}.*"):
        suffix = path.name[len(out_prefix.name) + 1:]
        if suffix.isdigit():
            numbered.append((int(suffix), path))
    totals = []
    for _, path in sorted(numbered):
        found = _TOTALS.search(path.read_text(encoding="utf-8", errors="replace"))
        if found is None:
            raise InstructionCountError(f"callgrind wrote {path.name} without a total")
        totals.append(int(found.group(1)))
    return totals


def per_operation(totals: Sequence[int], samples: int, loops: int) -> list[float]:
    """Instructions per operation of each sample, from the parts: [start-up, empty part,
    sample 1, ..., sample n] (then what ran after the last mark, never written as a part).
    The empty part is what two marks cost with nothing between them."""
    if len(totals) != samples + 2:
        raise InstructionCountError(
            f"expected {samples + 2} counted parts, got {len(totals)} (does the benchmark call os.getpgrp()?)")
    overhead = totals[1]
    return [max(0, total - overhead) / loops for total in totals[2:]]
