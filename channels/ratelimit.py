"""Per-sender throughput: how much of a sender's capacity one message uses, and when it may go.

Carriers and providers limit each *sender* (a long code 1 segment/s, toll-free 3/s, short code 100/s;
WhatsApp senders and caller ids have their own limits), and a multi-segment SMS costs one unit per segment.
Pure: the slots are kept in the database (``store.repos.pacing``) so every worker process shares them,
and the deliver activity waits for its slot. A burst therefore queues (each message holds a slot further
ahead) instead of being refused by the provider.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

#: Wait for a slot inside the activity when it is this close; further ahead, retry the activity shortly
#: before the slot (Temporal keeps the timer, the worker slot is free meanwhile).
MAX_INLINE_WAIT = timedelta(seconds=20)
#: Sends are spaced this much wider than the configured rate: what the provider measures is arrival time,
#: and the time from a slot to the request's arrival varies by some milliseconds between sends.
HEADROOM = 0.15
#: A reserved slot missed by more than this (a crashed or late worker) is given up and a new one taken,
#: so late sends never bunch up on top of the ones that kept their slots.
SLOT_GRACE = timedelta(seconds=2)


@dataclass(frozen=True)
class Pace:
    """One message's use of one sender: ``units`` (segments or messages) at ``per_second`` units per second."""

    sender: str  # provider and sender id, e.g. "twilio:+15017122661" or "twilio:MG..."
    units: float
    per_second: float

    @property
    def interval(self) -> timedelta:
        """How long the sender is busy with this message."""
        return timedelta(seconds=self.units / self.per_second * (1 + HEADROOM))


def pace(sender: str, units: float, per_second: float) -> Pace | None:
    """A Pace, or None when the sender is not paced (rate 0 = unlimited)."""
    if per_second <= 0:
        return None
    return Pace(sender, max(1.0, float(units)), per_second)


def next_slot(now: datetime, next_free: datetime | None, pace: Pace) -> tuple[datetime, datetime]:
    """(this message's slot, the sender's next free instant after it): first come, first served."""
    slot = now if next_free is None or next_free < now else next_free
    return slot, slot + pace.interval


def slot_still_valid(slot: datetime, now: datetime) -> bool:
    """Whether a reserved slot may still be used (not missed by more than SLOT_GRACE)."""
    return now - slot <= SLOT_GRACE


def retry_before(slot: datetime, now: datetime) -> timedelta:
    """When a queued message should come back: shortly before its slot, so it then waits inline."""
    return max(timedelta(seconds=1), slot - now - MAX_INLINE_WAIT / 2)
