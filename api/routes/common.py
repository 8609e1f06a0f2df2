"""Helpers the routers share: finding a contact by our id or ``ext:<external_id>``."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from api.problems import ProblemError
from api.schemas import ConsentStateOut, ContactOut
from store.models import Contact
from store.repos.consent import consent_overview
from store.repos.contacts import ContactAddresses, contact_addresses, get_contact, get_contact_by_external_id

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


def require_live_addresses(session: Session, ref: str, *, field: str | None = None) -> ContactAddresses:
    """``require_contact(live=True)`` for callers that need only the contact's id and addresses (an enrollment):
    the same answers (404, 409 when erased), from one narrow query instead of the whole contact."""
    if ref.startswith(EXTERNAL_PREFIX):
        contact = contact_addresses(session, external_id=ref[len(EXTERNAL_PREFIX) :])
    else:
        contact = contact_addresses(session, ref)
    if contact is None:
        raise _no_such_contact(ref, field)
    if contact.erased_at is not None:
        raise _erased_contact(ref, field, contact.erased_at)
    return contact


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
