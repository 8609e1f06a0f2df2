"""Custom events from other systems: recorded once per idempotency key and signalled to enrollments.

Order of work, so that a failed request changes nothing and no lock is held while Temporal is called:
1. read: the contact, an earlier event under this key (a repeat answers 200 and signals nothing), and the
   enrollments to tell;
2. signal each running enrollment with ``event_id = idempotency_key`` (the workflow counts an id once, so
   signals sent by a request that then fails are harmless when the client retries);
3. record the event. If Temporal fails in step 2, nothing was recorded: 503, retry with the same key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from fastapi import APIRouter, Response, status
from sqlalchemy.orm import Session

from api.deps import Developer, ServicesDep
from api.problems import ProblemError, problem_responses
from api.routes.common import require_contact
from api.schemas import EventIn, EventOut
from api.temporal_gateway import TemporalUnavailable
from store.models import Event
from store.repos.enrollments import enrollment_id, running_enrollments_for_contact
from store.repos.events import get_event_by_key, record_event
from workflows.contact_cadence import EventSignal

router = APIRouter(prefix="/v1/events", tags=["events"])
log = logging.getLogger("omnireach.api")


@dataclass(frozen=True)
class _Plan:
    contact_id: str
    existing: EventOut | None
    targets: list[str]


@router.post(
    "",
    response_model=EventOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record a custom event (idempotent by idempotency_key)",
    responses={
        200: {
            "model": EventOut,
            "description": "This idempotency_key was already recorded: the first event, nothing new happened",
        },
        **problem_responses(401, 403, 404, 409, 413, 422, 500, 503),
    },
)
async def post_event(body: EventIn, response: Response, services: ServicesDep, _: Developer) -> EventOut:
    """Stores the event and signals the contact's running enrollments (or only `cadence_id`'s), which score
    it, exit on it or wait for it as the cadence says. A repeat with the same `idempotency_key` returns the
    first event with 200."""
    plan = await services.db.run(lambda s: _plan(s, body))
    if plan.existing is not None:
        response.status_code = status.HTTP_200_OK
        return plan.existing

    signal = EventSignal(name=body.name, step_id=body.step_id, event_id=body.idempotency_key)
    signaled: list[str] = []
    try:
        for workflow_id in plan.targets:
            if await services.temporal.signal_event(workflow_id, signal):
                signaled.append(workflow_id)
    except TemporalUnavailable as exc:
        raise ProblemError(503, f"the event was not recorded: {exc}") from exc

    out, created = await services.db.run(lambda s: _record(s, body, plan.contact_id, signaled))
    if not created:  # a concurrent request with the same key won the race
        response.status_code = status.HTTP_200_OK
    log.info(
        "event=custom_event contact=%s name=%s created=%s signaled=%d",
        plan.contact_id,
        body.name,
        created,
        len(signaled),
    )
    return out


def _plan(session: Session, body: EventIn) -> _Plan:
    contact = require_contact(session, body.contact_id, field="contact_id", live=True)
    existing = get_event_by_key(session, body.idempotency_key)
    if existing is not None:
        _check_same(existing, contact.id, body)
        return _Plan(contact.id, _out(existing, duplicate=True, signaled=[]), [])
    if body.cadence_id is not None:
        targets = [enrollment_id(body.cadence_id, contact.id)]
    else:
        targets = [e.id for e in running_enrollments_for_contact(session, contact.id)]
    return _Plan(contact.id, None, targets)


def _record(session: Session, body: EventIn, contact_id: str, signaled: list[str]) -> tuple[EventOut, bool]:
    event, created = record_event(
        session,
        contact_id=contact_id,
        name=body.name,
        idempotency_key=body.idempotency_key,
        enrollment_id=enrollment_id(body.cadence_id, contact_id) if body.cadence_id else None,
        step_id=body.step_id,
        payload=body.payload,
        occurred_at=body.occurred_at,
    )
    if not created:
        _check_same(event, contact_id, body)
    return _out(event, duplicate=not created, signaled=signaled if created else []), created


def _check_same(event: Event, contact_id: str, body: EventIn) -> None:
    if event.contact_id != contact_id or event.name != body.name:
        raise ProblemError(
            409,
            f"idempotency_key {body.idempotency_key!r} was already used for another event "
            f"({event.name!r}, recorded {event.received_at.isoformat()}); use a new key "
            "for every distinct event",
        )


def _out(event: Event, *, duplicate: bool, signaled: list[str]) -> EventOut:
    return EventOut(
        id=event.id,
        contact_id=event.contact_id,
        name=event.name,
        step_id=event.step_id,
        enrollment_id=event.enrollment_id,
        idempotency_key=event.idempotency_key,
        occurred_at=event.occurred_at,
        received_at=event.received_at,
        payload=event.payload or {},
        duplicate=duplicate,
        signaled=signaled,
    )
