"""Outbound webhooks: business milestones sent to other systems as signed JSON, retried by Temporal.

How an event travels:
1. ``emit-event`` (activity) or ``emit_event(...)`` (plain function for API routes and the CLI) journals
   the event under its idempotency key with one pending delivery per subscribed endpoint
   (store.repos.webhooks.record_business_event), then starts one ``outbound-webhook`` workflow per
   delivery (id ``webhook-delivery:{delivery_id}``, so starting twice is harmless).
2. The workflow runs ``deliver-webhook``: one signed POST (Standard Webhooks headers, see
   core.webhook_signing). 2xx: delivered. 5xx, 408, 425, 429, timeouts and connection errors raise a
   retryable error and Temporal retries with exponential backoff; any other 4xx is final.
3. When retries end, ``webhook-delivery-failed`` marks the delivery failed. Every attempt is logged in
   ``webhook_attempts`` (GET /v1/webhook-endpoints/{id}/deliveries shows them).

A delivery already delivered is never sent again, even if the activity is retried after its 2xx.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError

from activities.types import OutboundEvent, OutboundEventResult, WebhookDeliveryRequest
from core.webhook_signing import endpoint_secret, signed_headers
from store.repos import webhooks as repo
from store.webhook_models import EVENT_KINDS

log = logging.getLogger("omnireach.webhooks")
DELIVERY_WORKFLOW = "outbound-webhook"
RETRYABLE_STATUSES = frozenset({408, 409, 425, 429})
USER_AGENT = "omnireach-webhooks/1"


def delivery_workflow_id(delivery_id: int, endpoint_id: str) -> str:
    """Unique across databases sharing a namespace: endpoint ids are random, delivery ids are per database."""
    return f"webhook-delivery:{endpoint_id}:{delivery_id}"


def record(sessions: sessionmaker[Session], event: OutboundEvent) -> repo.RecordedEvent:
    """Journal the event and its deliveries in one transaction (idempotent by ``event.key``)."""
    if event.kind not in EVENT_KINDS:
        raise ValueError(f"unknown event kind {event.kind!r}; known: {', '.join(EVENT_KINDS)}")
    occurred = datetime.fromisoformat(event.occurred_at) if event.occurred_at else None
    if occurred is not None and occurred.tzinfo is None:
        raise ValueError(f"occurred_at {event.occurred_at!r} has no UTC offset")
    with sessions.begin() as session:
        return repo.record_business_event(
            session,
            kind=event.kind,
            key=event.key,
            payload=event.payload,
            contact_id=event.contact_id,
            enrollment_id=event.enrollment_id,
            cadence_id=event.cadence_id,
            occurred_at=occurred,
        )


async def start_deliveries(client: Client, task_queue: str, deliveries: list[repo.DeliveryRef]) -> None:
    """Start one ``outbound-webhook`` workflow per delivery; one already started (or finished) is skipped."""
    for delivery in deliveries:
        try:
            await client.start_workflow(
                DELIVERY_WORKFLOW,
                WebhookDeliveryRequest(delivery.id),
                id=delivery_workflow_id(delivery.id, delivery.endpoint_id),
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except WorkflowAlreadyStartedError:
            continue


async def emit_event(
    sessions: sessionmaker[Session], client: Client, task_queue: str, event: OutboundEvent
) -> OutboundEventResult:
    """For code outside workflows (API routes, CLI): journal the event and start its deliveries.

    If Temporal is down after the journal commit, the deliveries stay pending; ``omnireach webhooks
    retry`` (or the next emit of the same key) starts them.
    """
    recorded = await asyncio.to_thread(record, sessions, event)
    await start_deliveries(client, task_queue, recorded.deliveries)
    return OutboundEventResult(recorded.event_id, not recorded.created, recorded.delivery_ids)


class WebhookRelay:
    """Starts the deliveries of events journaled by other code (store.repos.milestones: a disposition, a
    consent withdrawal, an SLA breach...) inside its own transaction. Runs beside every worker; several
    relays are harmless because a delivery's workflow id is fixed (a second start is refused and skipped).

    Each sweep looks at deliveries pending for at least ``settle`` (their transaction has surely committed)
    and created within ``lookback``; the first sweep after start-up looks at all of them (catch-up after a
    restart). Ids it has started are remembered, so a delivery in its retry backoff costs no further call.
    Older ones left pending (Temporal down for longer than ``lookback``) are for `omnireach webhooks retry`.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        client: Client,
        task_queue: str,
        *,
        settle: timedelta = timedelta(seconds=1),
        lookback: timedelta = timedelta(days=1),
        clock: Callable[[], datetime] | None = None,
    ):
        self.sessions, self.client, self.task_queue = sessions, client, task_queue
        self.settle, self.lookback = settle, lookback
        self.clock = clock or (lambda: datetime.now(UTC))
        self.started: dict[int, datetime] = {}  # delivery id -> when this relay started it
        self.caught_up = False

    async def sweep(self) -> int:
        """One pass; the number of deliveries started."""
        now = self.clock()
        newer_than = now - self.lookback if self.caught_up else None
        pending = await asyncio.to_thread(self._pending, now - self.settle, newer_than)
        fresh = [d for d in pending if d.id not in self.started]
        await start_deliveries(self.client, self.task_queue, fresh)
        self.started.update(dict.fromkeys((d.id for d in fresh), now))
        self.started = {i: at for i, at in self.started.items() if at > now - self.lookback}
        self.caught_up = True
        if fresh:
            log.info("event=webhook_relay started=%d", len(fresh))
        return len(fresh)

    def _pending(self, older_than: datetime, newer_than: datetime | None) -> list[repo.DeliveryRef]:
        with self.sessions() as session:
            return repo.pending_deliveries(session, older_than=older_than, newer_than=newer_than, limit=None)

    async def run(self, interval: float = 2.0) -> None:
        """Sweep forever; a failed sweep (database or Temporal down) is logged and tried again."""
        while True:
            try:
                await self.sweep()
            except Exception as exc:  # the worker must outlive an outage; the next sweep retries
                log.warning("event=webhook_relay_failed error=%s: %s", type(exc).__name__, exc)
            await asyncio.sleep(interval)


