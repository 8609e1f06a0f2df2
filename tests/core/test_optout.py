"""Inbound keywords: every keyword in case and punctuation variants, free-text opt-outs, and what is not one."""

from __future__ import annotations

import pytest

from core.optout import HELP_WORDS, START_WORDS, STOP_WORDS, Intent, classify, reply_text


def variants(word: str) -> list[str]:
    full_width = "".join(chr(ord(c) - 0x21 + 0xFF01) for c in word.upper())
    return [
        word,
        word.upper(),
        word.title(),
        f"  {word}  ",
        f"{word.upper()}!",
        f"{word}.",
        f'"{word.title()}"',
        f"'{word}'",
        f"\t{word.upper()}\n",
        f"...{word}?!",
        f"{word} 🙏",
        full_width,
    ]


@pytest.mark.parametrize("word", sorted(STOP_WORDS))
def test_every_stop_keyword_in_every_variant(word: str) -> None:
    for text in variants(word):
        intent = classify(text)
        assert (intent.kind, intent.keyword) == ("stop", word), text


@pytest.mark.parametrize("word", sorted(START_WORDS - {"yes"}))
def test_start_keywords(word: str) -> None:
    for text in variants(word):
        assert classify(text) == Intent("start", word), text
        assert classify(text, opted_out=True) == Intent("start", word), text


def test_yes_restarts_only_someone_opted_out() -> None:
    for text in variants("yes"):
        assert classify(text, opted_out=True) == Intent("start", "yes"), text
        assert classify(text).kind == "other", text  # "Yes!" to "Will you come?" is a reply


@pytest.mark.parametrize("word", sorted(HELP_WORDS))
def test_help_keywords(word: str) -> None:
    for text in variants(word):
        assert classify(text) == Intent("help", word), text


@pytest.mark.parametrize(
    "text",
    [
        "please stop texting me",
        "Please STOP texting me!!",
        "stop messaging me",
        "Stop sending me these",
        "Can you stop calling me",
        "don't text me again",
        "Do not contact me",
        "I don't want any more texts",
        "no more messages please",
        "unsubscribe me",
        "Please unsubscribe me from this",
        "opt me out",
        "I want to opt out",
        "remove me from your list",
        "take me off your list",
        "leave me alone",
        "delete my number",
        "Wrong number",
        "stop please",
        "STOP ALL",
        "Please stop.",
        "jangan hubungi saya lagi",
        "Jangan hubungi saya lagi!",
        "tolong jangan kirim sms lagi",
        "jangan ganggu saya",
        "stop kirim pesan",
        "tolong berhenti",
        "berhenti kirim promo",
        "saya tidak mau dihubungi lagi",
        "gak mau terima pesan ini",
        "hapus nomor saya",
        "keluarkan saya dari daftar",
        "salah nomor",
        "ＳＴＯＰ texting me",
        "stop texting me\u2019",
    ],
)
def test_free_text_opt_outs_english_and_indonesian(text: str) -> None:
    intent = classify(text)
    assert intent.kind == "stop" and intent.free_text, text
    assert not intent.standard_keyword


@pytest.mark.parametrize(
    "text",
    [
        "Yes, I'll come to the webinar",
        "Can we reschedule to Friday?",
        "Please stop by our booth",
        "Don't stop sending me deals!",
        "cancel my order",
        "When does the promo end?",
        "kapan promo berhenti?",
        "jangan berhenti kirim promo",
        "Thanks! See you at the end of the week",
        "info about pricing please",
        "help me choose a plan",
        "stopwatch",
        "",
        "   ",
    ],
)
def test_ordinary_replies_are_not_opt_outs(text: str) -> None:
    assert classify(text).kind == "other", text


def test_confirmations_say_who_how_often_rates_and_how_to_stop() -> None:
    help_text = reply_text(Intent("help", "help"), sender_name="Acme")
    assert "Acme" in help_text and "frequency" in help_text.lower() and "rates may apply" in help_text
    assert "STOP" in help_text
    assert "START" in reply_text(Intent("stop", "stop"), sender_name="Acme")
    assert "Balas START" in reply_text(Intent("stop", "berhenti"), sender_name="Acme")
    assert "Balas" in reply_text(Intent("stop", None, True), sender_name="Acme", locale="id")
    assert reply_text(Intent("help", "info"), sender_name="Acme", help_text="Custom help") == "Custom help"
    with pytest.raises(ValueError):
        reply_text(Intent("other"), sender_name="Acme")
