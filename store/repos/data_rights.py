"""Access and erasure (GDPR art. 15 / 17, UU PDP): everything held about a contact, and forgetting them.

Erasure keeps only what stops us contacting the person again and proves we honoured the request:
- salted HMAC hashes of their addresses as ``erasure`` suppressions (matched at every send, import and
  enrollment; the salt is the secret key, so a hash cannot be reversed by someone without it);
- one ``erasure_requests`` row: when, who asked, those hashes, the enrollments stopped, and a minimised
  summary of the consent ledger (channel, purpose, status, method, timestamps, notice version, lawful
  basis and a SHA-256 digest of each original record: proof of what consent existed and that it ended,
  without the address, IP, agent or free text).
The consent rows themselves are deleted (the ledger's DELETE trigger allows it only for a contact with an
erasure request); messages, events and inbound texts are blanked in place so counts and reports still add up.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.orm import Session

from store.models import Base, ConsentRecord, Contact, Enrollment, Event, OutboxMessage, Suppression
from store.permission_models import ErasureRequest, InboundMessage
from store.repos import dnc as dnc_repo
from store.repos.consent import consent_history
from store.repos.decisions import decisions_for_contact
from store.repos.events import events_for_contact
from store.repos.inbound import inbound_from
from store.repos.outbox import messages_for_contact
from store.repos.suppressions import add_suppression, hash_address, normalise_address

ERASED_ADDRESS = "[erased]"
ERASED_PREFIX = "erased:"
_SCOPE = {"email": "email", "phone": "phone", "whatsapp": "phone"}
_PLAIN_KINDS = ("global", "list", "company_dnc")  # our own lists: the erasure hash replaces their plain entry
_CONTACT_FIELDS = (
    "id",
    "external_id",
    "name",
    "email",
    "phone",
    "whatsapp",
    "country",
    "timezone",
    "locale",
    "attributes",
    "email_unusable_reason",
    "phone_unusable_reason",
    "last_inbound_at",
    "created_at",
    "updated_at",
    "erased_at",
)


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def erased_external_id(external_id: str, salt: str) -> str:
    """What an erased contact's external id becomes: a keyed hash, so the same id is recognised, not kept."""
    return ERASED_PREFIX + hmac.new(salt.encode(), external_id.encode(), hashlib.sha256).hexdigest()[:40]


def find_erasure(session: Session, contact_id: str) -> ErasureRequest | None:
    return session.scalars(select(ErasureRequest).where(ErasureRequest.contact_id == contact_id)).one_or_none()


_SUPPRESSIONS = Suppression.__table__.c
# One query for all of them, built once as a Core statement: this guard runs on every enrollment, the API's
# busiest write, and building the statement per call cost more than running it.
_ERASED_HASHES = (
    select(_SUPPRESSIONS.value_hash, func.min(_SUPPRESSIONS.created_at))
    .where(_SUPPRESSIONS.kind == "erasure", _SUPPRESSIONS.value_hash.in_(bindparam("hashes", expanding=True)))
    .group_by(_SUPPRESSIONS.value_hash)
)


def erased_address(session: Session, *, salt: str, **addresses: str | None) -> tuple[str, datetime] | None:
    """The first of ``addresses`` (field name -> address) that belongs to an erased person, and when it was
    erased; None when none does. Used to refuse a later import or enrollment of the same phone or email."""
    hashes = address_hashes(salt, **addresses)
    return first_erased(hashes, erasure_times(session, hashes.values()))


def address_hashes(salt: str, **addresses: str | None) -> dict[str, str]:
    """Field name -> the salted hash an erasure keeps of that address (the fields that have one)."""
    return {field: hash_address(address, salt) for field, address in addresses.items() if address}


def erasure_times(session: Session, hashes: Iterable[str]) -> dict[str, datetime]:
    """When each of these address hashes was first erased, for those that were; one query for any number."""
    wanted = sorted(set(hashes))
    if not wanted:
        return {}
    return dict(session.execute(_ERASED_HASHES, {"hashes": wanted}).all())


