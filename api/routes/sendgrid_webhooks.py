"""SendGrid's signed event webhook: POST /webhooks/sendgrid/events.

The ECDSA signature is checked on the raw bytes before anything is parsed (403, nothing stored, when it
fails or the timestamp is more than five minutes off). Events repeat and arrive out of order: each is applied
once per (sg_message_id, event, timestamp), and a message's status only moves forward. Events are tied to
our message by the ``message_key`` custom arg (not by address). ``unsubscribe`` / ``group_unsubscribe``
withdraw email consent for the message's purpose, ``spamreport`` for every purpose; a hard ``bounce`` marks
the address unusable; ``group_resubscribe`` restores what the person had granted.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import ServicesDep
from api.problems import ProblemError, problem_responses
from api.webhook_support import deliver_signals, signal
from core.signatures import SENDGRID_SIGNATURE_HEADER, SENDGRID_TIMESTAMP_HEADER, verify_sendgrid
from store.models import PURPOSES, Contact, OutboxMessage
from store.repos import consent_changes
from store.repos import inbound as inbound_repo
from store.repos import outbox as outbox_repo
from store.repos.events import record_event
from store.types import utcnow

router = APIRouter(prefix="/webhooks/sendgrid", tags=["provider webhooks"])
log = logging.getLogger("omnireach.webhooks")
MESSAGE_KEY_ARG = "message_key"  # the custom arg channels/sendgrid_email.py sets on every mail
# SendGrid event -> (outbox status or None, event kind signalled to the enrollment or None)
EVENT_MAP: dict[str, tuple[str | None, str | None]] = {
    "processed": (None, None),
    "deferred": (None, None),
    "delivered": ("delivered", "delivered"),
    "open": ("opened", "opened"),
    "click": ("clicked", "clicked"),
    "bounce": ("bounced", "bounced"),
    "dropped": ("dropped", None),
    "spamreport": (None, "unsubscribed"),
    "unsubscribe": (None, "unsubscribed"),
    "group_unsubscribe": (None, "unsubscribed"),
    "group_resubscribe": (None, None),
}


@dataclass
class _Applied:
    owed: dict[int, list[dict]] = field(default_factory=dict)
    applied: int = 0
    duplicates: int = 0


@router.post(
    "/events",
    summary="Signed event webhook (SendGrid)",
    status_code=204,
    response_class=Response,
    responses=problem_responses(403, 413, 422, 503),
)
async def events(request: Request, services: ServicesDep) -> Response:
    """Verifies the ECDSA signature on the raw body, then applies each event once."""
    raw = await request.body()
    check = verify_sendgrid(
        services.settings.sendgrid_webhook_public_key,
        raw,
        request.headers.get(SENDGRID_SIGNATURE_HEADER),
        request.headers.get(SENDGRID_TIMESTAMP_HEADER),
        datetime.now(UTC),
    )
    if not check:
        log.warning("event=webhook_refused provider=sendgrid reason=%r", check.reason)
        raise ProblemError(403, f"request refused: {check.reason}")
    items = _parse(raw)
    applied = await services.db.run(lambda s: _apply_all(s, items))
    log.info(
        "event=sendgrid_events received=%d applied=%d duplicates=%d", len(items), applied.applied, applied.duplicates
    )
    if applied.owed:
        await deliver_signals(services, applied.owed)
    return Response(status_code=204)


def _parse(raw: bytes) -> list[dict[str, Any]]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ProblemError.invalid("body", f"is not JSON ({exc}); SendGrid posts a JSON array of events") from None
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ProblemError.invalid("body", "must be a JSON array of event objects")
    return data


def _apply_all(session: Session, items: list[dict[str, Any]]) -> _Applied:
    result = _Applied()
    for item in items:
        name = str(item.get("event") or "")
        stamp = str(item.get("timestamp") or "")
        ident = str(item.get("sg_message_id") or item.get("sg_event_id") or "")
        receipt, created = inbound_repo.claim_receipt(session, "sendgrid", "event", f"{ident}:{name}:{stamp}")
        if not created:
            result.duplicates += 1
            if receipt.signalled_at is None and receipt.pending_signals:
                result.owed[receipt.id] = list(receipt.pending_signals)
            continue
        signals = _apply(session, item, name, f"sendgrid:{ident}:{name}:{stamp}")
        inbound_repo.owe_signals(session, receipt, signals)
        if signals:
            result.owed[receipt.id] = signals
        result.applied += 1
    return result


def _message_for(session: Session, item: dict[str, Any]) -> OutboxMessage | None:
    key = item.get(MESSAGE_KEY_ARG)
    if isinstance(key, str) and key:
        row = outbox_repo.get_outbox(session, key)
        if row is not None:
            return row
    sg_id = str(item.get("sg_message_id") or "")
    if sg_id:  # "<X-Message-Id>.filter..." : the part before the first dot is what Mail Send answered
        return outbox_repo.find_outbox_by_provider_id(session, sg_id.split(".", 1)[0])
    return None


def _contacts_for(session: Session, message: OutboxMessage | None, email: str) -> list[Contact]:
    if message is not None:
        contact = session.get(Contact, message.contact_id)
        return [contact] if contact is not None and contact.erased_at is None else []
    if not email:
        return []
    return list(
        session.scalars(select(Contact).where(Contact.email == email.strip().lower(), Contact.erased_at.is_(None)))
    )


def _when(item: dict[str, Any]) -> datetime:
    try:
        return datetime.fromtimestamp(int(item.get("timestamp")), UTC)  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):
        return utcnow()


def _apply(session: Session, item: dict[str, Any], name: str, event_id: str) -> list[dict]:
    if name not in EVENT_MAP:
        return []
    message = _message_for(session, item)
    email = str(item.get("email") or "")
    status, kind = EVENT_MAP[name]
    hard_bounce = name == "bounce" and str(item.get("type") or "bounce") == "bounce"
    if name == "bounce" and not hard_bounce:
        status, kind = None, None  # "blocked": a soft bounce; the address stays usable
    changed = False
    if message is not None and status is not None:
        changed = outbox_repo.advance_outbox_status(session, message.message_key, status)
    occurred = _when(item)
    # Consent changes take effect when we learn of them: SendGrid's whole-second timestamp could otherwise
    # sort a withdrawal before a grant recorded a moment earlier. Its own time stays in the evidence.
    learned = max(occurred, utcnow())
    evidence = {
        "provider": "sendgrid",
        "event": name,
        "sg_event_id": item.get("sg_event_id"),
        "sg_message_id": item.get("sg_message_id"),
        "email": email,
        "timestamp": item.get("timestamp"),
        "asm_group_id": item.get("asm_group_id"),
    }
    purposes = [message.purpose] if message is not None and message.purpose in PURPOSES else list(PURPOSES)
    for contact in _contacts_for(session, message, email):
        if message is not None:
            record_event(
                session,
                contact_id=contact.id,
                name=f"email.{name}",
                idempotency_key=event_id,
                enrollment_id=message.enrollment_id,
                step_id=message.step_id,
                message_key=message.message_key,
                payload={"sg_event_id": item.get("sg_event_id"), "type": item.get("type")},
                occurred_at=occurred,
            )
        if name in ("unsubscribe", "group_unsubscribe", "spamreport") or _dropped_as_unsubscribed(name, item):
            consent_changes.withdraw(
                session,
                contact,
                "email",
                purposes=PURPOSES if name == "spamreport" else purposes,
                method="spam_report" if name == "spamreport" else "provider_unsubscribe",
                source=f"sendgrid:{name}",
                occurred_at=learned,
                evidence=evidence,
            )
        elif name == "group_resubscribe":
            consent_changes.regrant(
                session,
                contact,
                "email",
                method="provider_resubscribe",
                source="sendgrid:group_resubscribe",
                occurred_at=learned,
                evidence=evidence,
                notice_text=f"resubscribed to SendGrid unsubscribe group {item.get('asm_group_id')}",
                only=purposes,
            )
        if (hard_bounce or _dropped_as_bounced(name, item)) and (contact.email or "").lower() == email.strip().lower():
            reason = str(item.get("reason") or item.get("status") or "hard bounce")[:500]
            contact.email_unusable_reason = f"sendgrid {name}: {reason}"
    if message is None or message.enrollment_id is None or kind is None:
        return []
    if kind != "unsubscribed" and not changed:
        return []  # an old event arriving late tells the enrollment nothing new
    return [signal(message.enrollment_id, f"email.{kind}", message.step_id, event_id)]


def _dropped_as_bounced(name: str, item: dict[str, Any]) -> bool:
    return name == "dropped" and "bounced address" in str(item.get("reason") or "").lower()


def _dropped_as_unsubscribed(name: str, item: dict[str, Any]) -> bool:
    reason = str(item.get("reason") or "").lower()
    return name == "dropped" and ("unsubscribed address" in reason or "spam reporting address" in reason)
