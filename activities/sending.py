"""The provider-call half of the deliver activity: pacing, reconciliation and what refusals mean.

Kept apart from activities/delivery.py (which decides and claims) so each stays small:

* ``find_earlier``: before sending, an adapter that can be asked (Reconciler) is asked about a message whose
  outcome is unknown (a timeout after the request left); the console is looked up by key as before.
* ``paced``: the sender's shared pacing (store.repos.pacing): wait here when the slot is near, otherwise
  let Temporal retry the activity shortly before the slot (the message keeps its place); then, in the
  SDK's thread right before the request leaves, claim the departure so no two requests ever leave closer
  together than the sender's interval, however late a busy worker woke up.
* ``record_refusal``: a provider's refusal becomes evidence in our own ledger (COMPLIANCE.md): opted out ->
  consent withdrawn for the channel; invalid number -> address unusable; blocked -> WhatsApp consent
  withdrawn; so no cadence on any sender tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from channels.base import (
    AddressUnusable,
    Channel,
    OutcomeUnknown,
    OutgoingMessage,
    RecipientBlocked,
    RecipientOptedOut,
    SendError,
    SendReceipt,
)
from channels.blocking import DEPARTURE_GATE
from channels.ratelimit import MAX_INLINE_WAIT, SLOT_GRACE, Pace, retry_before
from store.models import PURPOSES, OutboxMessage
from store.repos import consent as consent_repo
from store.repos import contacts as contacts_repo
from store.repos import pacing as pacing_repo
from store.repos import suppressions as suppressions_repo

log = logging.getLogger("omnireach.deliver")

#: After a timeout with an unknown outcome, look the message up this much later (the provider has finished
#: with the request by then, so "not found" really means "not sent").
RECONCILE_AFTER = timedelta(seconds=30)
#: A provider back-off at least this long becomes a deferral (a durable wait in the workflow, shown by
#: `explain`) instead of an activity retry.
DEFER_AT_LEAST = timedelta(hours=1)
UNCONFIRMED = "unknown"


def message_from_row(row: OutboxMessage, template: OutgoingMessage | None = None) -> OutgoingMessage:
    """The message as the outbox recorded it (what was possibly sent), for reconciliation."""
    return OutgoingMessage(
        message_key=row.message_key,
        channel=row.channel,
        to=row.to_address,
        text=row.body or "",
        subject=row.subject,
        html=row.html,
        template_sid=template.template_sid if template else None,
    )


async def find_earlier(
    adapter: Channel, message: OutgoingMessage, *, outcome_unknown: bool, since: datetime
) -> SendReceipt | None:
    """A receipt when an earlier attempt's message reached the provider, else None (send it now).

    Returns a receipt with status "unknown" when the provider cannot be asked and the outcome is unknown: the
    message counts as sent (unconfirmed) rather than risking a second copy.
    """
    reconcile = getattr(adapter, "reconcile", None)
    if reconcile is None:
        return await adapter.lookup(message.message_key)
    if not outcome_unknown:
        return None
    try:
        found = await reconcile(message, since)
    except OutcomeUnknown as exc:
        log.warning("event=send_unconfirmed key=%s provider=%s why=%s", message.message_key, adapter.name, exc)
        return SendReceipt(adapter.name, "", UNCONFIRMED)
    log.info("event=reconciled key=%s provider=%s found=%s", message.message_key, adapter.name, found is not None)
    return found


def pace_of(adapter: Channel, message: OutgoingMessage) -> Pace | None:
    """The message's use of its sender when the adapter paces its sends, else None (sent without waiting)."""
    pacer = getattr(adapter, "pace", None)
    return pacer(message) if pacer else None