def first_erased(hashes: dict[str, str], times: dict[str, datetime]) -> tuple[str, datetime] | None:
    """The first field (of ``address_hashes``) whose address was erased, and when; None when none was."""
    return next(((field, times[digest]) for field, digest in hashes.items() if digest in times), None)


def erased_by_external_id(session: Session, external_id: str, *, salt: str) -> Contact | None:
    return session.scalars(
        select(Contact).where(Contact.external_id == erased_external_id(external_id, salt))
    ).one_or_none()


# ---- access ----------------------------------------------------------------------------------------------
def export_contact(session: Session, contact: Contact, *, salt: str) -> dict[str, Any]:
    """Everything held about the contact, as JSON-ready data."""
    addresses = [a for a in (contact.email, contact.phone, contact.whatsapp) if a]
    erasure = find_erasure(session, contact.id)
    enrollments = session.scalars(
        select(Enrollment).where(Enrollment.contact_id == contact.id).order_by(Enrollment.started_at)
    ).all()
    return {
        "contact": {name: _iso(getattr(contact, name)) for name in _CONTACT_FIELDS},
        "consents": [_consent(r) for r in consent_history(session, contact.id)],
        "suppressions": [
            {
                "kind": s.kind,
                "list": s.list_name,
                "country": s.country,
                "scope": s.channel_scope,
                "value": s.value,
                "hashed": s.value is None,
                "reason": s.reason,
                "as_of": _iso(s.as_of),
                "since": _iso(s.created_at),
            }
            for s in dnc_repo.suppressions_for(session, addresses, salt=salt)
        ],
        "enrollments": [
            {
                "id": e.id,
                "cadence_id": e.cadence_id,
                "status": e.status,
                "started_at": _iso(e.started_at),
                "ended_at": _iso(e.ended_at),
                "end_reason": e.end_reason,
            }
            for e in enrollments
        ],
        "messages": [
            {
                "message_key": m.message_key,
                "channel": m.channel,
                "to": m.to_address,
                "subject": m.subject,
                "body": m.body,
                "status": m.status,
                "cadence_id": m.cadence_id,
                "step_id": m.step_id,
                "sent_at": _iso(m.sent_at),
            }
            for m in messages_for_contact(session, contact.id)
        ],
        "inbound_messages": [
            {
                "channel": m.channel,
                "from": m.from_address,
                "body": m.body,
                "intent": m.intent,
                "our_reply": m.reply,
                "received_at": _iso(m.received_at),
            }
            for m in inbound_from(session, [contact.phone, contact.whatsapp])
        ],
        "events": [
            {"name": e.name, "step_id": e.step_id, "payload": e.payload, "occurred_at": _iso(e.occurred_at)}
            for e in events_for_contact(session, contact.id)
        ],
        "decisions": [
            {
                "decision": d.decision,
                "reason": d.reason,
                "detail": d.detail,
                "channel": d.channel,
                "step_id": d.step_id,
                "until": _iso(d.until),
                "decided_at": _iso(d.decided_at),
            }
            for d in decisions_for_contact(session, contact.id)
        ],
        "erasure": None
        if erasure is None
        else {
            "requested_at": _iso(erasure.requested_at),
            "consent_summary": erasure.consent_summary,
            "enrollments_stopped": erasure.enrollments_stopped,
        },
    }


def _consent(r: ConsentRecord) -> dict[str, Any]:
    return {
        "id": r.id,
        "channel": r.channel,
        "purpose": r.purpose,
        "status": r.status,
        "address": r.address,
        "method": r.method,
        "source": r.source,
        "notice_text": r.notice_text,
        "notice_version": r.notice_version,
        "lawful_basis": r.lawful_basis,
        "ip": r.ip,
        "agent_id": r.agent_id,
        "occurred_at": _iso(r.occurred_at),
        "source_timezone": r.source_timezone,
        "recorded_at": _iso(r.recorded_at),
        "evidence": r.evidence,
    }


