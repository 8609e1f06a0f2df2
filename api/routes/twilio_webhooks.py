"""Twilio callbacks: inbound SMS / WhatsApp (opt-out keywords, replies) and message status.

POST /webhooks/twilio/inbound: signature verified; the STOP family (and free-text opt-outs) withdraws that
channel's consent for every purpose at once; START / UNSTOP / YES re-grant what was withdrawn; HELP / INFO
get the help text; anything else is a ``replied`` event signalled to the contact's running enrollments.
The one confirmation is the TwiML answer. The last inbound time opens the WhatsApp 24h window. A repeated
MessageSid has no second effect and gets no second confirmation.

POST /webhooks/twilio/status: signature verified; deduplicated by (MessageSid, status); the outbox status
only moves forward; 21610 (unsubscribed at Twilio) withdraws consent, 21211 / 21614 mark the number
unusable, 63014 (blocked on WhatsApp) suppresses the number on WhatsApp only.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from fastapi import APIRouter, Request, Response
from sqlalchemy import Row, select
from sqlalchemy.orm import Session

from api.deps import ServicesDep
from api.group_commit import group_commit
from api.problems import ProblemError, problem_responses
from api.webhook_support import deliver_signals, signal, twilio_params
from core.addresses import AddressError, normalize_phone
from core.optout import Intent, classify, reply_text
from core.settings import Settings
from store.models import Contact, OutboxMessage, Suppression
from store.repos import consent_changes, status_batches
from store.repos import events as events_repo
from store.repos import inbound as inbound_repo
from store.repos import outbox as outbox_repo
from store.repos.data_rights import erased_address
from store.repos.enrollments import running_enrollments_for_contact
from store.repos.events import record_event
from store.repos.suppressions import suppress_once, suppress_whatsapp_block
from store.types import utcnow

router = APIRouter(prefix="/webhooks/twilio", tags=["provider webhooks"])
log = logging.getLogger("omnireach.webhooks")
TWIML = "application/xml"
UNKNOWN_SENDER_LIST = "inbound-stop"  # a STOP from a number we hold no contact for: remembered for later imports
# Twilio MessageStatus -> (outbox status, event kind signalled to the enrollment)
STATUS_MAP = {
    "sent": ("sent", None),
    "delivered": ("delivered", "delivered"),
    "read": ("opened", "opened"),
    "undelivered": ("undelivered", "bounced"),
    "failed": ("undelivered", "bounced"),
}
# While status callbacks keep coming, a batch waits this long for more (``GroupCommit``): batches grew from about
# 3 callbacks to 6 or 7 in the bench (docs/benchmarks.md, (c)), and Twilio does not wait on the answer.
STATUS_BATCH_DELAY = 0.02
UNSUBSCRIBED, INVALID_NUMBER, NOT_MOBILE, WHATSAPP_BLOCKED = "21610", "21211", "21614", "63014"


def twiml(message: str | None) -> Response:
    inner = f"<Message>{escape(message)}</Message>" if message else ""
    return Response(f'<?xml version="1.0" encoding="UTF-8"?><Response>{inner}</Response>', media_type=TWIML)


@dataclass
class _Outcome:
    receipt_id: int = 0
    reply: str | None = None
    signals: list[dict] = field(default_factory=list)
    duplicate: bool = False
    intent: str = "other"
    contacts: int = 0


def _sender(raw: str) -> tuple[str, str]:
    """(channel, E.164) of a Twilio ``From``: ``whatsapp:+62...`` is WhatsApp, anything else SMS."""
    channel = "whatsapp" if raw.strip().lower().startswith("whatsapp:") else "sms"
    number = raw.strip()[len("whatsapp:") :] if channel == "whatsapp" else raw.strip()
    return channel, normalize_phone(number, None)


@router.post(
    "/inbound",
    summary="Inbound SMS / WhatsApp (Twilio)",
    response_class=Response,
    responses={200: {"content": {TWIML: {}}, "description": "TwiML: the one confirmation, or nothing"}}
    | problem_responses(403, 413, 422, 503),
)
async def inbound(request: Request, services: ServicesDep) -> Response:
    """Verifies X-Twilio-Signature, applies opt-out / opt-in keywords, records the reply."""
    form = dict(await twilio_params(request, services))
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not sid:
        raise ProblemError.invalid("MessageSid", "is required (Twilio sends it with every inbound message)")
    try:
        channel, address = _sender(form.get("From", ""))
    except AddressError as exc:
        raise ProblemError.invalid("From", str(exc)) from None
    body = form.get("Body", "")
    settings = services.settings
    outcome = await services.db.run(lambda s: _apply_inbound(s, settings, sid, channel, address, form.get("To"), body))
    log.info(
        "event=inbound_message sid=%s channel=%s intent=%s contacts=%d duplicate=%s",
        sid,
        channel,
        outcome.intent,
        outcome.contacts,
        outcome.duplicate,
    )
    if outcome.signals:
        await deliver_signals(services, {outcome.receipt_id: outcome.signals})
    return twiml(outcome.reply)


def _contacts_for(session: Session, channel: str, address: str) -> list[Contact]:
    field_ = Contact.whatsapp if channel == "whatsapp" else Contact.phone
    live = Contact.erased_at.is_(None)
    found = list(session.scalars(select(Contact).where(field_ == address, live).order_by(Contact.created_at)))
    if not found and channel == "whatsapp":  # many contacts only have a phone, used for WhatsApp too
        by_phone = select(Contact).where(Contact.phone == address, live).order_by(Contact.created_at)
        found = list(session.scalars(by_phone))
    return found


def _should_reply(intent: Intent, channel: str, settings: Settings) -> bool:
    """Twilio itself answers its standard SMS keywords when its opt-out handling is on: never confirm twice."""
    return not (channel == "sms" and settings.twilio_handles_keywords and intent.standard_keyword)


def _apply_inbound(
    session: Session, settings: Settings, sid: str, channel: str, address: str, to: str | None, body: str
) -> _Outcome:
    receipt, created = inbound_repo.claim_receipt(session, "twilio", "inbound", f"inbound:{sid}")
    if not created:
        owed = list(receipt.pending_signals or []) if receipt.signalled_at is None else []
        return _Outcome(receipt.id, None, owed, duplicate=True)
    now = utcnow()
    contacts = _contacts_for(session, channel, address)
    if not contacts and erased_address(session, salt=settings.secret_key, phone=address) is not None:
        # An erased person wrote to us: they are blocked forever already; keep nothing about them.
        inbound_repo.record_inbound(
            session,
            provider="twilio",
            provider_message_id=sid,
            channel=channel,
            from_address=None,
            to_address=to,
            body=None,
            intent=classify(body).kind,
            keyword=None,
            contact_ids=[],
            received_at=now,
        )
        inbound_repo.owe_signals(session, receipt, [])
        return _Outcome(receipt.id, None, [], intent="erased")
    opted_out = any(consent_changes.opted_out(session, c, channel) for c in contacts)
    intent = classify(body, opted_out=opted_out)
    evidence = {
        "provider": "twilio",
        "message_sid": sid,
        "from": address,
        "to": to,
        "body": body[:1600],
        "keyword": intent.keyword,
        "free_text": intent.free_text,
    }
    source = f"twilio:{channel}:{sid}"
    for contact in contacts:
        if contact.last_inbound_at is None or contact.last_inbound_at < now:
            contact.last_inbound_at = now
    reply = None
    locale = contacts[0].locale if contacts else None
    signals: list[dict] = []
    if intent.kind == "stop":
        method = "keyword" if intent.keyword else "free_text_opt_out"
        for contact in contacts:
            consent_changes.withdraw(
                session, contact, channel, method=method, source=source, occurred_at=now, evidence=evidence
            )
        if not contacts:
            _remember_unknown_stop(session, address, now)
    elif intent.kind == "start":
        text = reply_text(intent, sender_name=settings.sender_name, locale=locale)
        for contact in contacts:
            consent_changes.regrant(
                session,
                contact,
                channel,
                method="keyword",
                source=source,
                occurred_at=now,
                evidence=evidence,
                notice_text=text,
            )
        _forget_unknown_stop(session, address)  # an opt-in from the number lifts an earlier anonymous STOP
    elif intent.kind == "other":
        signals = _replied(session, contacts, channel, sid, now)
    if intent.kind != "other" and _should_reply(intent, channel, settings):
        reply = reply_text(intent, sender_name=settings.sender_name, help_text=settings.help_text, locale=locale)
    inbound_repo.record_inbound(
        session,
        provider="twilio",
        provider_message_id=sid,
        channel=channel,
        from_address=address,
        to_address=to,
        body=body,
        intent=intent.kind,
        keyword=intent.keyword,
        contact_ids=[c.id for c in contacts],
        reply=reply,
        received_at=now,
    )
    inbound_repo.owe_signals(session, receipt, signals)
    return _Outcome(receipt.id, reply, signals, intent=intent.kind, contacts=len(contacts))


def _replied(session: Session, contacts: list[Contact], channel: str, sid: str, now) -> list[dict]:
    """A ``{channel}.replied`` event per contact, for the step whose message they answered when we know it."""
    name = f"{channel}.replied"
    signals = []
    for contact in contacts:
        last = session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.contact_id == contact.id,
                OutboxMessage.channel == channel,
                OutboxMessage.status.not_in(outbox_repo.NOT_SENT_STATUSES),
            )
            .order_by(OutboxMessage.sent_at.desc(), OutboxMessage.id.desc())
            .limit(1)
        ).first()
        event_id = f"twilio:{sid}"
        record_event(
            session,
            contact_id=contact.id,
            name=name,
            idempotency_key=f"{event_id}:{contact.id}",
            enrollment_id=last.enrollment_id if last else None,
            step_id=last.step_id if last else None,
            message_key=last.message_key if last else None,
            payload={"message_sid": sid},
            occurred_at=now,
        )
        for enrollment in running_enrollments_for_contact(session, contact.id):
            step = last.step_id if last is not None and last.enrollment_id == enrollment.id else None
            signals.append(signal(enrollment.id, name, step, event_id))
    return signals


def _remember_unknown_stop(session: Session, address: str, now) -> None:
    suppress_once(
        session,
        kind="list",
        list_name=UNKNOWN_SENDER_LIST,
        channel_scope="phone",
        value=address,
        reason=f"STOP received {now.date()} from a number with no contact",
    )


def _forget_unknown_stop(session: Session, address: str) -> None:
    for row in _unknown_stops(session, address):
        session.delete(row)
    session.flush()


def _unknown_stops(session: Session, address: str) -> list[Suppression]:
    return list(
        session.scalars(
            select(Suppression).where(
                Suppression.kind == "list", Suppression.list_name == UNKNOWN_SENDER_LIST, Suppression.value == address
            )
        )
    )


# ---- status callbacks -----------------------------------------------------------------------------------
@router.post(
    "/status",
    summary="Message status callback (Twilio)",
    status_code=204,
    response_class=Response,
    responses=problem_responses(403, 413, 422, 503),
)
async def status_callback(request: Request, services: ServicesDep) -> Response:
    """Verifies X-Twilio-Signature; moves the message's status forward only; applies provider opt-outs."""
    form = dict(await twilio_params(request, services))
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    if not sid or not status:
        raise ProblemError.invalid("MessageSid", "MessageSid and MessageStatus are required")
    error = (form.get("ErrorCode") or "").strip()
    statuses = group_commit(services.db, "twilio-status", _apply_statuses, batch_delay=STATUS_BATCH_DELAY)
    outcome = await statuses.submit(_Status(sid, status, error))
    if outcome.signals:
        await deliver_signals(services, {outcome.receipt_id: outcome.signals})
    return Response(status_code=204)


