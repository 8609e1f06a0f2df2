"""Helpers the routers share: finding a contact by our id or ``ext:<external_id>``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.orm import Session

from api.problems import ProblemError
from api.schemas import ConsentStateOut, ContactOut
from store.models import Contact
from store.repos.consent import consent_overview
from store.repos.contacts import ContactAddresses, contacts_addresses, get_contact, get_contact_by_external_id

EXTERNAL_PREFIX = "ext:"


def find_contact(session: Session, ref: str) -> Contact | None:
    if ref.startswith(EXTERNAL_PREFIX):
        return get_contact_by_external_id(session, ref[len(EXTERNAL_PREFIX) :])
    return get_contact(session, ref)


def require_contact(session: Session, ref: str, *, field: str | None = None, live: bool = False) -> Contact:
    """The contact ``ref`` names, or a 404 problem (naming the body ``field`` when it came from one).

    ``live``: an erased contact is refused with 409 (nothing may be recorded or started for it).
    """
    contact = find_contact(session, ref)
    if contact is None:
        raise _no_such_contact(ref, field)
    if live and contact.erased_at is not None:
        raise _erased_contact(ref, field, contact.erased_at)
    return contact


def live_addresses(
    session: Session, refs: Sequence[str], *, field: str | None = None
) -> list[ContactAddresses | ProblemError]:
    """``require_contact(live=True)`` for many references at once, for callers that need only the contacts' ids
    and addresses (enrollments): for each, the contact or the problem that refuses it (404, 409 when erased),
    from one narrow query whatever their number."""
    ids = [ref for ref in refs if not ref.startswith(EXTERNAL_PREFIX)]
    external_ids = [ref[len(EXTERNAL_PREFIX) :] for ref in refs if ref.startswith(EXTERNAL_PREFIX)]
    by_id, by_external_id = contacts_addresses(session, ids=ids, external_ids=external_ids)
    answers: list[ContactAddresses | ProblemError] = []
    for ref in refs:
        external = ref.startswith(EXTERNAL_PREFIX)
        contact = by_external_id.get(ref[len(EXTERNAL_PREFIX) :]) if external else by_id.get(ref)
        if contact is None:
            answers.append(_no_such_contact(ref, field))
        elif contact.erased_at is not None:
            answers.append(_erased_contact(ref, field, contact.erased_at))
        else:
            answers.append(contact)
    return answers


def _no_such_contact(ref: str, field: str | None) -> ProblemError:
    how = (
        "an external id must exist (create it with POST /v1/contacts)"
        if ref.startswith(EXTERNAL_PREFIX)
        else "use the id returned by POST /v1/contacts, or ext:<external_id>"
    )
    return ProblemError(404, f"{_where(field)}{ref!r}: no such contact; {how}")


def _erased_contact(ref: str, field: str | None, erased_at: datetime) -> ProblemError:
    return ProblemError(
        409,
        f"{_where(field)}{ref!r}: this contact was erased on {erased_at.date().isoformat()}; "
        "it can no longer be contacted",
    )


def _where(field: str | None) -> str:
    return f"{field} " if field else ""


def contact_out(session: Session, contact: Contact) -> ContactOut:
    consents = [
        ConsentStateOut(
            channel=channel,
            purpose=purpose,
            status=state.status,
            occurred_at=state.occurred_at,
            record_id=state.record_id,
        )
        for (channel, purpose), state in sorted(consent_overview(session, contact.id).items())
        if state.status is not None and state.occurred_at is not None and state.record_id is not None
    ]
    out = ContactOut.model_validate(contact)
    return out.model_copy(update={"consents": consents})