@contextlib.asynccontextmanager
async def paced(
    sessions: sessionmaker[Session], adapter: Channel, message: OutgoingMessage, clock: Callable[[], datetime]
) -> AsyncIterator[None]:
    """Around one send: wait for the message's slot, then check the departure itself (in the SDK's thread)."""
    pace = pace_of(adapter, message)
    if pace is None:
        yield
        return
    await wait_for_slot(sessions, pace, message, clock)

    def gate() -> None:
        while True:
            with sessions.begin() as session:
                wait = pacing_repo.depart(session, sender=pace.sender, interval=pace.interval, now=clock)
            if wait <= 0:
                return
            time.sleep(wait)

    token = DEPARTURE_GATE.set(gate)
    try:
        yield
    finally:
        DEPARTURE_GATE.reset(token)


async def wait_for_slot(
    sessions: sessionmaker[Session], pace: Pace, message: OutgoingMessage, clock: Callable[[], datetime]
) -> None:
    """Hold until this message's slot on its sender; far-off slots become an activity retry just before."""

    def reserve() -> datetime:
        with sessions.begin() as session:
            return pacing_repo.reserve_slot(
                session,
                message_key=message.message_key,
                sender=pace.sender,
                interval=pace.interval,
                now=clock,
                grace=SLOT_GRACE,
            )

    # In a thread: waiting for the sender's row lock (other workers hold it too) must not stall the event loop.
    slot = await asyncio.to_thread(reserve)
    now = clock()  # after the transaction: the wait is measured from now, not from before it
    wait = slot - now
    if wait > MAX_INLINE_WAIT:
        delay = retry_before(slot, now)
        log.info(
            "event=send_queued key=%s sender=%s slot_in=%.1fs", message.message_key, pace.sender, wait.total_seconds()
        )
        raise ApplicationError(
            f"queued behind sender {pace.sender}'s rate limit; its slot is in {wait.total_seconds():.0f}s",
            type="rate_limit_queued",
            next_retry_delay=delay,
        )
    if wait > timedelta(0):
        await _sleep(wait.total_seconds())


async def _sleep(seconds: float) -> None:
    """Sleep, heartbeating when inside an activity so a cancellation is noticed."""
    remaining = seconds
    while remaining > 0:
        step = min(remaining, 5.0)
        await asyncio.sleep(step)
        remaining -= step
        if activity.in_activity() and remaining > 0:
            activity.heartbeat()


def release_slot(session: Session, message_key: str) -> None:
    pacing_repo.release_slot(session, message_key)


def evidence(exc: SendError, message: OutgoingMessage, provider: str) -> dict:
    """The provider error as consent / address evidence."""
    return {
        "provider": provider,
        "provider_error_code": getattr(exc, "provider_code", None),
        "error": str(exc),
        "message_key": message.message_key,
    }


def record_refusal(
    session: Session, *, contact_id: str, message: OutgoingMessage, provider: str, exc: SendError, now: datetime
) -> str:
    """Write what a refusal means into our ledger; returns a short description of the effect (for the log)."""
    proof = evidence(exc, message, provider)
    if isinstance(exc, RecipientBlocked) and message.channel == "whatsapp":
        suppressions_repo.suppress_whatsapp_block(session, message.to, source=f"{provider}: {exc}")
        return "whatsapp suppressed (the person blocked us)"
    if isinstance(exc, RecipientOptedOut | RecipientBlocked):
        for purpose in PURPOSES:  # an opt-out at the provider covers every purpose on that channel
            consent_repo.append_consent(
                session,
                contact_id=contact_id,
                channel=message.channel,
                purpose=purpose,
                status="withdrawn",
                occurred_at=now,
                address=message.to,
                method="provider_opt_out" if isinstance(exc, RecipientOptedOut) else "provider_blocked",
                source=provider,
                notice_text=None,
                lawful_basis="consent",
                evidence=proof,
            )
        return f"{message.channel} consent withdrawn (all purposes)"
    if isinstance(exc, AddressUnusable):
        contact = contacts_repo.lock_contact(session, contact_id)
        if contact is not None:
            reason = f"{provider}: {exc}"[:500]
            if message.channel == "email":
                contact.email_unusable_reason = reason
            else:
                contact.phone_unusable_reason = reason
            session.flush()
        return "address marked unusable"
    return ""
