"""Provider callbacks applied once: webhook receipts (dedupe keys + owed signals) and inbound messages."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from store.permission_models import InboundMessage, WebhookReceipt
from store.repos._common import insert_or_get
from store.types import utcnow


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


def mark_signalled(session: Session, receipt_ids: Iterable[int]) -> None:
    ids = list(receipt_ids)
    if ids:
        session.execute(
            update(WebhookReceipt)
            .where(WebhookReceipt.id.in_(ids))
            .values(signalled_at=utcnow(), pending_signals=[])
            .execution_options(synchronize_session=False)
        )


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
