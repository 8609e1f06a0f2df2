"""Parse contact addresses at the edge: phone numbers to E.164, emails to their normalised form.

Everything inside omnireach (consent, suppression, sends) compares addresses by these normal forms, so
input is normalised once where it enters (API, CLI, import) and refused there, with an error that says what
is wrong and how to fix it, rather than failing later at send time.
"""

from __future__ import annotations

import functools
import unicodedata
from importlib import resources

import phonenumbers
from email_validator import EmailNotValidError, validate_email
from phonenumbers import NumberParseException, ValidationResult

__all__ = [
    "EMAIL_MAX_LENGTH",
    "AddressError",
    "is_valid_country",
    "normalize_country",
    "normalize_email",
    "normalize_phone",
    "whatsapp_address",
]

EMAIL_MAX_LENGTH = 254  # RFC 5321 path limit less the angle brackets
_E164_MAX_DIGITS = 15
_WHATSAPP_PREFIX = "whatsapp:"
_PHONE_FORM = "international form, e.g. +6281234567890 (+, country code, number)"
_PHONE_PUNCTUATION = frozenset(" -.()/")
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"), "-")


class AddressError(ValueError):
    """An address that cannot be used; the message says what is wrong and how to fix it."""


def _show(raw: object) -> str:
    text = repr(raw)
    return text if len(text) <= 42 else text[:38] + "...'"


@functools.lru_cache(maxsize=1)
def _iso_countries() -> frozenset[str]:
    """ISO 3166-1 alpha-2 codes, from tzdata's iso3166.tab (package data)."""
    text = resources.files("tzdata.zoneinfo").joinpath("iso3166.tab").read_text(encoding="utf-8")
    return frozenset(line.split("\t", 1)[0] for line in text.splitlines() if line and line[0] != "#")


def is_valid_country(code: object) -> bool:
    """Whether ``code`` is an ISO 3166-1 alpha-2 country code (any case, e.g. ``"ID"``, ``"us"``)."""
    return isinstance(code, str) and len(code.strip()) == 2 and code.strip().upper() in _iso_countries()


def normalize_country(raw: object) -> str:
    """``" id "`` -> ``"ID"``; AddressError if it is not an ISO 3166-1 alpha-2 code."""
    if not is_valid_country(raw):
        raise AddressError(f"country {_show(raw)} is not an ISO 3166-1 alpha-2 code such as ID, US or GB")
    assert isinstance(raw, str)
    return raw.strip().upper()


def _phone_chars(raw: str, text: str) -> str:
    """Digits of ``text`` with a leading '+' kept; refuses letters and stray characters."""
    letters = sorted({ch for ch in text if ch.isalpha()})
    if letters:
        wrong_prefix = text.lower().startswith(("whats", "wa:", "wa+"))
        hint = " (a WhatsApp address is written whatsapp:+<number>)" if wrong_prefix else ""
        found = "".join(letters)
        raise AddressError(f"phone {_show(raw)} contains letters {found!r}{hint}; write digits only, in {_PHONE_FORM}")
    stray = sorted({ch for ch in text if not (ch.isdigit() or ch == "+" or ch in _PHONE_PUNCTUATION)})
    if stray:
        raise AddressError(
            f"phone {_show(raw)} contains {''.join(stray)!r}; use digits, spaces, dashes, dots and "
            f"parentheses only, in {_PHONE_FORM}"
        )
    if "+" in text[1:]:
        raise AddressError(f"phone {_show(raw)} has a '+' that is not at the start; use {_PHONE_FORM}")
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits:
        raise AddressError(f"phone {_show(raw)} has no digits; write it in {_PHONE_FORM}")
    return ("+" if text.startswith("+") else "") + digits


def _invalid_reason(number: phonenumbers.PhoneNumber) -> str:
    region = phonenumbers.region_code_for_number(number) or phonenumbers.region_code_for_country_code(
        number.country_code
    )
    region = f"+{number.country_code}" if region in (None, "ZZ", "001") else region
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason == ValidationResult.INVALID_COUNTRY_CODE:
        return f"+{number.country_code} is not a country code"
    if reason == ValidationResult.TOO_SHORT:
        return f"too short for {region}"
    if reason == ValidationResult.TOO_LONG:
        return f"too long for {region}"
    if reason == ValidationResult.INVALID_LENGTH:
        return f"the wrong length for {region}"
    return f"not a number in use in {region} (check the digits)"


