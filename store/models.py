"""SQLAlchemy 2 declarative models: the tables omnireach keeps.

Every datetime column is ``UTCDateTime`` (aware UTC in, aware UTC out). Constraint names follow one naming
convention so later migrations (SQLite batch mode included) can address them. Enumerations are plain
strings; the closed sets that guard evidence (consent) are also CHECK constraints in the database.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    event,
    inspect,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from store.types import BigIntId, JSONType, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

CHANNELS = ("email", "sms", "whatsapp", "voice")
PURPOSES = ("marketing", "sales", "service")
CONSENT_STATUSES = ("granted", "withdrawn")
SUPPRESSION_KINDS = ("global", "list", "registry", "erasure", "company_dnc")
CHANNEL_SCOPES = ("phone", "email", "whatsapp", "all")
ENROLLMENT_STATUSES = ("running", "completed", "exited", "stopped", "failed")
DECISIONS = ("sent", "deferred", "skipped", "failed")
API_SCOPES = ("admin", "developer", "agent")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _new_uuid() -> str:
    return str(uuid.uuid4())


class Base(DeclarativeBase):
    """Declarative base with the shared naming convention and type map."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSONType,
        list[str]: JSONType,
    }


class AppendOnlyError(RuntimeError):
    """Raised when code tries to change or delete a row of an append-only ledger."""


class Contact(Base):
    """A person we may contact. Erasure blanks personal data and sets ``erased_at``; the row stays."""

    __tablename__ = "contacts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_new_uuid)
    external_id: Mapped[str] = mapped_column(String, unique=True)
    name: Mapped[str | None]
    email: Mapped[str | None] = mapped_column(String, index=True)
    phone: Mapped[str | None] = mapped_column(String, index=True)  # E.164
    whatsapp: Mapped[str | None] = mapped_column(String, index=True)  # E.164
    country: Mapped[str | None] = mapped_column(String(2))  # ISO 3166-1 alpha-2
    timezone: Mapped[str | None]  # IANA
    locale: Mapped[str | None]  # BCP 47
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Set when a hard bounce / invalid number makes the address unusable; cleared when the address changes.
    email_unusable_reason: Mapped[str | None]
    phone_unusable_reason: Mapped[str | None]
    last_inbound_at: Mapped[datetime | None]  # opens the WhatsApp 24h free-form window
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    erased_at: Mapped[datetime | None]


