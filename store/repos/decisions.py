"""Send decisions: the recorded reason for every send, deferral or skip (``omnireach explain``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import DECISIONS, SendDecision
from store.repos._common import check_choice
from store.types import utcnow


def record_decision(
    session: Session,
    *,
    contact_id: str,
    decision: str,
    reason: str | None = None,
    detail: str | None = None,
    channel: str | None = None,
    enrollment_id: str | None = None,
    step_id: str | None = None,
    message_key: str | None = None,
    until: datetime | None = None,
    decided_at: datetime | None = None,
) -> SendDecision:
    """Record one decision (sent / deferred / skipped / failed) with its short reason code and detail."""
    row = SendDecision(
        contact_id=contact_id,
        decision=check_choice("decision", decision, DECISIONS),
        reason=reason,
        detail=detail,
        channel=channel,
        enrollment_id=enrollment_id,
        step_id=step_id,
        message_key=message_key,
        until=until,
        decided_at=decided_at or utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def decisions_for_contact(session: Session, contact_id: str) -> list[SendDecision]:
    """Every decision about a contact, oldest first."""
    return list(
        session.scalars(
            select(SendDecision)
            .where(SendDecision.contact_id == contact_id)
            .order_by(SendDecision.decided_at, SendDecision.id)
        )
    )
