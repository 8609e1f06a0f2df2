"""The consent ledger: append evidence, derive the current permission from the latest record."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, select
from sqlalchemy.orm import Session

from store.models import CHANNELS, CONSENT_STATUSES, PURPOSES, ConsentRecord
from store.repos import milestones
from store.repos._common import check_choice
from store.types import utcnow


@dataclass(frozen=True)
class ConsentState:
    """The current permission for one channel x purpose.

    ``status`` is "granted", "withdrawn" or None when nothing was ever recorded (which means: no consent).
    """

    granted: bool
    record_id: int | None
    status: str | None
    occurred_at: datetime | None
    address: str | None = None
    method: str | None = None

    @classmethod
    def never(cls) -> ConsentState:
        """The state of a channel x purpose with no record at all."""
        return cls(granted=False, record_id=None, status=None, occurred_at=None)

    @classmethod
    def of(cls, record: ConsentRecord | Row) -> ConsentState:
        """The state a record (or a row of its status, id, occurred_at, address and method) establishes."""
        return cls(
            granted=record.status == "granted",
            record_id=record.id,
            status=record.status,
            occurred_at=record.occurred_at,
            address=record.address,
            method=record.method,
        )


def append_consent(
    session: Session,
    *,
    contact_id: str,
    channel: str,
    purpose: str,
    status: str,
    occurred_at: datetime | None = None,
    address: str | None = None,
    method: str | None = None,
    source: str | None = None,
    notice_text: str | None = None,
    notice_version: str | None = None,
    lawful_basis: str | None = None,
    ip: str | None = None,
    agent_id: str | None = None,
    source_timezone: str | None = None,
    evidence: dict[str, Any] | None = None,
) -> ConsentRecord:
    """Append one grant or withdrawal to the ledger (``occurred_at`` defaults to now, UTC)."""
    record = ConsentRecord(
        contact_id=contact_id,
        channel=check_choice("channel", channel, CHANNELS),
        purpose=check_choice("purpose", purpose, PURPOSES),
        status=check_choice("status", status, CONSENT_STATUSES),
        occurred_at=occurred_at or utcnow(),
        address=address,
        method=method,
        source=source,
        notice_text=notice_text,
        notice_version=notice_version,
        lawful_basis=lawful_basis,
        ip=ip,
        agent_id=agent_id,
        source_timezone=source_timezone,
        evidence=dict(evidence or {}),
    )
    session.add(record)
    session.flush()
    if record.status == "withdrawn":
        milestones.consent_withdrawn(session, record)  # subscribers hear of it, committed with the evidence
    return record


# Columns, not the mapped record, in a statement built once: every send and every claim asks this, and
# composing the query or loading an ORM object costs several times running it.
_CURRENT = (
    select(
        ConsentRecord.status,
        ConsentRecord.id,
        ConsentRecord.occurred_at,
        ConsentRecord.address,
        ConsentRecord.method,
    )
    .where(
        ConsentRecord.contact_id == bindparam("contact_id"),
        ConsentRecord.channel == bindparam("channel"),
        ConsentRecord.purpose == bindparam("purpose"),
    )
    .order_by(ConsentRecord.occurred_at.desc(), ConsentRecord.id.desc())
    .limit(1)
)


def current_consent(session: Session, contact_id: str, channel: str, purpose: str) -> ConsentState:
    """The permission in force: the latest record by ``occurred_at`` (ties: the later appended wins)."""
    row = session.execute(_CURRENT, {"contact_id": contact_id, "channel": channel, "purpose": purpose}).first()
    return ConsentState.never() if row is None else ConsentState.of(row)


def consent_history(session: Session, contact_id: str) -> list[ConsentRecord]:
    """Every consent record of a contact, oldest first (for exports and the timeline)."""
    return list(
        session.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.contact_id == contact_id)
            .order_by(ConsentRecord.occurred_at, ConsentRecord.id)
        )
    )


def consent_overview(session: Session, contact_id: str) -> dict[tuple[str, str], ConsentState]:
    """The current state of every (channel, purpose) that has at least one record."""
    overview: dict[tuple[str, str], ConsentState] = {}
    for record in consent_history(session, contact_id):
        overview[(record.channel, record.purpose)] = ConsentState.of(record)
    return overview
