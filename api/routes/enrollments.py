"""Enrollments: start a contact's run of a cadence (idempotent), stop one.

The API records nothing itself: the workflow's first activity records the enrollment, so a failed
Temporal call leaves no half-made enrollment behind.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import Developer, ServicesDep
from api.erasure_guard import AddressCheck, erased_refusals
from api.group_commit import group_commit
from api.pagination import Cursor, Limit, Page, cursor_value, decode_cursor, page
from api.problems import ProblemError, problem_responses
from api.routes.common import find_contact, live_addresses
from api.schemas import CONTACT_REF, ID_PATTERN, EnrollmentIn, EnrollmentOut, EnrollmentStopOut
from api.temporal_gateway import TemporalUnavailable
from store.models import Enrollment
from store.repos.contacts import ContactAddresses

router = APIRouter(prefix="/v1/enrollments", tags=["enrollments"])
log = logging.getLogger("omnireach.api")
STOP_REASON = "stopped via API"
EnrollmentRef = Annotated[
    str,
    Path(
        description="The enrollment id `cadence:{cadence_id}:{contact_id}`",
        examples=["cadence:webinar-nurture:6f1c2a9e-8d1b-4f57-9a63-1c0e2b7d4a11"],
    ),
]


@router.post(
    "",
    response_model=EnrollmentOut,
    status_code=status.HTTP_201_CREATED,
    summary="Enroll a contact in a cadence (idempotent)",
    responses={
        200: {"model": EnrollmentOut, "description": "Already running: the running enrollment"},
        **problem_responses(401, 403, 404, 409, 413, 422, 500, 503),
    },
)
async def enroll(body: EnrollmentIn, response: Response, services: ServicesDep, _: Developer) -> EnrollmentOut:
    """Starts the `contact-cadence` workflow `cadence:{cadence_id}:{contact_id}` with a snapshot of the
    cadence (201). Enrolling again while it runs returns the same workflow and run id (200)."""
    cadence = services.library.cadences.get(body.cadence_id)
    if cadence is None:
        known = ", ".join(sorted(services.library.cadences)) or "none are loaded"
        raise ProblemError.invalid("cadence_id", f"unknown cadence {body.cadence_id!r}; known cadences: {known}")

    checks = group_commit(services.db, "enrollment-contacts", _check_contacts)
    checked = await checks.submit(_ContactCheck(body.contact_id, services.settings.secret_key))
    if isinstance(checked, ProblemError):
        raise checked
    contact_id = checked
    try:
        started = await services.temporal.start_enrollment(cadence, contact_id)
    except TemporalUnavailable as exc:
        raise ProblemError(503, f"the enrollment was not started: {exc}") from exc
    assert started is not None  # reenroll=True never refuses
    if not started.started:
        response.status_code = status.HTTP_200_OK
    log.info("event=enrollment_requested enrollment=%s run=%s started=%s", started.id, started.run_id, started.started)
    return EnrollmentOut(
        id=started.id,
        run_id=started.run_id,
        status="started" if started.started else "already_running",
        cadence_id=cadence.id,
        contact_id=contact_id,
    )


@dataclass(frozen=True)
class _ContactCheck:
    ref: str  # the body's contact_id: an id or ext:<external_id>
    salt: str  # the erasure hashes' (the app's secret key)


def _check_contacts(session: Session, checks: list[_ContactCheck]) -> list[str | ProblemError]:
    """Each contact's id, or the problem that refuses it (no such contact, erased, or an address of an erased
    person). The checks of concurrent enrollments share one transaction and two queries (``group_commit``):
    under load, a transaction, a thread hop and two queries per enrollment were about a third of its CPU in the
    API (docs/benchmarks.md, (a)). A refusal is an answer, not a failure, so it never fails the others'."""
    found = live_addresses(session, [check.ref for check in checks], field="contact_id")
    refusals = iter(
        erased_refusals(
            session,
            [
                AddressCheck(f"contact_id {check.ref!r}", check.salt, _addresses(contact))
                for check, contact in zip(checks, found, strict=True)
                if not isinstance(contact, ProblemError)
            ],
        )
    )
    outcomes: list[str | ProblemError] = []
    for contact in found:
        if isinstance(contact, ProblemError):
            outcomes.append(contact)
        else:
            refusal = next(refusals)
            outcomes.append(contact.id if refusal is None else refusal)
    return outcomes


def _addresses(contact: ContactAddresses) -> dict[str, str | None]:
    return {"email": contact.email, "phone": contact.phone, "whatsapp": contact.whatsapp}


@router.delete(
    "/{enrollment_ref}",
    response_model=EnrollmentStopOut,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Stop an enrollment",
    responses=problem_responses(401, 403, 404, 500, 503),
)
async def stop(enrollment_ref: EnrollmentRef, services: ServicesDep, _: Developer) -> EnrollmentStopOut:
    """Signals the running enrollment to stop (reason "stopped via API"); it ends at its next step and
    records why. 404 when no such enrollment is running."""
    try:
        signalled = await services.temporal.stop(enrollment_ref, STOP_REASON)
    except TemporalUnavailable as exc:
        raise ProblemError(503, f"the enrollment was not stopped: {exc}") from exc
    if not signalled:
        raise ProblemError(
            404,
            f"no running enrollment {enrollment_ref!r}; ids look like "
            "cadence:{cadence_id}:{contact_id} (as returned by POST /v1/enrollments) "
            "and an enrollment that already ended cannot be stopped",
        )
    log.info("event=enrollment_stop_requested enrollment=%s", enrollment_ref)
    return EnrollmentStopOut(id=enrollment_ref, reason=STOP_REASON)


class EnrollmentRecordOut(BaseModel):
    """An enrollment as recorded by its workflow (the first activity writes it; the last one ends it)."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    cadence_id: str
    contact_id: str
    status: Literal["running", "completed", "exited", "stopped", "failed"]
    started_at: datetime
    ended_at: datetime | None
    end_reason: str | None


@router.get(
    "",
    response_model=Page[EnrollmentRecordOut],
    summary="List enrollments",
    responses=problem_responses(401, 403, 422, 500),
)
async def list_enrollments(
    services: ServicesDep,
    _: Developer,
    cadence_id: Annotated[str | None, Query(pattern=ID_PATTERN, description="Only this cadence.")] = None,
    contact_id: Annotated[str | None, Query(max_length=300, description=CONTACT_REF)] = None,
    status_: Annotated[
        Literal["running", "completed", "exited", "stopped", "failed"] | None,
        Query(alias="status", description="Only enrollments in this state."),
    ] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[EnrollmentRecordOut]:
    """Enrollments by id, filtered; pass `next_cursor` back as `cursor` for the next page. An unknown
    contact gives an empty list."""
    after = cursor_value(decode_cursor(cursor), "id", str)

    def work(session: Session) -> list[Enrollment]:
        query = select(Enrollment).order_by(Enrollment.id).limit(limit + 1)
        if after is not None:
            query = query.where(Enrollment.id > after)
        if cadence_id is not None:
            query = query.where(Enrollment.cadence_id == cadence_id)
        if status_ is not None:
            query = query.where(Enrollment.status == status_)
        if contact_id is not None:
            contact = find_contact(session, contact_id)
            if contact is None:
                return []
            query = query.where(Enrollment.contact_id == contact.id)
        return list(session.scalars(query))

    rows = await services.db.run(work)
    return page(rows, limit, lambda r: {"id": r.id}, EnrollmentRecordOut.model_validate)