def _too_long(raw: str, digits: str) -> AddressError:
    return AddressError(
        f"phone {_show(raw)} has {len(digits)} digits; an E.164 number has at most "
        f"{_E164_MAX_DIGITS}, country code included: check for extra digits"
    )


def normalize_phone(raw: str, default_country: str | None) -> str:
    """Any reasonable phone input -> E.164 (``+6281234567890``); AddressError otherwise.

    Accepts spaces, dashes, dots, parentheses, full-width digits, a ``whatsapp:`` prefix, a leading ``00``
    international prefix, and national numbers (``0812...``) when the contact's country is given.
    """
    if not isinstance(raw, str):
        raise AddressError(f"phone {_show(raw)} must be text, in {_PHONE_FORM}")
    text = unicodedata.normalize("NFKC", raw).translate(_DASHES).strip()
    if text.lower().startswith(_WHATSAPP_PREFIX):
        text = text[len(_WHATSAPP_PREFIX) :].strip()
    number = _phone_chars(raw, text)
    international = number.startswith(("+", "00"))
    significant = number[1:] if number.startswith("+") else number[2:] if international else number
    if international and len(significant) > _E164_MAX_DIGITS:
        raise _too_long(raw, significant)
    if international:
        if significant.startswith("0"):
            raise AddressError(
                f"phone {_show(raw)}: a country code never starts with 0; drop the national 0 and write "
                f"it as +<country code>{significant.lstrip('0')}"
            )
        candidate, region = "+" + significant, None
    else:
        if default_country is None or not str(default_country).strip():
            if number.startswith("0"):
                raise AddressError(
                    f"phone {_show(raw)} is a national number; give the contact's country or write it "
                    f"as +<country code>{number[1:]} (e.g. +62{number[1:]} for Indonesia)"
                )
            raise AddressError(
                f"phone {_show(raw)} has no '+'; write it as +{number} if it already starts with the "
                "country code, or give the contact's country"
            )
        region = normalize_country(default_country)
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise AddressError(f"country {region} has no phone numbering plan; use {_PHONE_FORM}")
        candidate = number
    try:
        parsed = phonenumbers.parse(candidate, region)
    except NumberParseException as exc:
        if len(significant) > _E164_MAX_DIGITS:
            raise _too_long(raw, significant) from exc
        detail = (
            "no known country code follows the '+'"
            if exc.error_type == NumberParseException.INVALID_COUNTRY_CODE
            else str(exc).split(") ", 1)[-1].rstrip(".")
        )
        raise AddressError(f"phone {_show(raw)} is not a phone number ({detail}); use {_PHONE_FORM}") from exc
    if not phonenumbers.is_valid_number(parsed):
        if len(significant) > _E164_MAX_DIGITS:  # national input such as 0812 3456 7890 1234 5
            raise _too_long(raw, significant)
        raise AddressError(f"phone {_show(raw)} is {_invalid_reason(parsed)}; write it in {_PHONE_FORM}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def whatsapp_address(e164: str) -> str:
    """``+6281234567890`` -> ``whatsapp:+6281234567890`` (Twilio's To/From form); validates first."""
    return _WHATSAPP_PREFIX + normalize_phone(e164, None)


def normalize_email(raw: str) -> str:
    """A deliverable-looking email -> its normalised form (domain lower-cased, IDN kept in Unicode NFC).

    Refuses CR/LF anywhere (mail header injection), more than 254 characters, display names, quoted
    local parts and special-use domains (``.test``, ``localhost``...). DNS is never queried.
    """
    if not isinstance(raw, str):
        raise AddressError(f"email {_show(raw)} must be text such as ana@example.com")
    if "\r" in raw or "\n" in raw:
        raise AddressError(
            f"email {_show(raw)} contains a line break (CR/LF), which could inject mail headers; "
            "give one address on one line"
        )
    text = raw.strip()
    if len(text) > EMAIL_MAX_LENGTH:
        raise AddressError(f"email {_show(raw)} has {len(text)} characters; at most {EMAIL_MAX_LENGTH} are allowed")
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise AddressError(f"email {_show(raw)} is not valid: {exc}") from exc
