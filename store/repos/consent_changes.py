"""Consent changes that come from the person's own action on a channel: STOP, START, unsubscribe links,
provider opt-outs. Each appends evidence to the ledger (never updates it)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from store.models import PURPOSES, Contact
from store.repos.consent import append_consent, consent_history, current_consent

ADDRESS_FIELD = {"email": "email", "sms": "phone", "voice": "phone", "whatsapp": "whatsapp"}


def withdraw(
    session: Session,
    contact: Contact,
    channel: str,
    *,
    purposes: Iterable[str] = PURPOSES,
    method: str,
    source: str,
    occurred_at: datetime,
    evidence: dict[str, Any],
    notice_text: str | None = None,
    ip: str | None = None,
    agent_id: str | None = None,
    only_if_granted: bool = False,
) -> list[str]:
    """Append a withdrawal for each purpose; returns the purposes recorded.

    Without ``only_if_granted`` every purpose gets a withdrawal, even one never granted: an objection to
    direct marketing stands for the future too (a later grant must be new, affirmative evidence).
    """
    recorded = []
    for purpose in purposes:
        state = current_consent(session, contact.id, channel, purpose)
        if state.status == "withdrawn" or (only_if_granted and not state.granted):
            continue
        append_consent(
            session,
            contact_id=contact.id,
            channel=channel,
            purpose=purpose,
            status="withdrawn",
            occurred_at=occurred_at,
            address=getattr(contact, ADDRESS_FIELD[channel]),
            method=method,
            source=source,
            notice_text=notice_text,
            ip=ip,
            agent_id=agent_id,
            evidence=evidence,
        )
        recorded.append(purpose)
    return recorded


def opted_out(session: Session, contact: Contact, channel: str) -> bool:
    """Whether some purpose once granted on ``channel`` is now withdrawn (what START / YES would restore)."""
    return bool(_restorable(session, contact, channel))


def _restorable(session: Session, contact: Contact, channel: str) -> list[str]:
    granted_once = {
        r.purpose for r in consent_history(session, contact.id) if r.channel == channel and r.status == "granted"
    }
    return [
        p
        for p in PURPOSES
        if p in granted_once and current_consent(session, contact.id, channel, p).status == "withdrawn"
    ]


def regrant(
    session: Session,
    contact: Contact,
    channel: str,
    *,
    method: str,
    source: str,
    occurred_at: datetime,
    evidence: dict[str, Any],
    notice_text: str,
    only: Iterable[str] | None = None,
) -> list[str]:
    """Re-grant the purposes the person had granted on ``channel`` and later withdrew (START, UNSTOP, YES;
    ``only``: restrict to these purposes, e.g. one email group).

    A purpose never granted is not created by a keyword: resuming needs something to resume.
    """
    allowed = set(only) if only is not None else set(PURPOSES)
    purposes = [p for p in _restorable(session, contact, channel) if p in allowed]
    for purpose in purposes:
        append_consent(
            session,
            contact_id=contact.id,
            channel=channel,
            purpose=purpose,
            status="granted",
            occurred_at=occurred_at,
            address=getattr(contact, ADDRESS_FIELD[channel]),
            method=method,
            source=source,
            notice_text=notice_text,
            lawful_basis="consent",
            evidence=evidence,
        )
    return purposes
