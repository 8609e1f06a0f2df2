"""SMS length accounting: encoding, segments and what forced UCS-2.

Carriers bill and rate-limit per segment, so lint and preview must count them the way the network does:

* GSM-7 when every character is in the GSM 03.38 basic set or its extension table. Basic characters cost
  1 unit, extension characters (``^{}\\[]~|€`` and form feed) cost 2 (an escape plus the character).
  One segment holds 160 units; a split message holds 153 per part (the rest is the concatenation header).
* Otherwise UCS-2 for the whole message: units are UTF-16 code units (an emoji outside the BMP is 2),
  70 in one segment, 67 per part.

A character is never split across parts: an extension escape pair (GSM-7) or a surrogate pair (UCS-2)
that would straddle a part boundary moves whole to the next part, as handsets and Twilio do. So a split
message can need one more segment than ``ceil(units / 153)``.

An empty text still costs one segment.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["SMS_MAX_BODY", "SegmentInfo", "non_gsm_characters", "segment_info"]

#: Longest body (characters) we accept; Twilio refuses longer ones.
SMS_MAX_BODY = 1600

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[]~|€")

_LIMITS = {"GSM-7": (160, 153), "UCS-2": (70, 67)}


@dataclass(frozen=True)
class SegmentInfo:
    """How a body is sent: encoding, segments billed, units used (septets or UTF-16 units), characters."""

    encoding: Literal["GSM-7", "UCS-2"]
    segments: int
    units: int
    chars: int


def _is_gsm(ch: str) -> bool:
    return ch in GSM7_BASIC or ch in GSM7_EXTENSION


def non_gsm_characters(text: str) -> list[str]:
    """Characters that force UCS-2, each once, in order of first appearance (for lint messages)."""
    return list(dict.fromkeys(ch for ch in text if not _is_gsm(ch)))


def _unit_costs(text: str, encoding: str) -> list[int]:
    if encoding == "GSM-7":
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [2 if ord(ch) > 0xFFFF else 1 for ch in text]


def segment_info(text: str) -> SegmentInfo:
    """Encoding and segment count of an SMS body (see the module docstring for the rules)."""
    encoding: Literal["GSM-7", "UCS-2"] = "GSM-7" if all(_is_gsm(ch) for ch in text) else "UCS-2"
    costs = _unit_costs(text, encoding)
    units = sum(costs)
    single, per_part = _LIMITS[encoding]
    if units <= single:
        return SegmentInfo(encoding, 1, units, len(text))
    segments, used = 1, 0
    for cost in costs:  # greedy packing; a 2-unit character never straddles a boundary
        if used + cost > per_part:
            segments, used = segments + 1, 0
        used += cost
    return SegmentInfo(encoding, segments, units, len(text))
