"""A child process with a known memory shape, for tests of `benchtrack watch` (stdlib only).

    python leaky_child.py leak MB_PER_MIN      grows at this rate (MiB per minute) from its start
    python leaky_child.py plateau [MB] [FILL_S]     fills MB (40) over FILL_S seconds (10), then holds
    python leaky_child.py sawtooth [MB] [PERIOD_S]  ramps up MB (40) over PERIOD_S (3 s), frees it all, again
    python leaky_child.py steady [MB]          holds MB (20) and churns small objects without growth
    python leaky_child.py hog MB [DELAY_S]     waits DELAY_S (1), then grabs MB quickly (to hit a limit)
    python leaky_child.py tree PIDFILE [stubborn]   spawns a grandchild ("steady 5", or "stubborn"),
                                               writes both pids to PIDFILE, then waits forever
    python leaky_child.py stubborn             ignores SIGTERM and sleeps

Memory comes from anonymous mmaps whose every page is written, so RSS really moves, and is given
back with munmap (malloc's heap would keep freed memory and hide a sawtooth). Allocation follows
the wall clock: at time t since start the child holds what its shape says for t, even when the
machine is slow. It runs until killed. "MB" is MiB, as in benchtrack's leak analysis.
"""

from __future__ import annotations

import mmap
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

MIB = 1024 * 1024
PAGE = mmap.PAGESIZE
TICK_S = 0.05


class Pool:
    """Touched anonymous mappings, added and freed in chunks."""

    def __init__(self) -> None:
        self.chunks: list[mmap.mmap] = []
        self.bytes = 0

    def grow_to(self, target_bytes: float) -> None:
        missing = int(target_bytes) - self.bytes
        if missing < PAGE:
            return
        size = missing - missing % PAGE
        chunk = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        chunk[::PAGE] = b"\x01" * (size // PAGE)  # one write per page: the pages become resident
        self.chunks.append(chunk)
        self.bytes += size

    def free(self) -> None:
        for chunk in self.chunks:
            chunk.close()
        self.chunks.clear()
        self.bytes = 0


def run_shape(shape: str, args: list[str]) -> None:
    pool = Pool()
    start = time.monotonic()
    churn: list[object] = []
    while True:
        t = time.monotonic() - start
        if shape == "leak":
            pool.grow_to(float(args[0]) * MIB * t / 60.0)
        elif shape == "plateau":
            mb, fill_s = _floats(args, 40.0, 10.0)
            pool.grow_to(mb * MIB * min(1.0, t / fill_s))
        elif shape == "sawtooth":
            mb, period_s = _floats(args, 40.0, 3.0)
            phase = (t % period_s) / period_s
            if pool.bytes and phase * mb * MIB < pool.bytes - PAGE:  # a new period began: drop everything
                pool.free()
            pool.grow_to(phase * mb * MIB)
        elif shape == "steady":
            (mb,) = _floats(args, 20.0)
            pool.grow_to(mb * MIB)
            churn = [object() for _ in range(2000)]  # allocate and drop small objects each tick
        elif shape == "hog":
            mb, delay_s = _floats(args, 256.0, 1.0)
            if t >= delay_s:
                pool.grow_to(min(mb, (t - delay_s) * 200.0) * MIB)  # 200 MiB/s
        else:
            raise SystemExit(f"unknown shape {shape!r}")
        del churn[:]
        time.sleep(TICK_S)


def _floats(args: list[str], *defaults: float) -> list[float]:
    return [float(args[i]) if i < len(args) else default for i, default in enumerate(defaults)]


def tree(pidfile: Path, grandchild_shape: list[str]) -> None:
    grandchild = subprocess.Popen([sys.executable, __file__, *(grandchild_shape or ["steady", "5"])])
    time.sleep(0.3)  # let it start (and install its handler)
    pidfile.write_text(f"{os.getpid()} {grandchild.pid}\n", encoding="ascii")
    while True:
        time.sleep(1)


def stubborn() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        time.sleep(1)


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    shape, args = argv[0], argv[1:]
    if shape == "tree":
        tree(Path(args[0]), args[1:])
    elif shape == "stubborn":
        stubborn()
    else:
        run_shape(shape, args)


if __name__ == "__main__":
    main(sys.argv[1:])
