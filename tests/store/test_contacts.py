"""Contacts: create or update by external id."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from store.repos import get_contact, get_contact_by_external_id, lock_contact, upsert_contact


def test_upsert_creates_then_updates_only_given_fields(db) -> None:
    ext = f"crm-{uuid.uuid4().hex}"
    with db.session_factory() as s:
        contact, created = upsert_contact(
            s,
            external_id=ext,
            name="Siti",
            email="siti@example.com",
            phone="+628123456789",
            country="ID",
            attributes={"plan": "pro"},
        )
        s.commit()
        assert created
        first_id = contact.id
    with db.session_factory() as s:
        contact, created = upsert_contact(s, external_id=ext, email="siti@new.example")
        s.commit()
        assert not created
        assert contact.id == first_id
    with db.session_factory() as s:
        contact = get_contact(s, first_id)
        assert contact is not None
        assert (contact.name, contact.email, contact.phone, contact.country) == (
            "Siti",
            "siti@new.example",
            "+628123456789",
            "ID",
        )
        assert contact.attributes == {"plan": "pro"}
        assert contact.updated_at >= contact.created_at
        assert get_contact_by_external_id(s, ext).id == first_id
        assert get_contact_by_external_id(s, "nobody") is None
        assert get_contact(s, str(uuid.uuid4())) is None


def test_unknown_contact_field_is_an_error(session) -> None:
    with pytest.raises(TypeError, match="emial"):
        upsert_contact(session, external_id="typo", emial="x@example.com")


def test_lock_contact_serialises_concurrent_senders(db, contact_id) -> None:
    """A second send decision for the same contact waits for the first one's transaction (caps hold)."""
    order: list[str] = []

    def second() -> None:
        with db.session_factory() as s:
            assert lock_contact(s, contact_id) is not None
            order.append("second locked")
            s.commit()

    with db.session_factory() as first:
        assert lock_contact(first, contact_id) is not None
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.5)
        order.append("first commits")
        first.commit()
    thread.join(timeout=20)
    assert order == ["first commits", "second locked"]
    with db.session_factory() as s:
        assert lock_contact(s, "no-such-contact") is None


def test_contacts_addresses_by_ids_and_external_ids_in_one_query(db) -> None:
    from store.repos.contacts import contacts_addresses

    ext = f"crm-{uuid.uuid4().hex}"
    with db.session_factory.begin() as s:
        ana, _ = upsert_contact(s, external_id=ext, name="Ana", email="ana@example.com", phone="+628123456789")
        budi, _ = upsert_contact(s, external_id=f"crm-{uuid.uuid4().hex}", name="Budi", whatsapp="+628123456780")
        ana_id, budi_id = ana.id, budi.id
    unknown = str(uuid.uuid4())
    with db.session_factory() as s:
        by_id, by_external_id = contacts_addresses(s, ids=[ana_id, budi_id, unknown, ana_id], external_ids=[ext, "x"])
        assert contacts_addresses(s) == ({}, {})
        only_external, by_external_only = contacts_addresses(s, external_ids=[ext])
    assert by_id == {
        ana_id: (ana_id, "ana@example.com", "+628123456789", None, None),
        budi_id: (budi_id, None, None, "+628123456780", None),
    }
    assert by_external_id[ext] == by_id[ana_id] and "x" not in by_external_id
    assert only_external == {ana_id: by_id[ana_id]} and by_external_only == {ext: by_id[ana_id]}
