"""Events: what contacts did, recorded once per idempotency key."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import Event
from store.repos._common import insert_ignoring_conflicts, insert_or_get
from store.types import utcnow


def get_event_by_key(session: Session, idempotency_key: str) -> Event | None:
    """The event recorded under this idempotency key, or None."""
    return session.scalars(select(Event).where(Event.idempotency_key == idempotency_key)).one_or_none()


def record_event(
    session: Session,
    *,
    contact_id: str,
    name: str,
    idempotency_key: str | None = None,
    enrollment_id: str | None = None,
    step_id: str | None = None,
    message_key: str | None = None,
    payload: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> tuple[Event, bool]:
    """Record an event; with an ``idempotency_key`` a repeat returns the first row and created False.

    Race-safe like the outbox. Without a key every call records a new event.
    """
    row = Event(
        contact_id=contact_id,
        name=name,
        idempotency_key=idempotency_key,
        enrollment_id=enrollment_id,
        step_id=step_id,
        message_key=message_key,
        payload=dict(payload or {}),
        occurred_at=occurred_at or utcnow(),
        received_at=utcnow(),
    )
    if idempotency_key is None:
        session.add(row)
        session.flush()
        return row, True
    return insert_or_get(session, row, lambda: get_event_by_key(session, idempotency_key))


def events_for_contact(session: Session, contact_id: str, name: str | None = None) -> list[Event]:
    """The contact's events (optionally of one name), in the order they happened."""
    query = select(Event).where(Event.contact_id == contact_id)
    if name is not None:
        query = query.where(Event.name == name)
    return list(session.scalars(query.order_by(Event.occurred_at, Event.id)))


def record_events_once(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert events (each with an idempotency key) in one statement; a key recorded before is skipped, as
    ``record_event`` does one at a time."""
    if not rows:
        return
    now = utcnow()
    values = [{"occurred_at": now, "received_at": now, "enrollment_id": None, "step_id": None} | r for r in rows]
    stmt = insert_ignoring_conflicts(session, Event.__table__, ["idempotency_key"])
    session.connection().execute(stmt, values)
