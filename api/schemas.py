"""Request and response models of the developer API (SPEC section 7).

Input is parsed here, at the edge (DESIGN.md convention 9): addresses are normalised (E.164, email normal
form), time zones and locales checked, unknown fields refused. Every validator's message names the value
and says how to fix it; the problem handler adds the field name.
"""

from __future__ import annotations

import difflib
import functools
import re
import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    IPvAnyAddress,
    ValidationInfo,
    field_validator,
)

from core.addresses import AddressError, normalize_country, normalize_email, normalize_phone

Channel = Literal["email", "sms", "whatsapp", "voice"]
Purpose = Literal["marketing", "sales", "service"]
ConsentStatus = Literal["granted", "withdrawn"]
LawfulBasis = Literal[
    "consent", "contract", "legal_obligation", "vital_interests", "public_task", "legitimate_interest"
]
ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"  # cadence and step ids (core.model.Identifier)
EVENT_NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"  # score keys (core.model.Name)
METHOD_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,39}$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_LOCALE = re.compile(r"^([A-Za-z]{2,3})((?:[-_][A-Za-z0-9]{1,8})*)$")
FUTURE_TOLERANCE = timedelta(minutes=5)
CONTACT_REF = "our contact id, or `ext:<external_id>`"


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


# ---- shared checks --------------------------------------------------------------------------------
@functools.cache
def _zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def check_timezone(value: str) -> str:
    """An IANA zone name such as ``Asia/Jakarta``; ValueError with close matches otherwise."""
    name = value.strip()
    if name in _zones():
        return name
    close = difflib.get_close_matches(name, sorted(_zones()), n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise ValueError(
        f"{value!r} is not an IANA time zone{hint}; use a name such as Asia/Jakarta, Europe/London or America/New_York"
    )


def check_locale(value: str) -> str:
    """BCP 47-ish: ``en``, ``id-ID``, ``zh-Hant-TW``; normalised to the usual case (``en_us`` -> ``en-US``)."""
    match = _LOCALE.match(value.strip())
    if not match:
        raise ValueError(f"{value!r} is not a BCP 47 language tag; use e.g. en, id, en-US or pt-BR")
    parts = [match.group(1).lower()]
    for sub in filter(None, re.split(r"[-_]", match.group(2))):
        if (len(sub) == 2 and sub.isalpha()) or (len(sub) == 3 and sub.isdigit()):
            parts.append(sub.upper())
        elif len(sub) == 4 and sub.isalpha():
            parts.append(sub.title())
        else:
            parts.append(sub.lower())
    return "-".join(parts)


def check_text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("contains a control character (line break, tab or NUL); send plain text on one line")
    return value


def blank_to_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


# ---- contacts -------------------------------------------------------------------------------------
class ContactIn(In):
    """Create or update a contact by ``external_id``. Only the fields you send are changed; send ``null``
    (or an empty string) to clear one."""

    external_id: str = Field(
        min_length=1,
        max_length=255,
        examples=["crm-000123"],
        description="Your system's id for this person; the upsert key.",
    )
    name: str | None = Field(default=None, max_length=200, examples=["Ana Wijaya"])
    country: str | None = Field(
        default=None, examples=["ID"], description="ISO 3166-1 alpha-2; used to read national phone numbers."
    )
    email: str | None = Field(default=None, examples=["ana@example.com"])
    phone: str | None = Field(
        default=None, examples=["+6281234567890"], description="E.164, or a national number when `country` is known."
    )
    whatsapp: str | None = Field(
        default=None,
        examples=["+6281234567890"],
        description="The WhatsApp number, like `phone` (`whatsapp:` prefix allowed).",
    )
    timezone: str | None = Field(default=None, examples=["Asia/Jakarta"], description="IANA time zone name.")
    locale: str | None = Field(default=None, examples=["id"], description="BCP 47 language tag.")
    attributes: dict[str, Any] | None = Field(
        default=None,
        examples=[{"plan": "pro", "restaurants": 3}],
        description="Free attributes (a JSON object) that conditions and templates may read; replaces the "
        "stored attributes when sent.",
    )

    @field_validator("external_id")
    @classmethod
    def _external_id(cls, value: str) -> str:
        value = check_text(value).strip()
        if not value:
            raise ValueError("is blank; send your system's id for this contact")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value).strip() or None

    @field_validator("country", "email", "phone", "whatsapp", "timezone", "locale", mode="before")
    @classmethod
    def _blank(cls, value: Any) -> Any:
        return blank_to_none(value)

    @field_validator("country")
    @classmethod
    def _country(cls, value: str | None) -> str | None:
        return None if value is None else _address(normalize_country, value)

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return None if value is None else _address(normalize_email, value)

    @field_validator("phone", "whatsapp")
    @classmethod
    def _phone(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if "country" not in info.data:  # the country itself was invalid; that error is reported
            return value
        country = info.data["country"]
        if country is None and is_national(value):
            return value  # read with the stored contact's country (or refused) by the route
        return parse_number(str(info.field_name), value, country)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)

    @field_validator("locale")
    @classmethod
    def _locale(cls, value: str | None) -> str | None:
        return None if value is None else check_locale(value)


