"""Contacts: create-or-update by external id, look-ups."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import bindparam, or_, select
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
# Built once, as a Core statement: enrollments look their contacts up on every request, and loading whole rows
# as ORM objects (17 columns, the identity map) cost about as much as the rest of their database work. The
# external id comes first, to key the answer.
_ADDRESSES_BY_REFS = select(
    _CONTACTS.external_id, _CONTACTS.id, _CONTACTS.email, _CONTACTS.phone, _CONTACTS.whatsapp, _CONTACTS.erased_at
).where(
    or_(
        _CONTACTS.id.in_(bindparam("ids", expanding=True)),
        _CONTACTS.external_id.in_(bindparam("external_ids", expanding=True)),
    )
)


def contacts_addresses(
    session: Session, *, ids: Iterable[str] = (), external_ids: Iterable[str] = ()
) -> tuple[dict[str, ContactAddresses], dict[str, ContactAddresses]]:
    """The id, addresses and erasure time of the contacts with these ids or external ids, in one query whatever
    their number (concurrent enrollments share it): the contacts found, keyed by id and by external id."""
    params = {"ids": sorted(set(ids)), "external_ids": sorted(set(external_ids))}
    by_id: dict[str, ContactAddresses] = {}
    by_external_id: dict[str, ContactAddresses] = {}
    if not params["ids"] and not params["external_ids"]:
        return by_id, by_external_id
    for external_id, *columns in session.execute(_ADDRESSES_BY_REFS, params):
        contact = ContactAddresses(*columns)
        by_id[contact.id] = contact
        if external_id is not None:
            by_external_id[external_id] = contact
    return by_id, by_external_id


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