@dataclass(frozen=True)
class _Status:
    sid: str
    status: str
    error: str

    @property
    def key(self) -> str:
        return f"status:{self.sid}:{self.status}"


def _apply_statuses(session: Session, items: list[_Status]) -> list[_Outcome]:
    """Status callbacks of concurrent requests in one transaction, each as if applied alone in arrival order:
    a (MessageSid, status) seen before changes nothing and gets the signals its receipt still owes; a new one
    moves the outbox status (forward only), records the event, applies provider opt-outs and owes signals.

    Two statements per batch on PostgreSQL (``store.repos.status_batches``): lock the outbox rows, then claim
    the receipts and write the statuses and events together.
    """
    first: dict[str, _Status] = {}  # the first callback of each key, in arrival order
    for item in items:
        first.setdefault(item.key, item)
    # Rows first, each batch in id order: a batch sharing a message with another waits for it here, before it
    # claims any receipt, so two batches never wait for each other in a circle.
    rows = status_batches.lock_outbox_rows(session, {item.sid for item in items})
    plan = _plan(first.values(), rows)
    keys = sorted(first)  # a fixed order for the unique-index locks too
    owed = {key: plan.owed[key] for key in keys}
    created = status_batches.claim_and_apply(session, "twilio", "status", owed, plan.changes, plan.events)
    if len(created) < len(keys):  # some were applied before (or just now by another transaction): not again
        replan = _plan([item for key, item in first.items() if key in created], rows)
        inbound_repo.owe_signals_many(
            session, {created[key]: replan.owed[key] for key in created if replan.owed[key] != plan.owed[key]}
        )
        outbox_repo.set_outbox_statuses(session, replan.changes)
        events_repo.record_events_once(session, replan.events)
        plan = replan
    for key in created:
        item = first[key]
        if item.error and item.sid in rows and item.status in STATUS_MAP:
            _provider_error(session, rows[item.sid], item.sid, item.error)
    earlier = inbound_repo.receipts_by_key(session, "twilio", [key for key in keys if key not in created])
    outcomes = []
    for item in items:
        if item.key in created:  # a repeat within the batch sends the same signals again: harmless
            duplicate = first[item.key] is not item
            outcomes.append(_Outcome(created[item.key], None, plan.owed[item.key], duplicate=duplicate))
            continue
        receipt = earlier.get(item.key)
        if receipt is None:
            raise RuntimeError(f"webhook receipt {item.key!r} neither inserted nor found")
        pending = list(receipt.pending_signals or []) if receipt.signalled_at is None else []
        outcomes.append(_Outcome(receipt.id, None, pending, duplicate=True))
    return outcomes


