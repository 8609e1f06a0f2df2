"""Tables for the developer API's cross-cutting parts: outbound webhooks and idempotency keys.

- ``business_events``: the journal of business milestones (MQL created, SQL handed off, task disposed,
  won / lost, SLA breached, consent withdrawn). One row per fact, unique by the emitter's key. It feeds
  the outbound webhooks *and* the closed-loop reports, so a milestone is recorded once and counted once.
- ``webhook_endpoints``: where other systems want those events (URL, which kinds). Their signing secret
  is derived from ``OMNIREACH_SECRET_KEY`` and the endpoint id, never stored.
- ``webhook_deliveries`` / ``webhook_attempts``: the delivery log, one delivery per event x endpoint and
  one attempt row per HTTP request (status code, error, duration).
- ``idempotency_keys``: responses remembered per ``Idempotency-Key`` header so a retried POST replays.

Payloads hold ids and business numbers, never addresses or names (they leave the system).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base
from store.types import BigIntId, utcnow

DELIVERY_STATUSES = ("pending", "delivered", "failed")
EVENT_KINDS = (
    "mql.created",
    "sql.handed_off",
    "task.disposed",
    "deal.won",
    "deal.lost",
    "sla.breached",
    "consent.withdrawn",
)


def _new_endpoint_id() -> str:
    return "we_" + uuid.uuid4().hex


class BusinessEvent(Base):
    """A business milestone, recorded once under the emitter's ``key`` (e.g. ``{workflow_id}/mql``)."""

    __tablename__ = "business_events"
    __table_args__ = (
        Index("ix_business_events_cadence_kind", "cadence_id", "kind"),
        Index("ix_business_events_enrollment", "enrollment_id"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String, unique=True)
    kind: Mapped[str]
    contact_id: Mapped[str | None] = mapped_column(String(36), index=True)
    enrollment_id: Mapped[str | None]
    cadence_id: Mapped[str | None]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEndpoint(Base):
    """A subscriber: an HTTPS URL and the event kinds it wants (empty list: all kinds)."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=_new_endpoint_id)
    url: Mapped[str] = mapped_column(Text)
    description: Mapped[str | None]
    event_kinds: Mapped[list[str]] = mapped_column(default=list)
    secret_version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]


class WebhookDelivery(Base):
    """One event to one endpoint: pending until a 2xx (delivered) or until retries give up (failed)."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
        Index("ix_webhook_deliveries_endpoint_id_id", "endpoint_id", "id"),
        # Only the deliveries still pending (every worker's relay looks for them every two seconds).
        Index(
            "ix_webhook_deliveries_pending",
            "created_at",
            postgresql_where=text("status = 'pending'"),
            sqlite_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("business_events.id"))
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("webhook_endpoints.id"))
    status: Mapped[str] = mapped_column(default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class WebhookAttempt(Base):
    """One HTTP request of a delivery: what the receiver answered (or why there was no answer)."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer, default=0)
    at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyKey(Base):
    """A POST's response kept under (caller, ``Idempotency-Key``) so a retry replays it (24 hours)."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_keys_scope_key"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(64))  # sha256 of the Authorization header
    key: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))  # sha256 of the request body
    status: Mapped[str] = mapped_column(default="in_progress")  # in_progress | done
    response_status: Mapped[int | None] = mapped_column(Integer)
    response_headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
