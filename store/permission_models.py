"""Tables of the permission engine: Do-Not-Call imports, inbound messages, webhook receipts, erasures.

- ``dnc_imports``: one row per ``omnireach dnc import``; a national registry's freshness is the newest
  ``as_of`` of each (list, country).
- ``inbound_messages``: texts people sent us (SMS / WhatsApp), keyed by the provider's message id.
- ``webhook_receipts``: one row per provider callback effect (Twilio MessageSid, SendGrid event key): the
  effect is applied in the transaction that inserts the row, so a duplicate or replay has no second
  effect. Signals for running enrollments wait in ``pending_signals`` until Temporal took them.
- ``erasure_requests``: what erasure keeps: when, who asked, salted hashes of the addresses, and a
  minimised summary of the deleted consent evidence (proof of withdrawal, no personal data).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import CheckConstraint, Date, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, Suppression, _in
from store.types import BigIntId, JSONType, utcnow

DNC_KINDS = ("registry", "list", "global")
INBOUND_INTENTS = ("stop", "start", "help", "other")


class DncImport(Base):
    """One import of a Do-Not-Call file (a registry snapshot, a named list or the global list)."""

    __tablename__ = "dnc_imports"
    __table_args__ = (
        CheckConstraint(_in("kind", DNC_KINDS), name="kind"),
        Index("ix_dnc_imports_country_list", "country", "list_name", "as_of"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    list_name: Mapped[str]
    kind: Mapped[str]
    country: Mapped[str | None] = mapped_column(String(2))
    as_of: Mapped[date | None] = mapped_column(Date)
    hashed: Mapped[bool] = mapped_column(default=False)
    entries: Mapped[int] = mapped_column(default=0)
    refused: Mapped[int] = mapped_column(default=0)
    source_name: Mapped[str | None]  # the file's name (not its path)
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


class InboundMessage(Base):
    """A text a person sent us, and our one reply to it. ``from_address``, ``body`` and ``reply`` are blanked
    by erasure."""

    __tablename__ = "inbound_messages"
    __table_args__ = (CheckConstraint(_in("intent", INBOUND_INTENTS), name="intent"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    provider: Mapped[str]
    provider_message_id: Mapped[str] = mapped_column(String, unique=True)
    channel: Mapped[str]  # sms | whatsapp
    from_address: Mapped[str | None] = mapped_column(String, index=True)  # E.164
    to_address: Mapped[str | None]
    body: Mapped[str | None] = mapped_column(Text)
    intent: Mapped[str]
    keyword: Mapped[str | None]
    reply: Mapped[str | None] = mapped_column(Text)  # our one answer (TwiML), if any
    contact_ids: Mapped[list[str]] = mapped_column(JSONType, default=list)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookReceipt(Base):
    """A provider callback already applied (dedupe key), and the enrollment signals it still owes."""

    __tablename__ = "webhook_receipts"
    __table_args__ = (
        UniqueConstraint("provider", "dedupe_key", name="uq_webhook_receipts_provider_key"),
        # Only the receipts still owing signals (the relay's sweep): a handful among millions.
        Index(
            "ix_webhook_receipts_owed",
            "received_at",
            postgresql_where=text("signalled_at IS NULL"),
            sqlite_where=text("signalled_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    provider: Mapped[str]  # twilio | sendgrid
    kind: Mapped[str]  # inbound | status | event
    dedupe_key: Mapped[str]
    pending_signals: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    signalled_at: Mapped[datetime | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class ErasureRequest(Base):
    """A contact's erasure: the row stays so the person is never contacted again and the request is proven."""

    __tablename__ = "erasure_requests"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id"), unique=True)
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    requested_by: Mapped[str | None]
    address_hashes: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    consent_summary: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    enrollments_stopped: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    note: Mapped[str | None] = mapped_column(Text)


# Registry snapshots are replaced and judged per (list, country): index the suppressions table for it.
Index("ix_suppressions_list", Suppression.kind, Suppression.list_name, Suppression.country)
