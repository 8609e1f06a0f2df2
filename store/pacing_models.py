"""Tables for per-sender pacing (issue 4): every worker process takes send slots from the same place.

- ``sender_pacing``: per provider sender (a from number, messaging service, WhatsApp sender, caller id),
  the first instant the sender is free again (reservations), and when the next request may actually leave
  (departures: a late worker never leaves closer to the previous request than the interval).
- ``send_slots``: the slot reserved for one message (by its outbox key), so a message queued behind a
  burst keeps its place when its activity comes back for it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base
from store.types import utcnow


class SenderPacing(Base):
    __tablename__ = "sender_pacing"

    sender: Mapped[str] = mapped_column(String, primary_key=True)
    next_free_at: Mapped[datetime]  # where the next reservation goes (the queue's tail)
    departs_after: Mapped[datetime | None]  # the next request may leave at this instant, not before
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SendSlot(Base):
    __tablename__ = "send_slots"

    message_key: Mapped[str] = mapped_column(String, primary_key=True)
    sender: Mapped[str]
    slot_at: Mapped[datetime]
