"""Addresses parsed at the edge: the COMPLIANCE.md bad-input list gets a clear error or a normal form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.addresses import (
    AddressError,
    is_valid_country,
    normalize_country,
    normalize_email,
    normalize_phone,
    whatsapp_address,
)

ID_MOBILE = "+6281234567890"


# --- phones ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "country", "expected"),
    [
        ("+62 812-3456-7890", None, ID_MOBILE),
        ("+62 (812) 3456.7890", "US", ID_MOBILE),  # international input ignores the contact's country
        ("0812 3456 7890", "ID", ID_MOBILE),  # national 0-prefix with the contact's country
        ("0812-3456-7890", "id", ID_MOBILE),
        ("6281234567890", "ID", ID_MOBILE),  # country code without '+', country known
        ("0062 812 3456 7890", None, ID_MOBILE),  # 00 international prefix
        ("＋６２ ８１２ ３４５６ ７８９０", None, ID_MOBILE),  # full-width
        ("０８１２３４５６７８９０", "ID", ID_MOBILE),
        ("whatsapp:+6281234567890", None, ID_MOBILE),
        ("WhatsApp: +62 812 3456 7890", None, ID_MOBILE),
        (" +1 (202) 555-0143 ", None, "+12025550143"),
        ("(202) 555-0143", "US", "+12025550143"),
        ("011 62 812 3456 7890", "US", ID_MOBILE),  # US international dialling prefix
        ("+44 7400 123456", None, "+447400123456"),
        ("+62\u2011812\u20133456\u20147890", None, ID_MOBILE),  # typographic dashes
    ],
)
def test_normalize_phone_accepts(raw: str, country: str | None, expected: str) -> None:
    assert normalize_phone(raw, country) == expected


@pytest.mark.parametrize(
    ("raw", "country", "fragments"),
    [
        ("0812 3456 789", None, ["is a national number", "give the contact's country", "+62"]),
        ("6281234567890", None, ["has no '+'", "+6281234567890", "contact's country"]),
        ("+44 20 1234 56789", None, ["too long for GB"]),
        ("+62 21 1234", None, ["not a number in use in ID", "check the digits"]),
        ("+6281234567890123", None, ["16 digits", "at most 15"]),
        ("0812 3456 7890 1234", "ID", ["16 digits", "at most 15"]),
        ("+1 800 FLOWERS", None, ["contains letters", "digits only"]),
        ("whatsapp+6281234567890", None, ["letters", "whatsapp:+<number>"]),
        ("wa:+6281234567890", None, ["whatsapp:+<number>"]),
        ("+0812 3456 7890", None, ["never starts with 0", "+<country code>81234567890"]),
        ("+62812", None, ["too short for ID"]),
        ("+999 1234567", None, ["no known country code"]),
        ("+1 555 555 5555", None, ["not a number in use in US"]),
        ("", None, ["has no digits"]),
        ("---", None, ["has no digits"]),
        ("+62 812 # 3456", None, ["contains '#'"]),
        ("+62 812\n3456 7890", None, ["contains '\\n'"]),
        ("++62 812 3456 7890", None, ["'+' that is not at the start"]),
        ("0812 3456 7890", "XX", ["country 'XX' is not an ISO 3166-1 alpha-2 code"]),
        ("0812 3456 7890", "AQ", ["no phone numbering plan"]),
    ],
)
def test_normalize_phone_refuses_with_a_clear_message(raw: str, country: str | None, fragments: list[str]) -> None:
    with pytest.raises(AddressError) as err:
        normalize_phone(raw, country)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_address_error_is_a_value_error_and_non_text_is_refused() -> None:
    assert issubclass(AddressError, ValueError)
    with pytest.raises(AddressError, match="must be text"):
        normalize_phone(6281234567890, "ID")  # type: ignore[arg-type]


def test_whatsapp_address() -> None:
    assert whatsapp_address(ID_MOBILE) == "whatsapp:+6281234567890"
    assert whatsapp_address("whatsapp:+6281234567890") == "whatsapp:+6281234567890"  # idempotent
    with pytest.raises(AddressError):
        whatsapp_address("0812 3456 7890")


@given(st.text(max_size=40), st.sampled_from([None, "ID", "US", "GB", "XX", ""]))
def test_normalize_phone_returns_e164_or_raises_address_error(raw: str, country: str | None) -> None:
    try:
        result = normalize_phone(raw, country)
    except AddressError:
        return
    assert result.startswith("+") and result[1:].isdigit() and result[1] != "0"
    assert len(result) <= 16
    assert normalize_phone(result, None) == result


# --- emails ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ana@example.com", "ana@example.com"),
        ("  Ana.Lim@Example.COM ", "Ana.Lim@example.com"),  # domain lower-cased, local part kept
        ("user@bücher.de", "user@bücher.de"),  # IDN domain accepted
        ("user@XN--BCHER-KVA.de", "user@bücher.de"),  # punycode input normalises to the same form
        ("budi+promo@sub.example.co.id", "budi+promo@sub.example.co.id"),
    ],
)
def test_normalize_email_accepts(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("ana@example.com\r\nBcc: victim@example.org", "line break (CR/LF)"),
        ("ana@example.com\n", "line break (CR/LF)"),
        ("a" * 64 + "@" + ("b" * 60 + ".") * 3 + "example.com", "at most 254"),
        ('"ana lim"@example.com', "Quoting"),
        ("Ana <ana@example.com>", "display name"),
        ("ana@localhost", "is not valid"),
        ("ana@example", "is not valid"),
        ("ana.example.com", "is not valid"),
        ("", "is not valid"),
    ],
)
def test_normalize_email_refuses(raw: str, fragment: str) -> None:
    with pytest.raises(AddressError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        normalize_email(raw)


def test_email_255_characters_is_refused_and_messages_are_short() -> None:
    raw = "x" * 240 + "@example.com" + "yyy"
    assert len(raw) == 255
    with pytest.raises(AddressError) as err:
        normalize_email(raw)
    assert "255 characters" in str(err.value)
    assert len(str(err.value)) < 150
    with pytest.raises(AddressError, match="must be text"):
        normalize_email(None)  # type: ignore[arg-type]


# --- countries ---------------------------------------------------------------------------------------


def test_countries() -> None:
    assert is_valid_country("ID") and is_valid_country("us") and is_valid_country(" GB ")
    assert not is_valid_country("XX") and not is_valid_country("IDN") and not is_valid_country(None)
    assert normalize_country(" id ") == "ID"
    with pytest.raises(AddressError, match="ISO 3166-1 alpha-2"):
        normalize_country("Indonesia")
