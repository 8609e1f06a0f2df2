"""Contacts: create-or-update by external id, look-ups."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from store.models import Contact
from store.repos._common import insert_or_get

# Fields a caller may set; id, external_id and timestamps are managed here.
CONTACT_FIELDS = frozenset(
    {
        "name",
        "email",
        "phone",
        "whatsapp",
        "country",
        "timezone",
        "locale",
        "attributes",
        "email_unusable_reason",
        "phone_unusable_reason",
        "last_inbound_at",
        "erased_at",
    }
)


def upsert_contact(session: Session, *, external_id: str, **fields: Any) -> tuple[Contact, bool]:
    """Create the contact with ``external_id`` or update it; only the fields passed are changed.

    Returns ``(contact, created)``. Unknown field names raise TypeError (a typo must not be dropped).
    """
    unknown = set(fields) - CONTACT_FIELDS
    if unknown:
        raise TypeError(f"unknown contact field(s): {', '.join(sorted(unknown))}")
    contact, created = insert_or_get(
        session,
        Contact(external_id=external_id, **fields),
        lambda: get_contact_by_external_id(session, external_id),
    )
    if not created:
        for name, value in fields.items():
            setattr(contact, name, value)
        session.flush()
    return contact, created


class ContactAddresses(NamedTuple):
    """What starting outreach needs of a contact: its id, its addresses and whether it was erased."""

    id: str
    email: str | None
    phone: str | None
    whatsapp: str | None
    erased_at: datetime | None


_CONTACTS = Contact.__table__.c
# Built once, as Core statements: an enrollment looks its contact up on every request, and loading the whole
# row as an ORM object (17 columns, the identity map) cost about as much as the rest of its database work.
_ADDRESSES = select(_CONTACTS.id, _CONTACTS.email, _CONTACTS.phone, _CONTACTS.whatsapp, _CONTACTS.erased_at)
_ADDRESSES_BY_ID = _ADDRESSES.where(_CONTACTS.id == bindparam("ref"))
_ADDRESSES_BY_EXTERNAL_ID = _ADDRESSES.where(_CONTACTS.external_id == bindparam("ref"))


def contact_addresses(
    session: Session, contact_id: str | None = None, *, external_id: str | None = None
) -> ContactAddresses | None:
    """The id, addresses and erasure time of the contact with this id (or external id), or None."""
    if (contact_id is None) == (external_id is None):
        raise TypeError("pass exactly one of contact_id and external_id")
    query = _ADDRESSES_BY_ID if external_id is None else _ADDRESSES_BY_EXTERNAL_ID
    row = session.execute(query, {"ref": contact_id if external_id is None else external_id}).one_or_none()
    return ContactAddresses(*row) if row is not None else None


def get_contact(session: Session, contact_id: str) -> Contact | None:
    """The contact with this id, or None."""
    return session.get(Contact, contact_id)


def get_contact_by_external_id(session: Session, external_id: str) -> Contact | None:
    """The contact with this external id (the caller's own identifier), or None."""
    return session.scalars(select(Contact).where(Contact.external_id == external_id)).one_or_none()


def lock_contact(session: Session, contact_id: str) -> Contact | None:
    """The contact, locked until the transaction ends, so sends to one contact are decided one at a time.

    Without it two concurrent sends (two cadences) could both count 0 sends today and both go out past a
    per-day cap. PostgreSQL: ``SELECT ... FOR UPDATE``. SQLite: every transaction already holds the write
    lock (``BEGIN IMMEDIATE``), so this is a plain read there.
    """
    return session.scalars(
        select(Contact).where(Contact.id == contact_id).with_for_update().execution_options(populate_existing=True)
    ).one_or_none()