class ConsentRecord(Base):
    """One piece of consent evidence (a grant or a withdrawal). Append-only: never updated or deleted.

    Enforced twice: ORM mapper events below and database triggers created by migration 0001. Erasure will
    need to delete a contact's rows: a later migration should replace the DELETE trigger with one that
    allows deletion only when an erasure request row exists for ``OLD.contact_id`` (works on both DBs).
    """

    __tablename__ = "consent_records"
    __table_args__ = (
        CheckConstraint(_in("channel", CHANNELS), name="channel"),
        CheckConstraint(_in("purpose", PURPOSES), name="purpose"),
        CheckConstraint(_in("status", CONSENT_STATUSES), name="status"),
        Index("ix_consent_records_lookup", "contact_id", "channel", "purpose", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id"))
    channel: Mapped[str]
    purpose: Mapped[str]
    status: Mapped[str]
    address: Mapped[str | None]
    method: Mapped[str | None]  # web_form, double_opt_in, keyword, agent_call, import, api, ...
    source: Mapped[str | None]  # URL or system that captured it
    notice_text: Mapped[str | None] = mapped_column(Text)
    notice_version: Mapped[str | None]
    lawful_basis: Mapped[str | None]  # consent, contract, legitimate_interest, ...
    ip: Mapped[str | None]
    agent_id: Mapped[str | None]
    occurred_at: Mapped[datetime]
    source_timezone: Mapped[str | None]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    evidence: Mapped[dict[str, Any]] = mapped_column(default=dict)


@event.listens_for(ConsentRecord, "before_update")
def _refuse_consent_update(mapper: Any, connection: Any, target: ConsentRecord) -> None:
    # before_update also fires for objects touched without net change; only refuse a real change.
    state = inspect(target)
    if any(attr.history.has_changes() for attr in state.attrs):
        raise AppendOnlyError("consent_records is append-only: record a new grant or withdrawal instead")


@event.listens_for(ConsentRecord, "before_delete")
def _refuse_consent_delete(mapper: Any, connection: Any, target: ConsentRecord) -> None:
    raise AppendOnlyError("consent_records is append-only: record a withdrawal instead of deleting")


class Suppression(Base):
    """A do-not-contact entry: a plain normalised address, or only its salted hash (after erasure)."""

    __tablename__ = "suppressions"
    __table_args__ = (
        CheckConstraint(_in("kind", SUPPRESSION_KINDS), name="kind"),
        CheckConstraint(_in("channel_scope", CHANNEL_SCOPES), name="channel_scope"),
        CheckConstraint("value IS NOT NULL OR value_hash IS NOT NULL", name="value_or_hash"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    kind: Mapped[str]
    list_name: Mapped[str | None]
    country: Mapped[str | None] = mapped_column(String(2))
    channel_scope: Mapped[str]
    value: Mapped[str | None] = mapped_column(String, index=True)  # E.164 or lower-cased email
    value_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    reason: Mapped[str | None]
    as_of: Mapped[date | None] = mapped_column(Date)  # registry snapshot date (freshness)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Enrollment(Base):
    """A contact's run of a cadence; the id is the Temporal workflow id ``cadence:{cadence}:{contact}``."""

    __tablename__ = "enrollments"
    __table_args__ = (
        CheckConstraint(_in("status", ENROLLMENT_STATUSES), name="status"),
        Index("ix_enrollments_contact_status", "contact_id", "status"),
    )

    id: Mapped[str] = mapped_column(String, primary_key=True)
    cadence_id: Mapped[str] = mapped_column(String, index=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id"))
    status: Mapped[str] = mapped_column(default="running")
    cadence_snapshot_hash: Mapped[str | None]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None]


class OutboxMessage(Base):
    """A message we intend to send / sent, written under its idempotency key *before* the provider call.

    ``enrollment_id`` has no foreign key on purpose: service messages (HELP replies, opt-out confirmations)
    are sent outside any enrollment.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (Index("ix_outbox_messages_contact_sent", "contact_id", "sent_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    message_key: Mapped[str] = mapped_column(String, unique=True)  # "{workflow_id}/{step_id}/{attempt}"
    enrollment_id: Mapped[str | None] = mapped_column(String, index=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id"))
    cadence_id: Mapped[str | None]
    step_id: Mapped[str | None]
    channel: Mapped[str]
    purpose: Mapped[str | None]
    variant: Mapped[str | None]
    locale: Mapped[str | None]
    to_address: Mapped[str]
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)  # the rendered text, as sent
    html: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(default="pending")
    provider: Mapped[str | None]
    provider_message_id: Mapped[str | None] = mapped_column(String, index=True)
    segments: Mapped[int | None]
    encoding: Mapped[str | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Event(Base):
    """Something the contact did (provider events, replies, custom events from other systems)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_contact_occurred", "contact_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id"))
    enrollment_id: Mapped[str | None]
    name: Mapped[str]  # "email.opened", "webinar.attended", "replied", ...
    step_id: Mapped[str | None]
    message_key: Mapped[str | None] = mapped_column(String, index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String, unique=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class SendDecision(Base):
    """Why a send went out, was deferred (until when) or skipped: what ``omnireach explain`` shows."""

    __tablename__ = "send_decisions"
    __table_args__ = (
        CheckConstraint(_in("decision", DECISIONS), name="decision"),
        Index("ix_send_decisions_contact_decided", "contact_id", "decided_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id"))
    enrollment_id: Mapped[str | None]
    step_id: Mapped[str | None]
    message_key: Mapped[str | None]
    channel: Mapped[str | None]
    decision: Mapped[str]
    reason: Mapped[str | None]  # short code: no_consent, suppressed, outside_window, cap_per_day, ...
    detail: Mapped[str | None] = mapped_column(Text)
    until: Mapped[datetime | None]
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key: only its SHA-256 is stored; ``prefix`` lets people recognise it in listings."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    name: Mapped[str]
    prefix: Mapped[str] = mapped_column(String, index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(default=list)
    agent_id: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


# The other table modules subclass Base; importing them here puts every table in Base.metadata (Alembic).
from store import (  # noqa: E402
    pacing_models,  # noqa: F401
    permission_models,  # noqa: F401
    task_models,  # noqa: F401
    webhook_models,  # noqa: F401
)
