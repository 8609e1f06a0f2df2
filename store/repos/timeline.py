"""A contact's timeline: sent messages, events, send decisions and consent changes, merged by time."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from store.repos.consent import consent_history
from store.repos.decisions import decisions_for_contact
from store.repos.events import events_for_contact
from store.repos.outbox import messages_for_contact

# Tie-break for equal timestamps: the cause before its effect.
_KIND_ORDER = {"consent": 0, "decision": 1, "message": 2, "event": 3}


@dataclass(frozen=True)
class TimelineItem:
    """One line of a contact's history: when, what kind, a one-line summary and the full detail."""

    at: datetime
    kind: str  # "message" | "event" | "decision" | "consent"
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)
    id: int = 0  # the source row's id, for a stable order


def contact_timeline(session: Session, contact_id: str) -> list[TimelineItem]:
    """Everything that happened to a contact, oldest first: what was sent (with its body), what they
    did, what was decided and why, and every consent grant or withdrawal."""
    items: list[TimelineItem] = []
    for m in messages_for_contact(session, contact_id, sent_only=True):
        subject = f": {m.subject}" if m.subject else ""
        items.append(
            TimelineItem(
                at=m.sent_at or m.created_at,
                kind="message",
                summary=f"{m.channel} {m.status} to {m.to_address}{subject}",
                detail={
                    "message_key": m.message_key,
                    "channel": m.channel,
                    "status": m.status,
                    "to": m.to_address,
                    "subject": m.subject,
                    "body": m.body,
                    "cadence_id": m.cadence_id,
                    "step_id": m.step_id,
                    "variant": m.variant,
                    "provider": m.provider,
                    "provider_message_id": m.provider_message_id,
                },
                id=m.id,
            )
        )
    for e in events_for_contact(session, contact_id):
        step = f" ({e.step_id})" if e.step_id else ""
        items.append(
            TimelineItem(
                at=e.occurred_at,
                kind="event",
                summary=f"{e.name}{step}",
                detail={
                    "name": e.name,
                    "step_id": e.step_id,
                    "message_key": e.message_key,
                    "payload": e.payload,
                },
                id=e.id,
            )
        )
    for d in decisions_for_contact(session, contact_id):
        words = " ".join(w for w in (d.decision, d.channel, d.step_id) if w)
        reason = f" ({d.reason})" if d.reason else ""
        until = f" until {d.until.isoformat()}" if d.until else ""
        items.append(
            TimelineItem(
                at=d.decided_at,
                kind="decision",
                summary=f"{words}{reason}{until}",
                detail={
                    "decision": d.decision,
                    "reason": d.reason,
                    "detail": d.detail,
                    "channel": d.channel,
                    "step_id": d.step_id,
                    "message_key": d.message_key,
                    "until": d.until,
                },
                id=d.id,
            )
        )
    for c in consent_history(session, contact_id):
        via = f" via {c.method}" if c.method else ""
        items.append(
            TimelineItem(
                at=c.occurred_at,
                kind="consent",
                summary=f"{c.channel}/{c.purpose} consent {c.status}{via}",
                detail={
                    "channel": c.channel,
                    "purpose": c.purpose,
                    "status": c.status,
                    "address": c.address,
                    "method": c.method,
                    "source": c.source,
                    "notice_version": c.notice_version,
                    "lawful_basis": c.lawful_basis,
                    "record_id": c.id,
                },
                id=c.id,
            )
        )
    items.sort(key=lambda item: (item.at, _KIND_ORDER[item.kind], item.id))
    return items