_NATIONAL = re.compile(r"^[\d\s\-.()/]+$")


def is_national(raw: str) -> bool:
    """A phone number in national form (digits and punctuation, no ``+`` or ``00`` prefix): it needs a
    country to be read."""
    text = raw.strip()
    if text.lower().startswith("whatsapp:"):
        text = text[len("whatsapp:") :].strip()
    return bool(_NATIONAL.match(text)) and not text.startswith("00")


def parse_number(field: str, raw: str, country: str | None) -> str:
    """E.164 for the ``phone`` or ``whatsapp`` field; ValueError whose message fits that field."""
    try:
        return normalize_phone(raw, country)
    except AddressError as exc:
        message = str(exc)
        if field == "whatsapp":  # core speaks of "phone"; this field is the WhatsApp number
            message = message.replace("phone ", "number ", 1)
        raise ValueError(message) from None


def _address(parse: Any, value: str) -> str:
    try:
        return parse(value)
    except AddressError as exc:
        raise ValueError(str(exc)) from None


class ConsentStateOut(Out):
    """The permission in force for one channel x purpose (the latest record wins)."""

    channel: Channel
    purpose: Purpose
    status: ConsentStatus
    occurred_at: datetime
    record_id: int


class ContactOut(Out):
    id: str = Field(examples=["6f1c2a9e-8d1b-4f57-9a63-1c0e2b7d4a11"])
    external_id: str
    name: str | None
    email: str | None
    phone: str | None
    whatsapp: str | None
    country: str | None
    timezone: str | None
    locale: str | None
    attributes: dict[str, Any]
    consents: list[ConsentStateOut] = Field(default_factory=list, description="Current consent per channel x purpose.")
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None


