"""Business events and the outbound webhook delivery log.

``record_business_event`` is the one write other code needs: call it inside the transaction that makes
the fact true (a consent withdrawal, a disposition) and the event plus one pending delivery per
subscribed endpoint are committed with it, or not at all (a transactional outbox). Starting the HTTP
deliveries afterwards is activities.outbound_webhooks' job.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, literal_column, select
from sqlalchemy.orm import Session

from store.repos._common import insert_or_get
from store.types import utcnow
from store.webhook_models import BusinessEvent, WebhookAttempt, WebhookDelivery, WebhookEndpoint


@dataclass(frozen=True)
class DeliveryRef:
    id: int
    endpoint_id: str


@dataclass(frozen=True)
class RecordedEvent:
    """The journal row's id, whether it was new, and its deliveries to start."""

    event_id: int
    created: bool
    deliveries: list[DeliveryRef]

    @property
    def delivery_ids(self) -> list[int]:
        return [d.id for d in self.deliveries]


def record_business_event(
    session: Session,
    *,
    kind: str,
    key: str,
    payload: dict[str, Any] | None = None,
    contact_id: str | None = None,
    enrollment_id: str | None = None,
    cadence_id: str | None = None,
    occurred_at: datetime | None = None,
) -> RecordedEvent:
    """Journal one business fact under ``key`` and queue it for every active endpoint that wants ``kind``.

    Idempotent: a repeat of ``key`` creates nothing and returns the first row with its deliveries that
    are still pending (so a retried emitter can make sure they were started; starting is idempotent).
    """
    row, created = insert_or_get(
        session,
        BusinessEvent(
            key=key,
            kind=kind,
            contact_id=contact_id,
            enrollment_id=enrollment_id,
            cadence_id=cadence_id,
            payload=dict(payload or {}),
            occurred_at=occurred_at or utcnow(),
            recorded_at=utcnow(),
        ),
        lambda: session.scalars(select(BusinessEvent).where(BusinessEvent.key == key)).one_or_none(),
    )
    if not created:
        pending = select(WebhookDelivery.id, WebhookDelivery.endpoint_id).where(
            WebhookDelivery.event_id == row.id, WebhookDelivery.status == "pending"
        )
        refs = [DeliveryRef(i, e) for i, e in session.execute(pending.order_by(WebhookDelivery.id)).tuples()]
        return RecordedEvent(row.id, False, refs)
    deliveries = [
        WebhookDelivery(event_id=row.id, endpoint_id=endpoint.id, status="pending")
        for endpoint in active_endpoints(session)
        if not endpoint.event_kinds or kind in endpoint.event_kinds
    ]
    session.add_all(deliveries)
    session.flush()
    return RecordedEvent(row.id, True, [DeliveryRef(d.id, d.endpoint_id) for d in deliveries])


def active_endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(
        session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.disabled_at.is_(None)).order_by(WebhookEndpoint.created_at)
        )
    )


def create_endpoint(
    session: Session, *, url: str, event_kinds: list[str], description: str | None = None
) -> WebhookEndpoint:
    row = WebhookEndpoint(url=url, event_kinds=list(event_kinds), description=description)
    session.add(row)
    session.flush()
    return row


def get_endpoint(session: Session, endpoint_id: str) -> WebhookEndpoint | None:
    return session.get(WebhookEndpoint, endpoint_id)


def list_endpoints(session: Session, *, after: str | None = None, limit: int = 50) -> list[WebhookEndpoint]:
    """Endpoints by id (disabled ones too: their delivery log stays readable)."""
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.id).limit(limit)
    if after is not None:
        query = query.where(WebhookEndpoint.id > after)
    return list(session.scalars(query))


def disable_endpoint(session: Session, endpoint_id: str) -> WebhookEndpoint | None:
    row = session.get(WebhookEndpoint, endpoint_id)
    if row is not None and row.disabled_at is None:
        row.disabled_at = utcnow()
        session.flush()
    return row


@dataclass(frozen=True)
class DeliveryJob:
    """Everything one HTTP attempt needs, read in one transaction."""

    delivery_id: int
    status: str
    attempts: int
    url: str
    endpoint_id: str
    endpoint_disabled: bool
    secret_version: int
    event_id: int
    event_key: str
    kind: str
    payload: dict[str, Any]
    contact_id: str | None
    enrollment_id: str | None
    cadence_id: str | None
    occurred_at: datetime


