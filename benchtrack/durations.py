"""Durations as users type them: seconds (`30`, `2.5`) or with a unit (`30s`, `5m`, `1h`)."""

from __future__ import annotations

import math
import re

from benchtrack.errors import UsageError

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def parse_duration(text: str) -> float:
    match = _PATTERN.match(text)
    if not match:
        raise UsageError(f"invalid duration {text!r}: use seconds (30) or 30s, 5m, 1h")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds) or seconds <= 0:
        raise UsageError(f"duration must be positive, got {text!r}")
    return seconds
