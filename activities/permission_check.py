"""Gather, inside the caller's transaction, everything the send-time rules need, and ask core.

Used by the deliver activity for every automated send, and by call tasks at claim and at dial, so one
place decides whether a contact may be reached on a channel for a purpose right now.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from core.permission import SendFacts, Verdict, decide, local_day_bounds, local_week_bounds
from core.timewindow import DailyWindow, resolve_timezone
from store.models import Contact
from store.repos import consent as consent_repo
from store.repos import outbox as outbox_repo
from store.repos import suppressions as suppression_repo

ADDRESS_FIELD = {"email": "email", "sms": "phone", "voice": "phone", "whatsapp": "whatsapp"}


@dataclass(frozen=True)
class Reachability:
    """What a caller asks: this channel, for this purpose, within these windows and caps."""

    channel: str
    purpose: str
    windows: tuple[DailyWindow, ...] = ()
    per_day: int | None = None
    per_week: int | None = None


def check_permission(session: Session, contact: Contact, ask: Reachability, now: datetime, *, salt: str) -> Verdict:
    """The verdict for reaching `contact` now; reads the ledger, suppressions and sends in `session`."""
    address = getattr(contact, ADDRESS_FIELD[ask.channel])
    unusable = contact.email_unusable_reason if ask.channel == "email" else contact.phone_unusable_reason
    consent = consent_repo.current_consent(session, contact.id, ask.channel, ask.purpose)
    suppression = (
        suppression_repo.find_suppression(session, channel=ask.channel, address=address, salt=salt) if address else None
    )
    zone = resolve_timezone(contact.timezone, contact.country)
    sent_today = sent_week = 0
    if zone is not None and (ask.per_day or ask.per_week):
        sent_today = outbox_repo.count_sends(session, contact.id, *local_day_bounds(now, zone))
        sent_week = outbox_repo.count_sends(session, contact.id, *local_week_bounds(now, zone))
    return decide(
        SendFacts(
            channel=ask.channel,
            purpose=ask.purpose,
            address=address,
            address_unusable=unusable,
            consent_status=consent.status,
            suppressed=suppression.reason if suppression else None,
            now=now,
            zone=zone,
            country=contact.country,
            windows=ask.windows,
            per_day=ask.per_day,
            per_week=ask.per_week,
            sent_today=sent_today,
            sent_this_week=sent_week,
        )
    )
