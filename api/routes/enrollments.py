"""Enrollments: start a contact's run of a cadence (idempotent), stop one.

The API records nothing itself: the workflow's first activity records the enrollment, so a failed
Temporal call leaves no half-made enrollment behind.
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Response, status
from sqlalchemy.orm import Session

from api.deps import Developer, ServicesDep
from api.problems import ProblemError, problem_responses
from api.routes.common import require_contact
from api.schemas import EnrollmentIn, EnrollmentOut, EnrollmentStopOut
from api.temporal_gateway import TemporalUnavailable

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

    def find(session: Session) -> str:
        return require_contact(session, body.contact_id, field="contact_id", live=True).id

    contact_id = await services.db.run(find)
    try:
        started = await services.temporal.start_enrollment(cadence, contact_id)
    except TemporalUnavailable as exc:
        raise ProblemError(503, f"the enrollment was not started: {exc}") from exc
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
