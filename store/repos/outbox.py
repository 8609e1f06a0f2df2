"""The outbox: one row per message under its idempotency key, written before the provider is called."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Text, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from store.models import OutboxMessage
from store.repos._common import insert_or_get
from store.types import utcnow

# A status only moves up this ladder (provider events repeat and arrive out of order).
STATUS_RANK = {
    "pending": 0,
    "unknown": 1,  # the provider may or may not have accepted it: look it up, never resend blindly
    "failed": 2,
    "sent": 2,
    "delivered": 3,
    "undelivered": 4,
    "bounced": 4,
    "dropped": 4,
    "opened": 5,
    "clicked": 6,
}
NOT_SENT_STATUSES = ("pending", "failed")
_MANAGED = frozenset({"id", "message_key", "status", "created_at", "updated_at"})
_WRITABLE = frozenset(c.key for c in OutboxMessage.__table__.columns) - _MANAGED


def _check_fields(fields: dict[str, Any]) -> None:
    unknown = set(fields) - _WRITABLE
    if unknown:
        raise TypeError(f"unknown or managed outbox field(s): {', '.join(sorted(unknown))}")


def get_outbox(session: Session, message_key: str) -> OutboxMessage | None:
    """The outbox row for this message key, or None."""
    return session.scalars(select(OutboxMessage).where(OutboxMessage.message_key == message_key)).one_or_none()


def _require(session: Session, message_key: str) -> OutboxMessage:
    row = get_outbox(session, message_key)
    if row is None:
        raise LookupError(f"no outbox message with key {message_key!r}")
    return row


BY_PROVIDER_ID = (
    select(OutboxMessage).where(OutboxMessage.provider_message_id == bindparam("provider_message_id")).limit(1)
)


def find_outbox_by_provider_id(session: Session, provider_message_id: str) -> OutboxMessage | None:
    """The message a provider callback refers to (e.g. a Twilio MessageSid), or None."""
    return session.scalars(BY_PROVIDER_ID, {"provider_message_id": provider_message_id}).first()


def claim_outbox(
    session: Session, *, message_key: str, absent: bool = False, **fields: Any
) -> tuple[OutboxMessage, bool]:
    """Insert a pending message under ``message_key``, or return the existing one (created False).

    Race-safe: concurrent claims of one key leave one row, and exactly one caller gets created True. A
    caller that gets created False must look at the row's status instead of sending again. ``absent``: the
    caller looked the key up in this transaction and found nothing, so the insert is tried without a second
    look-up (one round trip less per send); a concurrent claim is still caught by the unique key.
    """
    _check_fields(fields)
    row = OutboxMessage(message_key=message_key, status="pending", **fields)
    if absent:
        try:
            with session.begin_nested():
                session.add(row)
            return row, True
        except IntegrityError:
            row = OutboxMessage(message_key=message_key, status="pending", **fields)  # the loser is expunged
    return insert_or_get(session, row, lambda: get_outbox(session, message_key))


def _advance(row: OutboxMessage, status: str) -> bool:
    if STATUS_RANK[status] > STATUS_RANK.get(row.status, 0):
        row.status = status
        return True
    return False


def mark_outbox_sent(
    session: Session, message_key: str, provider: str, provider_message_id: str | None, **extra: Any
) -> OutboxMessage:
    """Record the provider's acceptance (``sent_at`` defaults to now). A later status is kept."""
    _check_fields(extra)
    row = _require(session, message_key)
    extra.setdefault("sent_at", utcnow())
    extra.setdefault("error", None)  # an in-flight or earlier refusal note no longer applies
    for name, value in extra.items():
        setattr(row, name, value)
    row.provider = provider
    row.provider_message_id = provider_message_id
    if STATUS_RANK.get(row.status, 0) <= STATUS_RANK["sent"]:  # pending, unknown, failed (found out later)
        row.status = "sent"
    session.flush()
    return row


def mark_outbox_failed(session: Session, message_key: str, error: str, **extra: Any) -> OutboxMessage:
    """Record that the provider refused the message; a message already sent is not moved back."""
    _check_fields(extra)
    row = _require(session, message_key)
    for name, value in extra.items():
        setattr(row, name, value)
    row.error = error
    if row.status in ("pending", "unknown"):
        row.status = "failed"
    session.flush()
    return row


def mark_outbox_unknown(session: Session, message_key: str, error: str, **extra: Any) -> OutboxMessage:
    """Record that the send outcome is unknown (timeout after the call). It counts towards caps."""
    _check_fields(extra)
    row = _require(session, message_key)
    for name, value in extra.items():
        setattr(row, name, value)
    row.error = error
    if row.status == "pending":
        row.status = "unknown"
        row.sent_at = row.sent_at or utcnow()
    session.flush()
    return row


def advance_outbox_status(session: Session, message_key: str, status: str, **extra: Any) -> bool:
    """Move a message's status forward (delivered, opened, ...) for a provider event; never backwards.

    Returns whether the status changed; ``extra`` fields (e.g. ``error``) are written only then.
    """
    if status not in STATUS_RANK:
        raise ValueError(f"unknown outbox status {status!r}; known: {', '.join(STATUS_RANK)}")
    _check_fields(extra)
    row = _require(session, message_key)
    if not _advance(row, status):
        return False
    for name, value in extra.items():
        setattr(row, name, value)
    session.flush()
    return True


def count_sends(
    session: Session, contact_id: str, start_utc: datetime, end_utc: datetime, *, channel: str | None = None
) -> int:
    """Messages sent to a contact with ``sent_at`` in [start, end), across all cadences (frequency caps).

    Pending and failed rows do not count; "unknown" does (it may have gone out).
    """
    query = select(func.count(OutboxMessage.id)).where(
        OutboxMessage.contact_id == contact_id,
        OutboxMessage.status.not_in(NOT_SENT_STATUSES),
        OutboxMessage.sent_at >= start_utc,
        OutboxMessage.sent_at < end_utc,
    )
    if channel is not None:
        query = query.where(OutboxMessage.channel == channel)
    return int(session.scalar(query) or 0)


def messages_for_contact(session: Session, contact_id: str, *, sent_only: bool = False) -> list[OutboxMessage]:
    """The contact's outbox rows, oldest first; ``sent_only`` leaves out pending and failed ones."""
    query = select(OutboxMessage).where(OutboxMessage.contact_id == contact_id)
    if sent_only:
        query = query.where(OutboxMessage.status.not_in(NOT_SENT_STATUSES))
    return list(session.scalars(query.order_by(OutboxMessage.created_at, OutboxMessage.id)))


_OUTBOX_TABLE = OutboxMessage.__table__


# ---- batches of provider status callbacks (api.routes.twilio_webhooks) --------------------------------
def set_outbox_statuses(session: Session, changes: Mapping[int, tuple[str, str | None]]) -> None:
    """Write {outbox id: (status, error or None)} decided on rows locked by ``status_batches.lock_outbox_rows``;
    None keeps the row's error (as ``advance_outbox_status`` writes extra fields only when given)."""
    if not changes:
        return
    stmt = (
        update(_OUTBOX_TABLE)
        .where(_OUTBOX_TABLE.c.id == bindparam("_id"))
        .values(
            status=bindparam("_status"),
            error=func.coalesce(bindparam("_error", type_=Text), _OUTBOX_TABLE.c.error),
            updated_at=utcnow(),
        )
    )
    params = [{"_id": id_, "_status": status, "_error": error} for id_, (status, error) in changes.items()]
    session.connection().execute(stmt, params)