def request_body(job: repo.DeliveryJob) -> bytes:
    """The JSON a receiver gets: ``{"type", "timestamp", "data"}`` (Standard Webhooks' payload shape)."""
    data: dict[str, Any] = {
        "event_id": job.event_id,
        "key": job.event_key,
        "contact_id": job.contact_id,
        "enrollment_id": job.enrollment_id,
        "cadence_id": job.cadence_id,
        **job.payload,
    }
    document = {"type": job.kind, "timestamp": job.occurred_at.isoformat(), "data": data}
    return json.dumps(document, separators=(",", ":"), sort_keys=True, default=str).encode()


class OutboundWebhookActivities:
    """The webhook activities, bound to the database, the signing key and one HTTP client per process."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        secret_key: str,
        *,
        timeout: float = 10.0,
        clock: Callable[[], datetime] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ):
        self.sessions = session_factory
        self.secret_key = secret_key
        self.timeout = timeout
        self.clock = clock or (lambda: datetime.now(UTC))
        self.transport = transport
        self._http: httpx.AsyncClient | None = None

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=self.timeout,
                transport=self.transport,
                follow_redirects=False,
                headers={"user-agent": USER_AGENT},
            )
        return self._http

    @activity.defn(name="emit-event")
    async def emit(self, event: OutboundEvent) -> OutboundEventResult:
        """Journal a business event and start its webhook deliveries (see the module docstring)."""
        try:
            recorded = await asyncio.to_thread(record, self.sessions, event)
        except ValueError as exc:
            raise ApplicationError(str(exc), type="BadEvent", non_retryable=True) from exc
        await start_deliveries(activity.client(), activity.info().task_queue, recorded.deliveries)
        log.info(
            "event=business_event kind=%s key=%s new=%s deliveries=%d",
            event.kind,
            event.key,
            recorded.created,
            len(recorded.delivery_ids),
        )
        return OutboundEventResult(recorded.event_id, not recorded.created, recorded.delivery_ids)

    @activity.defn(name="deliver-webhook")
    async def deliver(self, request: WebhookDeliveryRequest) -> str:
        """One signed POST; raises a retryable error for answers worth retrying, a final one otherwise."""
        job = await asyncio.to_thread(self._load, request.delivery_id)
        if job is None:
            raise ApplicationError(
                f"no webhook delivery {request.delivery_id}", type="UnknownDelivery", non_retryable=True
            )
        if job.status != "pending":
            return job.status
        if job.endpoint_disabled:
            await asyncio.to_thread(self._fail, job.delivery_id, "endpoint disabled")
            return "failed"
        body = request_body(job)
        secret = endpoint_secret(self.secret_key, job.endpoint_id, job.secret_version)
        headers = {
            "content-type": "application/json",
            # The wall clock, not the injected one: receivers compare it with theirs (5 minute tolerance).
            **signed_headers(secret, f"evt_{job.event_id}", int(time.time()), body),
        }
        started = time.perf_counter()
        try:
            response = await self._client().post(job.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            await asyncio.to_thread(self._attempt, job, None, error, started)
            raise ApplicationError(f"webhook endpoint unreachable: {error}", type="WebhookUnreachable") from exc
        status = response.status_code
        if 200 <= status < 300:
            await asyncio.to_thread(self._attempt, job, status, None, started)
            log.info(
                "event=webhook_delivered delivery=%s endpoint=%s status=%s", job.delivery_id, job.endpoint_id, status
            )
            return "delivered"
        error = f"HTTP {status}: {response.text[:200]}"
        await asyncio.to_thread(self._attempt, job, status, error, started)
        log.warning("event=webhook_refused delivery=%s endpoint=%s status=%s", job.delivery_id, job.endpoint_id, status)
        if status >= 500 or status in RETRYABLE_STATUSES:
            raise ApplicationError(
                f"webhook endpoint answered {status}", type="WebhookRetry", next_retry_delay=_retry_after(response)
            )
        raise ApplicationError(
            f"webhook endpoint refused the event: {error}", type="WebhookRejected", non_retryable=True
        )

    @activity.defn(name="webhook-delivery-failed")
    async def failed(self, request: WebhookDeliveryRequest) -> None:
        """Retries are over: the delivery is marked failed with the last reason."""
        await asyncio.to_thread(self._fail, request.delivery_id, request.final_error or "retries exhausted")
        log.warning("event=webhook_failed delivery=%s reason=%r", request.delivery_id, request.final_error[:200])

    # ---- database, on a worker thread --------------------------------------------------------
    def _load(self, delivery_id: int) -> repo.DeliveryJob | None:
        with self.sessions() as session:
            return repo.load_delivery(session, delivery_id)

    def _attempt(self, job: repo.DeliveryJob, status: int | None, error: str | None, started: float) -> None:
        with self.sessions.begin() as session:
            repo.record_attempt(
                session,
                job.delivery_id,
                status_code=status,
                error=error,
                duration_ms=int((time.perf_counter() - started) * 1000),
                delivered=status is not None and 200 <= status < 300,
                at=self.clock(),
            )

    def _fail(self, delivery_id: int, error: str) -> None:
        with self.sessions.begin() as session:
            repo.mark_delivery_failed(session, delivery_id, error)


def _retry_after(response: httpx.Response) -> timedelta | None:
    """A receiver's ``Retry-After`` seconds (capped at an hour) replaces the backoff for the next try."""
    value = response.headers.get("retry-after", "")
    if value.isdigit():
        return timedelta(seconds=min(int(value), 3600))
    return None
