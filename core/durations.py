"""Durations as marketers write them: `30s`, `15m`, `2h`, `3d`, `1w`."""

from __future__ import annotations

import re
from datetime import timedelta

DURATION_PATTERN = r"^[1-9][0-9]{0,5}[smhdw]$"
_PATTERN = re.compile(DURATION_PATTERN)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
DURATION_HELP = "write a whole number and one unit: 30s, 15m, 2h, 3d or 1w"
_WORDS = re.compile(
    r"^\s*([0-9]+(?:[.,][0-9]+)?)\s*(s|secs?|seconds?|m|mins?|minutes?|h|hrs?|hours?|d|days?|w|wks?|weeks?)\s*$",
    re.IGNORECASE,
)


def parse_duration(text: str) -> timedelta:
    """Parse a duration; ValueError says what is wrong and, where it can tell, what to write instead."""
    match = _PATTERN.match(text) if isinstance(text, str) else None
    if not match:
        raise ValueError(f"bad duration {text!r}: {DURATION_HELP}{_suggestion(text)}")
    return timedelta(seconds=int(text[:-1]) * _UNIT_SECONDS[text[-1]])


def _suggestion(text: object) -> str:
    """`2 days` -> `2d`; `1.5h` -> `90m`; nothing when the intent is unclear."""
    match = _WORDS.match(text) if isinstance(text, str) else None
    if not match:
        return ""
    amount = float(match.group(1).replace(",", "."))
    seconds = amount * _UNIT_SECONDS[match.group(2)[0].lower()]
    for unit in ("w", "d", "h", "m", "s"):
        count = seconds / _UNIT_SECONDS[unit]
        if count >= 1 and count == int(count) and count < 1_000_000:
            return f" (did you mean {int(count)}{unit}?)"
    return ""


def is_duration(text: str) -> bool:
    return isinstance(text, str) and bool(_PATTERN.match(text))