# ---- consent ---------------------------------------------------------------------------------------
class ConsentIn(In):
    """A grant or withdrawal, with the evidence that makes it demonstrable (GDPR art. 7(1)).

    A grant needs ``method``, ``source`` and ``notice_text``; a withdrawal needs only channel, purpose and
    status (withdrawing must be as easy as granting). The address is copied from the contact.
    """

    channel: Channel
    purpose: Purpose
    status: ConsentStatus
    method: str | None = Field(
        default=None,
        pattern=METHOD_PATTERN,
        examples=["web_form"],
        description="web_form, double_opt_in, keyword, agent_call, import, api, ...",
    )
    source: str | None = Field(
        default=None,
        max_length=2000,
        examples=["https://example.com/ebook"],
        description="Where it was captured: a URL, a system or a campaign.",
    )
    notice_text: str | None = Field(
        default=None,
        max_length=20000,
        examples=["Yes, send me webinar invitations by email."],
        description="The exact text the person agreed to.",
    )
    notice_version: str | None = Field(default=None, max_length=100, examples=["2026-01"])
    lawful_basis: LawfulBasis | None = Field(default=None, description="Defaults to consent for a grant.")
    ip: IPvAnyAddress | None = Field(default=None, examples=["203.0.113.7"])
    agent_id: str | None = Field(default=None, max_length=200)
    occurred_at: AwareDatetime | None = Field(
        default=None, description="When the person granted or withdrew it, with a UTC offset; default now."
    )
    source_timezone: str | None = Field(
        default=None, examples=["Asia/Jakarta"], description="The IANA zone of the person when they acted."
    )

    @field_validator("source", "notice_version", "agent_id")
    @classmethod
    def _one_line(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value).strip() or None

    @field_validator("occurred_at")
    @classmethod
    def _not_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > datetime.now(UTC) + FUTURE_TOLERANCE:
            raise ValueError(f"{value.isoformat()} is in the future; send when it actually happened")
        return None if value is None else value.astimezone(UTC)

    @field_validator("source_timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_timezone(value)


class ConsentOut(Out):
    id: int
    contact_id: str
    channel: Channel
    purpose: Purpose
    status: ConsentStatus
    address: str | None
    method: str | None
    source: str | None
    notice_text: str | None
    notice_version: str | None
    lawful_basis: str | None
    ip: str | None
    agent_id: str | None
    occurred_at: datetime
    source_timezone: str | None
    recorded_at: datetime


# ---- timeline and decisions ----------------------------------------------------------------------
class TimelineItemOut(Out):
    at: datetime
    kind: Literal["message", "event", "decision", "consent"]
    summary: str = Field(examples=["email sent to ana@example.com: Webinar invitation"])
    detail: dict[str, Any]


class TimelineOut(BaseModel):
    contact_id: str
    items: list[TimelineItemOut]
    next_cursor: str | None = Field(default=None, description="Cursor of the next page; null on the last page.")


class DecisionOut(Out):
    id: int
    decided_at: datetime
    decision: str = Field(examples=["deferred"])
    reason: str | None = Field(examples=["outside_window"])
    detail: str | None
    channel: str | None
    enrollment_id: str | None
    step_id: str | None
    message_key: str | None
    until: datetime | None


class DecisionsOut(BaseModel):
    contact_id: str
    decisions: list[DecisionOut]
    next_cursor: str | None = Field(default=None, description="Cursor of the next page; null on the last page.")


# ---- enrollments ----------------------------------------------------------------------------------
class EnrollmentIn(In):
    contact_id: str = Field(min_length=1, max_length=300, description=CONTACT_REF)
    cadence_id: str = Field(min_length=1, max_length=63, examples=["webinar-nurture"])


class EnrollmentOut(BaseModel):
    id: str = Field(
        examples=["cadence:webinar-nurture:6f1c2a9e-8d1b-4f57-9a63-1c0e2b7d4a11"],
        description="The Temporal workflow id `cadence:{cadence_id}:{contact_id}`.",
    )
    run_id: str
    status: Literal["started", "already_running"]
    cadence_id: str
    contact_id: str


class EnrollmentStopOut(BaseModel):
    id: str
    status: Literal["stopping"] = "stopping"
    reason: str


# ---- events ---------------------------------------------------------------------------------------
class EventIn(In):
    """A custom event for a contact (``webinar.attended``, ``purchased``); idempotent by its key."""

    contact_id: str = Field(min_length=1, max_length=300, description=CONTACT_REF)
    name: str = Field(
        pattern=EVENT_NAME_PATTERN,
        examples=["webinar.attended"],
        description="Lower-case letters, digits, '.', '_' and '-'.",
    )
    step_id: str | None = Field(
        default=None,
        pattern=ID_PATTERN,
        examples=["invite"],
        description="The cadence step the event belongs to (e.g. a clicked email).",
    )
    cadence_id: str | None = Field(
        default=None, pattern=ID_PATTERN, description="Only signal this cadence's enrollment (default: all running)."
    )
    idempotency_key: str = Field(
        min_length=1,
        max_length=200,
        examples=["webinar-42/attendee-981"],
        description="Your unique id for this event; a repeat is recorded once.",
    )
    occurred_at: AwareDatetime | None = Field(default=None, description="With a UTC offset; default now.")
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("idempotency_key")
    @classmethod
    def _key(cls, value: str) -> str:
        return check_text(value)

    @field_validator("occurred_at")
    @classmethod
    def _not_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > datetime.now(UTC) + FUTURE_TOLERANCE:
            raise ValueError(f"{value.isoformat()} is in the future; send when it actually happened")
        return None if value is None else value.astimezone(UTC)


class EventOut(BaseModel):
    id: int
    contact_id: str
    name: str
    step_id: str | None
    enrollment_id: str | None
    idempotency_key: str | None
    occurred_at: datetime
    received_at: datetime
    payload: dict[str, Any]
    duplicate: bool = Field(description="True when this key was already recorded: nothing new happened.")
    signaled: list[str] = Field(description="The enrollments (workflow ids) this request delivered it to.")


# ---- health ---------------------------------------------------------------------------------------
class HealthOut(BaseModel):
    status: Literal["ok", "error"]
    database: Literal["ok", "unreachable"]
    temporal: Literal["ok", "unreachable"]
