"""Durations as marketers write them: `30s`, `15m`, `2h`, `3d`, `1w`."""

from __future__ import annotations

import re
from datetime import timedelta

_PATTERN = re.compile(r"^([1-9][0-9]{0,5})([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_HELP = "write a whole number and one unit: 30s, 15m, 2h, 3d or 1w"


def parse_duration(text: str) -> timedelta:
    """Parse a duration; ValueError says what is wrong and the accepted form."""
    match = _PATTERN.match(text.strip()) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"bad duration {text!r}: {DURATION_HELP}")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def is_duration(text: str) -> bool:
    return isinstance(text, str) and bool(_PATTERN.match(text.strip()))
