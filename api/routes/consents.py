"""Consent evidence: record a grant or a withdrawal (append-only), read a contact's consent history."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, status
from sqlalchemy.orm import Session

from api.deps import Developer, ServicesDep
from api.problems import FieldError, ProblemError, problem_responses
from api.routes.common import require_contact
from api.schemas import CONTACT_REF, ConsentIn, ConsentOut
from store.models import Contact
from store.repos.consent import append_consent, consent_history

router = APIRouter(prefix="/v1/contacts", tags=["consents"])
log = logging.getLogger("omnireach.api")
ContactRef = Annotated[str, Path(description=CONTACT_REF, examples=["ext:crm-000123"])]
ADDRESS_FIELD = {"email": "email", "sms": "phone", "voice": "phone", "whatsapp": "whatsapp"}
GRANT_EVIDENCE = {
    "method": "how it was given, e.g. web_form, double_opt_in, keyword, agent_call or import",
    "source": "where it was captured, e.g. the form's URL or the system's name",
    "notice_text": "the exact text the person agreed to",
}


@router.post(
    "/{contact_ref}/consents",
    response_model=ConsentOut,
    status_code=status.HTTP_201_CREATED,
    summary="Record a consent grant or withdrawal",
    responses=problem_responses(401, 403, 404, 409, 413, 422, 500),
)
async def record(contact_ref: ContactRef, body: ConsentIn, services: ServicesDep, principal: Developer) -> ConsentOut:
    """Appends one record to the contact's consent ledger; the latest record per channel x purpose is the
    permission in force. The address is copied from the contact (a grant needs one). A withdrawal takes
    effect at once: every send re-checks consent at send time."""
    missing = [
        FieldError(field=name, message=f"is required for a grant: {what}")
        for name, what in GRANT_EVIDENCE.items()
        if body.status == "granted" and not getattr(body, name)
    ]
    if missing:
        raise ProblemError.invalid_fields(missing)

    def work(session: Session) -> ConsentOut:
        contact = require_contact(session, contact_ref, live=True)
        address = _address(contact, body)
        row = append_consent(
            session,
            contact_id=contact.id,
            channel=body.channel,
            purpose=body.purpose,
            status=body.status,
            occurred_at=body.occurred_at,
            address=address,
            method=body.method or "api",
            source=body.source,
            notice_text=body.notice_text,
            notice_version=body.notice_version,
            lawful_basis=body.lawful_basis or ("consent" if body.status == "granted" else None),
            ip=str(body.ip) if body.ip is not None else None,
            agent_id=body.agent_id,
            source_timezone=body.source_timezone,
            evidence={"recorded_via": "api", "api_key": principal.key_prefix},
        )
        return ConsentOut.model_validate(row)

    out = await services.db.run(work)
    log.info(
        "event=consent_recorded contact=%s channel=%s purpose=%s status=%s record=%s",
        out.contact_id,
        out.channel,
        out.purpose,
        out.status,
        out.id,
    )
    return out


def _address(contact: Contact, body: ConsentIn) -> str | None:
    field = ADDRESS_FIELD[body.channel]
    address = getattr(contact, field)
    if address is None and body.status == "granted":
        raise ProblemError.invalid(
            "channel",
            f"the contact has no {field} for {body.channel}; set it with POST /v1/contacts "
            "(external_id and " + field + ") first, then record the consent",
        )
    return address


@router.get(
    "/{contact_ref}/consents",
    response_model=list[ConsentOut],
    summary="A contact's consent ledger",
    responses=problem_responses(401, 403, 404, 500),
)
async def history(contact_ref: ContactRef, services: ServicesDep, _: Developer) -> list[ConsentOut]:
    """Every grant and withdrawal, oldest first, with its evidence."""

    def work(session: Session) -> list[ConsentOut]:
        contact = require_contact(session, contact_ref)
        return [ConsentOut.model_validate(r) for r in consent_history(session, contact.id)]

    return await services.db.run(work)
