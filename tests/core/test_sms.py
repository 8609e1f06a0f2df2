"""SMS segment accounting per COMPLIANCE.md: GSM-7 160/153, UCS-2 70/67, extension chars count 2."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.sms import GSM7_BASIC, GSM7_EXTENSION, SMS_MAX_BODY, SegmentInfo, non_gsm_characters, segment_info


def test_empty_text_is_one_segment() -> None:
    assert segment_info("") == SegmentInfo("GSM-7", 1, 0, 0)


@pytest.mark.parametrize(
    ("length", "segments"), [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4), (1600, 11)]
)
def test_gsm7_160_single_153_per_part(length: int, segments: int) -> None:
    assert segment_info("a" * length) == SegmentInfo("GSM-7", segments, length, length)


def test_extension_characters_count_double() -> None:
    assert segment_info("€") == SegmentInfo("GSM-7", 1, 2, 1)
    assert segment_info("€" * 80) == SegmentInfo("GSM-7", 1, 160, 80)
    assert segment_info("a" * 159 + "€") == SegmentInfo("GSM-7", 2, 161, 160)
    for ch in "^{}\\[]~|€\f":
        assert segment_info(ch).units == 2, repr(ch)


def test_extension_escape_is_not_split_across_parts() -> None:
    # 152 + 2 would straddle the 153 boundary: the € moves to part 2, so 306 units need 3 parts.
    text = "a" * 152 + "€" + "a" * 152
    assert segment_info(text) == SegmentInfo("GSM-7", 3, 306, 305)
    assert segment_info("a" * 153 + "€" + "a" * 151).segments == 2


def test_one_emoji_makes_the_whole_message_ucs2() -> None:
    assert segment_info("a" * 68 + "😀") == SegmentInfo("UCS-2", 1, 70, 69)  # emoji = 2 UTF-16 units
    assert segment_info("a" * 69 + "😀") == SegmentInfo("UCS-2", 2, 71, 70)
    assert segment_info("Halo 😀").encoding == "UCS-2"


@pytest.mark.parametrize(("length", "segments"), [(70, 1), (71, 2), (134, 2), (135, 3), (201, 3), (202, 4)])
def test_ucs2_70_single_67_per_part(length: int, segments: int) -> None:
    assert segment_info("á" * length) == SegmentInfo("UCS-2", segments, length, length)


def test_surrogate_pair_is_not_split_across_parts() -> None:
    text = "a" * 66 + "😀" + "a" * 66  # 134 units, but the emoji cannot straddle unit 67
    assert segment_info(text) == SegmentInfo("UCS-2", 3, 134, 133)


def test_gsm_accented_letters_stay_gsm_others_do_not() -> None:
    assert segment_info("café à Ñoño ÄÖÜ ß").encoding == "GSM-7"
    assert segment_info("ça").encoding == "UCS-2"  # only capital Ç is in GSM 03.38
    assert segment_info("Pesan: hubungi kami\r\n").encoding == "GSM-7"


def test_non_gsm_characters_lists_the_culprits_once_in_order() -> None:
    assert non_gsm_characters("Halo 😀 café á😀 ő") == ["😀", "á", "ő"]
    assert non_gsm_characters("plain {text} €5") == []


def test_body_limit() -> None:
    assert SMS_MAX_BODY == 1600
    assert len("x" * 1601) > SMS_MAX_BODY


def test_character_sets_are_the_documented_ones() -> None:
    assert len(GSM7_BASIC) == 127  # 128 code points less the ESC that introduces the extension table
    assert frozenset("^{}\\[]~|€\f") == GSM7_EXTENSION
    assert not GSM7_BASIC & GSM7_EXTENSION


@given(st.text(alphabet=sorted(GSM7_BASIC | GSM7_EXTENSION), max_size=700))
def test_gsm_segments_bounds(text: str) -> None:
    info = segment_info(text)
    assert info.encoding == "GSM-7"
    assert info.units == len(text) + sum(ch in GSM7_EXTENSION for ch in text)
    if info.units <= 160:
        assert info.segments == 1
    else:
        # Never fewer than the raw division; at most one extra part per moved escape pair.
        assert math.ceil(info.units / 153) <= info.segments <= math.ceil(info.units / 152)


@given(st.text(min_size=1, max_size=300).filter(lambda t: any(ch not in GSM7_BASIC | GSM7_EXTENSION for ch in t)))
def test_ucs2_segments_bounds(text: str) -> None:
    info = segment_info(text)
    assert info.encoding == "UCS-2"
    assert info.units == len(text.encode("utf-16-le")) // 2
    assert info.chars == len(text)
    if info.units <= 70:
        assert info.segments == 1
    else:
        assert math.ceil(info.units / 67) <= info.segments <= math.ceil(info.units / 66)