def _summary(r: ConsentRecord) -> dict[str, Any]:
    full = json.dumps(_consent(r), sort_keys=True, default=str, separators=(",", ":"))
    return {
        "channel": r.channel,
        "purpose": r.purpose,
        "status": r.status,
        "method": r.method,
        "notice_version": r.notice_version,
        "lawful_basis": r.lawful_basis,
        "occurred_at": _iso(r.occurred_at),
        "recorded_at": _iso(r.recorded_at),
        "record_sha256": hashlib.sha256(full.encode()).hexdigest(),
    }


# ---- erasure ---------------------------------------------------------------------------------------------
def erase_contact(
    session: Session,
    contact: Contact,
    *,
    salt: str,
    now: datetime,
    requested_by: str | None,
    enrollments_stopped: Iterable[str] = (),
) -> ErasureRequest:
    """Forget the contact (see the module docstring); idempotent: a second call returns the first request."""
    existing = find_erasure(session, contact.id)
    if existing is not None:
        return existing
    addresses = {f: normalise_address(a) for f in ("email", "phone", "whatsapp") if (a := getattr(contact, f))}
    hashes = {(f, hash_address(a, salt)) for f, a in addresses.items()}
    request = ErasureRequest(
        contact_id=contact.id,
        requested_at=now,
        requested_by=requested_by,
        address_hashes=sorted({h for _, h in hashes}),
        consent_summary=[_summary(r) for r in consent_history(session, contact.id)],
        enrollments_stopped=sorted(enrollments_stopped),
    )
    session.add(request)
    session.flush()  # the ledger's DELETE trigger looks for this row
    for field, digest in sorted(hashes):
        scope = _SCOPE[field]
        known = session.scalars(
            select(Suppression).where(
                Suppression.kind == "erasure", Suppression.value_hash == digest, Suppression.channel_scope == scope
            )
        ).first()
        if known is None:
            add_suppression(
                session, kind="erasure", channel_scope=scope, value_hash=digest, reason=f"erasure {now.date()}"
            )
    if addresses:
        session.execute(
            delete(Suppression).where(
                Suppression.kind.in_(_PLAIN_KINDS), Suppression.value.in_(list(addresses.values()))
            )
        )
        session.execute(
            update(InboundMessage)
            .where(InboundMessage.from_address.in_([a for f, a in addresses.items() if f != "email"]))
            .values(from_address=None, body=None, reply=None)
            .execution_options(synchronize_session=False)
        )
    session.execute(delete(ConsentRecord).where(ConsentRecord.contact_id == contact.id))
    session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.contact_id == contact.id)
        .values(to_address=ERASED_ADDRESS, subject=None, body=None, html=None, error=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(Event)
        .where(Event.contact_id == contact.id)
        .values(payload={})
        .execution_options(synchronize_session=False)
    )
    _scrub_other_areas(session, contact.id)
    contact.external_id = erased_external_id(contact.external_id, salt)
    for name in ("name", "email", "phone", "whatsapp", "country", "timezone", "locale"):
        setattr(contact, name, None)
    contact.attributes = {}
    contact.email_unusable_reason = contact.phone_unusable_reason = None
    contact.last_inbound_at = None
    contact.erased_at = now
    session.flush()
    return request


# Free text other areas keep about a contact: (table, how rows are tied to the contact, columns to blank).
# Tables that do not exist in this build are skipped, so the list can name them ahead of time.
_OTHER_AREAS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("call_tasks", "contact_id", {"script_text": None, "reason": None}),
    ("call_dispositions", "task_id IN call_tasks", {"note": None, "reason": None}),
)


def _scrub_other_areas(session: Session, contact_id: str) -> None:
    tables = Base.metadata.tables
    for name, link, values in _OTHER_AREAS:
        table = tables.get(name)
        if table is None:
            continue
        values = {k: v for k, v in values.items() if k in table.c}
        if not values:
            continue
        if link == "contact_id":
            where = table.c.contact_id == contact_id
        else:
            tasks = tables.get("call_tasks")
            if tasks is None or "task_id" not in table.c:
                continue
            where = table.c.task_id.in_(select(tasks.c.id).where(tasks.c.contact_id == contact_id))
        session.execute(update(table).where(where).values(**values))