def load_delivery(session: Session, delivery_id: int) -> DeliveryJob | None:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        return None
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    event = session.get(BusinessEvent, delivery.event_id)
    assert endpoint is not None and event is not None  # foreign keys
    return DeliveryJob(
        delivery_id=delivery.id,
        status=delivery.status,
        attempts=delivery.attempts,
        url=endpoint.url,
        endpoint_id=endpoint.id,
        endpoint_disabled=endpoint.disabled_at is not None,
        secret_version=endpoint.secret_version,
        event_id=event.id,
        event_key=event.key,
        kind=event.kind,
        payload=dict(event.payload or {}),
        contact_id=event.contact_id,
        enrollment_id=event.enrollment_id,
        cadence_id=event.cadence_id,
        occurred_at=event.occurred_at,
    )


def record_attempt(
    session: Session,
    delivery_id: int,
    *,
    status_code: int | None,
    error: str | None,
    duration_ms: int,
    delivered: bool,
    at: datetime | None = None,
) -> WebhookDelivery:
    """Log one HTTP attempt; a 2xx marks the delivery delivered (a later attempt never un-delivers it)."""
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update=True)
    assert delivery is not None
    delivery.attempts += 1
    session.add(
        WebhookAttempt(
            delivery_id=delivery_id,
            attempt=delivery.attempts,
            status_code=status_code,
            error=error,
            duration_ms=duration_ms,
            at=at or utcnow(),
        )
    )
    delivery.last_status_code = status_code
    delivery.last_error = error
    if delivered and delivery.status != "delivered":
        delivery.status = "delivered"
        delivery.delivered_at = at or utcnow()
    session.flush()
    return delivery


def mark_delivery_failed(session: Session, delivery_id: int, error: str) -> None:
    """Retries are over: a pending delivery becomes failed (a delivered one stays delivered)."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is not None and delivery.status == "pending":
        delivery.status = "failed"
        delivery.last_error = error
        session.flush()


def deliveries_for_endpoint(
    session: Session, endpoint_id: str, *, before: int | None = None, limit: int = 50
) -> list[tuple[WebhookDelivery, BusinessEvent]]:
    """Newest first, keyset-paginated by delivery id."""
    query = (
        select(WebhookDelivery, BusinessEvent)
        .join(BusinessEvent, BusinessEvent.id == WebhookDelivery.event_id)
        .where(WebhookDelivery.endpoint_id == endpoint_id)
        .order_by(WebhookDelivery.id.desc())
        .limit(limit)
    )
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    return [(d, e) for d, e in session.execute(query).tuples()]


def attempts_for(session: Session, delivery_ids: list[int]) -> dict[int, list[WebhookAttempt]]:
    if not delivery_ids:
        return {}
    found: dict[int, list[WebhookAttempt]] = {i: [] for i in delivery_ids}
    rows = session.scalars(
        select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(delivery_ids)).order_by(WebhookAttempt.id)
    )
    for row in rows:
        found[row.delivery_id].append(row)
    return found


def pending_deliveries(
    session: Session, *, older_than: datetime, newer_than: datetime | None = None, limit: int | None = 1000
) -> list[DeliveryRef]:
    """Deliveries still pending that were created before ``older_than`` (and after ``newer_than``): their
    workflow may never have started, e.g. Temporal was down right after the commit."""
    query = pending_deliveries_query(older_than=older_than, newer_than=newer_than, limit=limit)
    return [DeliveryRef(i, e) for i, e in session.execute(query).tuples()]


def pending_deliveries_query(*, older_than: datetime, newer_than: datetime | None, limit: int | None) -> Select:
    # 'pending' written out, not a parameter: only then may the plan PostgreSQL keeps for the prepared statement
    # use the partial index ix_webhook_deliveries_pending (a parameter could hold any status).
    query = select(WebhookDelivery.id, WebhookDelivery.endpoint_id).where(
        WebhookDelivery.status == literal_column("'pending'"), WebhookDelivery.created_at < older_than
    )
    if newer_than is not None:
        query = query.where(WebhookDelivery.created_at > newer_than)
    return query.order_by(WebhookDelivery.id).limit(limit)
