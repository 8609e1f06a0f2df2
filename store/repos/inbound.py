"""Provider callbacks applied once: webhook receipts (dedupe keys + owed signals) and inbound messages.

Besides the one-callback-at-a-time helpers, ``claim_receipts`` / ``receipts_by_key`` / ``owe_signals_many``
handle a batch of callbacks in a few statements (Core, no ORM unit of work): the status webhook applies the
callbacks of concurrent requests together (see ``api.group_commit.GroupCommit`` and
``store.repos.status_batches``, which on PostgreSQL claims the receipts and writes the rest in one statement).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam, select, update
from sqlalchemy.orm import Session

from store.permission_models import InboundMessage, WebhookReceipt
from store.repos._common import insert_ignoring_conflicts, insert_or_get
from store.types import utcnow

_RECEIPTS = WebhookReceipt.__table__


def get_receipt(session: Session, provider: str, dedupe_key: str) -> WebhookReceipt | None:
    return session.scalars(
        select(WebhookReceipt).where(WebhookReceipt.provider == provider, WebhookReceipt.dedupe_key == dedupe_key)
    ).one_or_none()


def claim_receipt(session: Session, provider: str, kind: str, dedupe_key: str) -> tuple[WebhookReceipt, bool]:
    """Record that this callback is being applied; created False means it was applied before (do nothing).

    Race-safe: of two concurrent deliveries one inserts, the other gets created False.
    """
    return insert_or_get(
        session,
        WebhookReceipt(provider=provider, kind=kind, dedupe_key=dedupe_key, pending_signals=[], received_at=utcnow()),
        lambda: get_receipt(session, provider, dedupe_key),
    )


def owe_signals(session: Session, receipt: WebhookReceipt, signals: list[dict[str, Any]]) -> None:
    """Remember the enrollment signals this callback still has to send (sent after the commit)."""
    receipt.pending_signals = list(signals)
    receipt.signalled_at = None if signals else utcnow()
    session.flush()


def owed_signals(session: Session, *, received_before: datetime, limit: int) -> dict[int, list[dict[str, Any]]]:
    """Receipt id -> the signals it still owes, for receipts received before ``received_before``, oldest
    first: Temporal was down when they came, or the process died before it signalled or marked them."""
    rows = session.execute(
        select(WebhookReceipt.id, WebhookReceipt.pending_signals)
        .where(WebhookReceipt.signalled_at.is_(None), WebhookReceipt.received_at < received_before)
        .order_by(WebhookReceipt.received_at, WebhookReceipt.id)
        .limit(limit)
    ).all()
    return {receipt_id: list(signals or []) for receipt_id, signals in rows}


def mark_signalled(session: Session, receipt_ids: Iterable[int]) -> None:
    ids = list(receipt_ids)
    if ids:
        session.execute(
            update(WebhookReceipt)
            .where(WebhookReceipt.id.in_(ids))
            .values(signalled_at=utcnow(), pending_signals=[])
            .execution_options(synchronize_session=False)
        )


def claim_receipts(
    session: Session, provider: str, kind: str, owed: Mapping[str, list[dict[str, Any]]]
) -> dict[str, int]:
    """Insert a receipt for each dedupe key, owing its signals (``owe_signals`` in the same statement), in one
    statement; {key: id} of those this call created.

    A key left out of the answer was applied before (or by a concurrent transaction that committed first:
    ``ON CONFLICT DO NOTHING`` waits for it). Pass keys in a fixed (sorted) order so that two batches
    sharing keys take the unique-index locks in the same order.
    """
    if not owed:
        return {}
    now = utcnow()
    rows = [
        {
            "provider": provider,
            "kind": kind,
            "dedupe_key": key,
            "pending_signals": list(signals),
            "signalled_at": None if signals else now,
            "received_at": now,
        }
        for key, signals in owed.items()
    ]
    stmt = insert_ignoring_conflicts(session, _RECEIPTS, ["provider", "dedupe_key"]).returning(
        _RECEIPTS.c.dedupe_key, _RECEIPTS.c.id
    )
    # executemany: SQLAlchemy sends it as multi-row INSERTs ("insertmanyvalues") compiled once, not per size
    return {key: id_ for key, id_ in session.connection().execute(stmt, rows)}


def receipts_by_key(session: Session, provider: str, keys: Iterable[str]) -> dict[str, Row]:
    """{key: (id, dedupe_key, pending_signals, signalled_at)} of existing receipts."""
    wanted = list(keys)
    if not wanted:
        return {}
    query = select(_RECEIPTS.c.id, _RECEIPTS.c.dedupe_key, _RECEIPTS.c.pending_signals, _RECEIPTS.c.signalled_at).where(
        _RECEIPTS.c.provider == provider, _RECEIPTS.c.dedupe_key.in_(wanted)
    )
    return {row.dedupe_key: row for row in session.connection().execute(query)}


def owe_signals_many(session: Session, owed: Mapping[int, list[dict[str, Any]]]) -> None:
    """``owe_signals`` for many receipts in one (executemany) statement."""
    if not owed:
        return
    now = utcnow()
    stmt = (
        update(_RECEIPTS)
        .where(_RECEIPTS.c.id == bindparam("_id"))
        .values(pending_signals=bindparam("_pending"), signalled_at=bindparam("_at"))
    )
    params = [{"_id": id_, "_pending": list(signals), "_at": None if signals else now} for id_, signals in owed.items()]
    session.connection().execute(stmt, params)


def unsignalled(session: Session, provider: str, keys: Iterable[str]) -> list[WebhookReceipt]:
    """Receipts among ``keys`` whose signals were never confirmed sent (a replay retries them)."""
    wanted = list(keys)
    if not wanted:
        return []
    return list(
        session.scalars(
            select(WebhookReceipt).where(
                WebhookReceipt.provider == provider,
                WebhookReceipt.dedupe_key.in_(wanted),
                WebhookReceipt.signalled_at.is_(None),
            )
        )
    )


def record_inbound(
    session: Session,
    *,
    provider: str,
    provider_message_id: str,
    channel: str,
    from_address: str | None,
    to_address: str | None,
    body: str | None,
    intent: str,
    keyword: str | None,
    contact_ids: list[str],
    reply: str | None = None,
    received_at: datetime | None = None,
) -> InboundMessage:
    row = InboundMessage(
        provider=provider,
        provider_message_id=provider_message_id,
        channel=channel,
        from_address=from_address,
        to_address=to_address,
        body=body,
        intent=intent,
        keyword=keyword,
        contact_ids=list(contact_ids),
        reply=reply,
        received_at=received_at or utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def inbound_from(session: Session, addresses: Iterable[str | None]) -> list[InboundMessage]:
    """Texts received from any of these addresses, oldest first."""
    values = [a for a in addresses if a]
    if not values:
        return []
    return list(
        session.scalars(
            select(InboundMessage)
            .where(InboundMessage.from_address.in_(values))
            .order_by(InboundMessage.received_at, InboundMessage.id)
        )
    )
