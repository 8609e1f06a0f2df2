"""Send slots per provider sender, shared by every worker process through the database.

A sender's row is locked while a slot is taken (PostgreSQL ``FOR UPDATE``; SQLite transactions already
hold the write lock), so two workers never get the same slot. A message's slot is remembered under its
outbox key: when its activity comes back (it was queued far behind a burst) it keeps its place, unless it
missed the slot by more than ``grace`` (a crashed or late worker), then it takes a new one at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from store.pacing_models import SenderPacing, SendSlot
from store.repos._common import insert_or_get


def _lock_sender(session: Session, sender: str, now: datetime) -> SenderPacing:
    query = select(SenderPacing).where(SenderPacing.sender == sender).with_for_update()
    row = session.scalars(query.execution_options(populate_existing=True)).one_or_none()
    if row is not None:
        return row
    insert_or_get(session, SenderPacing(sender=sender, next_free_at=now), lambda: session.get(SenderPacing, sender))
    return session.scalars(query.execution_options(populate_existing=True)).one()


def reserve_slot(
    session: Session,
    *,
    message_key: str,
    sender: str,
    interval: timedelta,
    now: datetime | Callable[[], datetime],
    grace: timedelta,
) -> datetime:
    """The instant this message may go to ``sender``; it then holds the sender for ``interval``.

    ``now`` may be a clock: it is then read once the sender's row is locked, so time spent waiting for the
    lock does not put the slot in the past.
    """
    clock = now if callable(now) else (lambda: now)
    existing = session.get(SendSlot, message_key)
    if existing is not None and existing.sender == sender and clock() - existing.slot_at <= grace:
        return existing.slot_at
    pacing = _lock_sender(session, sender, clock())
    slot = max(clock(), pacing.next_free_at)
    pacing.next_free_at = slot + interval
    if existing is None:
        session.add(SendSlot(message_key=message_key, sender=sender, slot_at=slot))
    else:
        existing.sender, existing.slot_at = sender, slot
    session.flush()
    return slot


def depart(session: Session, *, sender: str, interval: timedelta, now: Callable[[], datetime]) -> float:
    """Claim the departure of one request now: 0.0, or the seconds to wait before asking again.

    Slots order the queue; this is the exact check at the moment of sending, so two requests never leave
    closer together than ``interval`` however late either worker woke up.
    """
    pacing = _lock_sender(session, sender, now())
    moment = now()
    if pacing.departs_after is not None and moment < pacing.departs_after:
        return (pacing.departs_after - moment).total_seconds()
    pacing.departs_after = moment + interval
    session.flush()
    return 0.0


def release_slot(session: Session, message_key: str) -> None:
    """Forget a message's slot once it was used (or will never be)."""
    session.execute(delete(SendSlot).where(SendSlot.message_key == message_key))