@dataclass
class _Plan:
    owed: dict[str, list[dict]] = field(default_factory=dict)  # receipt key -> signals
    changes: dict[int, tuple[str, str | None]] = field(default_factory=dict)  # outbox id -> (status, error)
    events: list[dict] = field(default_factory=list)


def _plan(fresh: Iterable[_Status], rows: dict[str, Row]) -> _Plan:
    """What the callbacks do, applied one after the other to the locked rows (no statement runs here)."""
    plan = _Plan()
    status_now = {row.id: row.status for row in rows.values()}
    for item in fresh:
        row = rows.get(item.sid)
        signals: list[dict] = []
        plan.owed[item.key] = signals
        if row is None or item.status not in STATUS_MAP:
            continue
        new_status, kind = STATUS_MAP[item.status]
        changed = outbox_repo.STATUS_RANK[new_status] > outbox_repo.STATUS_RANK.get(status_now[row.id], 0)
        if changed:  # the error is written with a change only, as advance_outbox_status does
            status_now[row.id] = new_status
            error = f"twilio {item.error}" if item.error else plan.changes.get(row.id, (None, None))[1]
            plan.changes[row.id] = (new_status, error)
        if kind is None:
            continue
        event_id = f"twilio:{item.sid}:{item.status}"
        plan.events.append(
            {
                "contact_id": row.contact_id,
                "name": f"{row.channel}.{kind}",
                "idempotency_key": event_id,
                "enrollment_id": row.enrollment_id,
                "step_id": row.step_id,
                "message_key": row.message_key,
                "payload": {"message_sid": item.sid, "status": item.status, "error_code": item.error or None},
            }
        )
        if changed and row.enrollment_id:
            signals.append(signal(row.enrollment_id, f"{row.channel}.{kind}", row.step_id, event_id))
    return plan


def _provider_error(session: Session, row: OutboxMessage | Row, sid: str, error: str) -> None:
    contact = session.get(Contact, row.contact_id)
    if contact is None or contact.erased_at is not None:
        return
    evidence = {"provider": "twilio", "message_sid": sid, "error_code": error}
    if error == WHATSAPP_BLOCKED and row.channel == "whatsapp":
        suppress_whatsapp_block(session, row.to_address, source=f"twilio error {error}, message {sid}")
    elif error == UNSUBSCRIBED:
        consent_changes.withdraw(
            session,
            contact,
            row.channel,
            method="provider_opt_out",
            source=f"twilio:error:{error}",
            occurred_at=utcnow(),
            evidence=evidence,
        )
    elif error in (INVALID_NUMBER, NOT_MOBILE):
        contact.phone_unusable_reason = f"twilio {error}: invalid or not a mobile number ({row.to_address})"
