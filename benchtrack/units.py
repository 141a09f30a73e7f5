"""Numbers for people: seconds and bytes in the unit that reads best (CLI tables and reports)."""

from __future__ import annotations


def format_seconds(value: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6)):
        if abs(value) >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def format_bytes(value: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{value:.0f} B"


def format_metric(metric: str, value: float) -> str:
    """A metric's value by its name: *_s in seconds, *_bytes in bytes, counts as they are."""
    if metric.endswith("_bytes"):
        return format_bytes(value)
    if metric.endswith("_s"):
        return format_seconds(value)
    if metric == "instructions":
        return f"{value:,.0f}"
    return f"{value:.4g}"
