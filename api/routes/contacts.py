"""Contacts: create or update by external id, read one, its timeline and its send decisions."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status
from sqlalchemy.orm import Session

from api.deps import Developer, ServicesDep
from api.erasure_guard import refuse_erased
from api.pagination import Cursor, cursor_value, decode_cursor, page
from api.problems import FieldError, ProblemError, problem_responses
from api.routes.common import contact_out, require_contact
from api.schemas import (
    CONTACT_REF,
    ContactIn,
    ContactOut,
    DecisionOut,
    DecisionsOut,
    TimelineItemOut,
    TimelineOut,
    is_national,
    parse_number,
)
from store.models import Contact
from store.repos.contacts import get_contact_by_external_id, upsert_contact
from store.repos.decisions import decisions_for_contact
from store.repos.timeline import TimelineItem, contact_timeline

router = APIRouter(prefix="/v1/contacts", tags=["contacts"])
log = logging.getLogger("omnireach.api")
ContactRef = Annotated[str, Path(description=CONTACT_REF, examples=["ext:crm-000123"])]
TimelineLimit = Annotated[int, Query(ge=1, le=1000, description="Items per page (1-1000).")]
_UNUSABLE = {"email": "email_unusable_reason", "phone": "phone_unusable_reason"}


@router.post(
    "",
    response_model=ContactOut,
    status_code=status.HTTP_201_CREATED,
    summary="Create or update a contact by external_id",
    responses={
        200: {"model": ContactOut, "description": "An existing contact was updated"},
        **problem_responses(401, 403, 409, 413, 422, 500),
    },
)
async def upsert(body: ContactIn, response: Response, services: ServicesDep, _: Developer) -> ContactOut:
    """Creates the contact (201) or updates the one with this `external_id` (200).

    Phone and WhatsApp numbers are stored in E.164: a national number (`0812...`) is read with the
    contact's country (from this request, or the one already stored) and refused without one. Emails are
    normalised; a line break in an email is refused (header injection).
    """

    def work(session: Session) -> tuple[ContactOut, bool]:
        existing = get_contact_by_external_id(session, body.external_id)
        if existing is not None and existing.erased_at is not None:
            raise ProblemError(
                409,
                f"external_id {body.external_id!r} belongs to a contact erased on "
                f"{existing.erased_at.date().isoformat()}; an erased person is not "
                "re-created from the API",
            )
        fields = _fields(body, existing)
        refuse_erased(
            session,
            salt=services.settings.secret_key,
            external_id=body.external_id if existing is None else None,
            **{name: fields.get(name) for name in ("email", "phone", "whatsapp")},  # type: ignore[arg-type]
        )
        contact, created = upsert_contact(session, external_id=body.external_id, **fields)
        return contact_out(session, contact), created

    out, created = await services.db.run(work)
    if created:
        response.headers["Location"] = f"/v1/contacts/{out.id}"
    else:
        response.status_code = status.HTTP_200_OK
    log.info(
        "event=contact_upserted contact=%s created=%s fields=%s",
        out.id,
        created,
        ",".join(sorted(body.model_fields_set - {"external_id"})),
    )
    return out


def _fields(body: ContactIn, existing: Contact | None) -> dict[str, object]:
    """The fields sent, with national phone numbers read using the stored country when none was sent."""
    fields = {name: getattr(body, name) for name in body.model_fields_set if name != "external_id"}
    if "attributes" in fields and fields["attributes"] is None:
        fields["attributes"] = {}
    country = fields.get("country", existing.country if existing else None)
    errors: list[FieldError] = []
    for name in ("phone", "whatsapp"):
        raw = fields.get(name)
        if isinstance(raw, str) and is_national(raw):
            try:
                fields[name] = parse_number(name, raw, country)
            except ValueError as exc:
                errors.append(FieldError(field=name, message=str(exc)))
    if errors:
        raise ProblemError.invalid_fields(errors)
    if existing is not None:  # a new address is usable until proven otherwise
        for name, flag in _UNUSABLE.items():
            if name in fields and fields[name] != getattr(existing, name):
                fields[flag] = None
    return fields


@router.get(
    "/{contact_ref}", response_model=ContactOut, summary="A contact", responses=problem_responses(401, 403, 404, 500)
)
async def read(contact_ref: ContactRef, services: ServicesDep, _: Developer) -> ContactOut:
    """The contact with its current consent per channel x purpose."""
    return await services.db.run(lambda s: contact_out(s, require_contact(s, contact_ref)))


@router.get(
    "/{contact_ref}/timeline",
    response_model=TimelineOut,
    summary="Everything that happened",
    responses=problem_responses(401, 403, 404, 422, 500),
)
async def timeline(
    contact_ref: ContactRef, services: ServicesDep, _: Developer, limit: TimelineLimit = 500, cursor: Cursor = None
) -> TimelineOut:
    """Oldest first: every message actually sent (as rendered), events, send decisions and consent changes.
    Paginated: pass `next_cursor` back as `cursor` for the next page."""
    after = _position(decode_cursor(cursor))

    def work(session: Session) -> TimelineOut:
        contact = require_contact(session, contact_ref)
        rows = [i for i in contact_timeline(session, contact.id) if after is None or _order(i) > after]
        got = page(
            rows[: limit + 1],
            limit,
            lambda i: {"at": i.at.isoformat(), "k": _KIND_RANK[i.kind], "id": i.id},
            lambda i: TimelineItemOut(at=i.at, kind=i.kind, summary=i.summary, detail=i.detail),  # type: ignore[arg-type]
        )
        return TimelineOut(contact_id=contact.id, items=got.items, next_cursor=got.next_cursor)

    return await services.db.run(work)


_KIND_RANK = {"consent": 0, "decision": 1, "message": 2, "event": 3}  # store.repos.timeline's tie-break


def _order(item: TimelineItem) -> tuple[datetime, int, int]:
    return (item.at, _KIND_RANK[item.kind], item.id)


def _position(position: dict) -> tuple[datetime, int, int] | None:
    if not position:
        return None
    try:
        return (datetime.fromisoformat(position["at"]), int(position["k"]), int(position["id"]))
    except (KeyError, TypeError, ValueError):
        raise ProblemError.invalid("cursor", "is not a cursor this API returned; pass next_cursor unchanged") from None


@router.get(
    "/{contact_ref}/decisions",
    response_model=DecisionsOut,
    summary="Every send decision",
    responses=problem_responses(401, 403, 404, 422, 500),
)
async def decisions(
    contact_ref: ContactRef, services: ServicesDep, _: Developer, limit: TimelineLimit = 500, cursor: Cursor = None
) -> DecisionsOut:
    """Why each send went out, was deferred (until when) or was skipped, oldest first. Paginated: pass
    `next_cursor` back as `cursor` for the next page."""
    position = decode_cursor(cursor)
    after_id = cursor_value(position, "id", int)
    after = (_position({**position, "k": 0}) or (None,))[0] if after_id is not None else None

    def work(session: Session) -> DecisionsOut:
        contact = require_contact(session, contact_ref)
        rows = [
            d
            for d in decisions_for_contact(session, contact.id)
            if after is None or (d.decided_at, d.id) > (after, after_id)
        ]
        got = page(
            rows[: limit + 1],
            limit,
            lambda d: {"at": d.decided_at.isoformat(), "id": d.id},
            DecisionOut.model_validate,
        )
        return DecisionsOut(contact_id=contact.id, decisions=got.items, next_cursor=got.next_cursor)

    return await services.db.run(work)
