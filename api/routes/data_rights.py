"""Data rights: GET /v1/contacts/{id}/export (access, GDPR art. 15) and DELETE /v1/contacts/{id} (erasure,
art. 17). What erasure keeps and why: store/repos/data_rights.py.

Erasure order, so that a failed request changes nothing: stop the running enrollments through Temporal
(503 and nothing erased when it is unreachable: retry), then forget the person in one transaction. A
repeated DELETE answers with the first erasure.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel
from sqlalchemy.orm import Session

from api.deps import Developer, ServicesDep
from api.problems import ProblemError, problem_responses
from api.routes.common import require_contact
from api.schemas import CONTACT_REF
from api.temporal_gateway import TemporalUnavailable
from store.repos import data_rights
from store.repos.enrollments import mark_enrollment_ended, running_enrollments_for_contact
from store.types import utcnow

router = APIRouter(prefix="/v1/contacts", tags=["data rights"])
log = logging.getLogger("omnireach.api")
ContactRef = Annotated[str, Path(description=CONTACT_REF, examples=["ext:crm-000123"])]
STOP_REASON = "erasure requested"


class ErasureOut(BaseModel):
    contact_id: str
    erased_at: datetime
    enrollments_stopped: list[str]
    address_hashes_kept: int
    consent_records_summarised: int
    already_erased: bool = False


@router.get(
    "/{contact_ref}/export",
    response_model=dict[str, Any],
    summary="Everything held about a contact (access request)",
    responses=problem_responses(401, 403, 404, 500),
)
async def export(contact_ref: ContactRef, services: ServicesDep, _: Developer) -> dict[str, Any]:
    """The contact, their consent evidence, suppressions, enrollments, messages as sent, their texts to us,
    events and send decisions, as one JSON document. After erasure only non-personal traces remain."""
    salt = services.settings.secret_key

    def work(session: Session) -> dict[str, Any]:
        return data_rights.export_contact(session, require_contact(session, contact_ref), salt=salt)

    return await services.db.run(work)


@router.delete(
    "/{contact_ref}",
    response_model=ErasureOut,
    summary="Erase a contact (erasure request)",
    responses=problem_responses(401, 403, 404, 500, 503),
)
async def erase(contact_ref: ContactRef, services: ServicesDep, principal: Developer) -> ErasureOut:
    """Removes the person's data (name, addresses, attributes, consent evidence, message bodies), keeps a
    salted hash of each address so they are never contacted again, and stops their running enrollments.
    A later import or enrollment of the same phone or email is refused with the reason."""

    def plan(session: Session) -> tuple[str, list[str], bool]:
        contact = require_contact(session, contact_ref)
        running = [e.id for e in running_enrollments_for_contact(session, contact.id)]
        return contact.id, running, contact.erased_at is not None

    contact_id, running, already = await services.db.run(plan)
    stopped = []
    try:
        for workflow_id in running:
            await services.temporal.stop(workflow_id, STOP_REASON)
            stopped.append(workflow_id)
    except TemporalUnavailable as exc:
        raise ProblemError(503, f"nothing was erased: the running enrollments could not be stopped: {exc}") from exc
    salt, by = services.settings.secret_key, principal.key_prefix or principal.name

    def forget(session: Session) -> ErasureOut:
        contact = require_contact(session, contact_id)
        now = utcnow()
        for workflow_id in stopped:
            mark_enrollment_ended(session, workflow_id, "stopped", STOP_REASON, ended_at=now)
        request = data_rights.erase_contact(
            session, contact, salt=salt, now=now, requested_by=by, enrollments_stopped=stopped
        )
        return ErasureOut(
            contact_id=contact.id,
            erased_at=contact.erased_at or now,
            enrollments_stopped=list(request.enrollments_stopped or []),
            address_hashes_kept=len(request.address_hashes or []),
            consent_records_summarised=len(request.consent_summary or []),
            already_erased=already,
        )

    out = await services.db.run(forget)
    log.info(
        "event=contact_erased contact=%s enrollments_stopped=%d already=%s by=%s",
        out.contact_id,
        len(stopped),
        already,
        by,
    )
    return out
