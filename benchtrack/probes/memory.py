"""Memory probes for the measured process itself: RSS now, USS, and peak RSS over a sample."""

from __future__ import annotations

import os
import threading
from typing import Protocol

import psutil

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = "/proc/self/statm"


def current_rss() -> int:
    """Resident set size in bytes; /proc/self/statm costs ~60 us, psutil is the portable fallback."""
    try:
        with open(_STATM, "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_SIZE
    except OSError:
        return int(psutil.Process().memory_info().rss)


def current_uss() -> int:
    """Unique set size in bytes; ~0.5-7 ms, so taken only when asked and outside timing."""
    return int(psutil.Process().memory_full_info().uss)


class PeakRssProbe(Protocol):
    name: str

    def start(self) -> None: ...

    def stop(self) -> int: ...

    def close(self) -> None: ...


class KernelHighWaterMark:
    """Exact peak RSS with no sampling at all: Linux tracks VmHWM, and writing 5 to clear_refs
    resets it, so the peak of each sample costs two /proc accesses outside the timed region."""

    name = "kernel-hwm"

    def start(self) -> None:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
            clear_refs.write("5")

    def stop(self) -> int:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        raise OSError("VmHWM missing from /proc/self/status")

    def close(self) -> None:
        pass

    @classmethod
    def available(cls) -> bool:
        try:
            probe = cls()
            probe.start()
            probe.stop()
        except OSError:
            return False
        return True


class SamplerThread:
    """Fallback where the kernel mark cannot be reset: a daemon thread polling RSS. It competes
    for the GIL, so it is only used when nothing better exists and it records that it was used."""

    name = "sampler-thread"

    def __init__(self, interval: float = 0.02) -> None:
        self._interval = interval
        self._peak = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="benchtrack-rss", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(self._interval):
            rss = current_rss()
            with self._lock:
                self._peak = max(self._peak, rss)

    def start(self) -> None:
        with self._lock:
            self._peak = current_rss()

    def stop(self) -> int:
        rss = current_rss()
        with self._lock:
            return max(self._peak, rss)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)


class NoPeak:
    """Peak measurement switched off (used to measure the probe's own overhead)."""

    name = "off"

    def start(self) -> None:
        pass

    def stop(self) -> int:
        return current_rss()

    def close(self) -> None:
        pass


def make_peak_probe(name: str = "auto") -> PeakRssProbe:
    if name == "off":
        return NoPeak()
    if name in ("auto", "kernel-hwm") and KernelHighWaterMark.available():
        return KernelHighWaterMark()
    if name == "kernel-hwm":
        raise OSError("the kernel peak-RSS mark cannot be reset on this system")
    return SamplerThread()

