"""The permission engine's storage on SQLite and PostgreSQL: erasure vs the append-only ledger, DNC snapshots,
webhook receipts."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from store.models import ConsentRecord, Contact
from store.repos import dnc as dnc_repo
from store.repos import inbound as inbound_repo
from store.repos.consent import append_consent
from store.repos.contacts import upsert_contact
from store.repos.data_rights import erase_contact, erased_address
from store.repos.suppressions import hash_address
from tests.store.conftest import MigratedDatabase

SALT = "store-test-salt"
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def _person(db: MigratedDatabase) -> str:
    with db.session_factory.begin() as session:
        contact, _ = upsert_contact(
            session,
            external_id=f"p-{uuid.uuid4().hex}",
            name="Rina",
            email=f"rina.{uuid.uuid4().hex[:6]}@example.id",
            phone="+6281234567890",
        )
        session.flush()
        for status in ("granted", "withdrawn"):
            append_consent(
                session,
                contact_id=contact.id,
                channel="email",
                purpose="marketing",
                status=status,
                address=contact.email,
                method="web_form",
                ip="198.51.100.4",
            )
        return contact.id


def test_consent_rows_can_only_be_deleted_by_erasure(db: MigratedDatabase) -> None:
    contact_id = _person(db)
    with pytest.raises(DBAPIError, match="append-only"), db.session_factory.begin() as session:
        session.execute(text("DELETE FROM consent_records WHERE contact_id = :c"), {"c": contact_id})
    with db.session_factory.begin() as session:
        contact = session.get(Contact, contact_id)
        email = contact.email
        request = erase_contact(session, contact, salt=SALT, now=NOW, requested_by="test")
        assert [s["status"] for s in request.consent_summary] == ["granted", "withdrawn"]
        assert all("198.51.100.4" not in str(s) for s in request.consent_summary)
    with db.session_factory() as session:
        left = session.scalar(
            select(func.count()).select_from(ConsentRecord).where(ConsentRecord.contact_id == contact_id)
        )
        assert left == 0
        contact = session.get(Contact, contact_id)
        assert contact.email is None and contact.name is None and contact.external_id.startswith("erased:")
        assert erased_address(session, salt=SALT, email=email.upper()) is not None  # normalised, then hashed
        assert erased_address(session, salt="other-salt", email=email) is None


def test_registry_snapshot_replaces_the_previous_one_and_older_copies_are_refused(db: MigratedDatabase) -> None:
    name = f"us-dnc-{uuid.uuid4().hex[:6]}"
    with db.session_factory.begin() as session:
        job = dnc_repo.start_import(
            session, list_name=name, country="US", as_of=date(2026, 11, 1), hashed=False, source_name="a"
        )
        dnc_repo.add_entries(session, job, ["+12125550147", "+12125550148"])
    with db.session_factory.begin() as session:
        job = dnc_repo.start_import(
            session, list_name=name, country="US", as_of=date(2026, 11, 20), hashed=True, source_name="b"
        )
        dnc_repo.add_entries(session, job, [dnc_repo.plain_hash("+12125550149")])
    with db.session_factory() as session:
        assert dnc_repo.latest_registry_dates(session, "US")[name] == date(2026, 11, 20)
        blocking = dnc_repo.find_blocking(session, channel="voice", address="+12125550149", salt=SALT)
        assert blocking is not None and blocking.kind == "registry" and blocking.value is None
        assert dnc_repo.find_blocking(session, channel="voice", address="+12125550147", salt=SALT) is None
        assert (
            dnc_repo.find_blocking(
                session, channel="voice", address="+12125550149", salt=SALT, include_registries=False
            )
            is None
        )
        with pytest.raises(ValueError, match="older copy"):
            dnc_repo.start_import(
                session, list_name=name, country="US", as_of=date(2026, 11, 2), hashed=False, source_name="c"
            )


def test_erasure_hash_blocks_every_phone_channel(db: MigratedDatabase) -> None:
    with db.session_factory.begin() as session:
        from store.repos.suppressions import add_suppression

        add_suppression(session, kind="erasure", channel_scope="phone", value_hash=hash_address("+6599990000", SALT))
    with db.session_factory() as session:
        for channel in ("sms", "whatsapp", "voice"):
            found = dnc_repo.find_blocking(session, channel=channel, address="whatsapp:+6599990000", salt=SALT)
            assert found is not None and found.kind == "erasure"
        assert dnc_repo.find_blocking(session, channel="email", address="+6599990000", salt=SALT) is None


def test_webhook_receipts_apply_once(db: MigratedDatabase) -> None:
    key = f"inbound:{uuid.uuid4().hex}"
    with db.session_factory.begin() as session:
        receipt, created = inbound_repo.claim_receipt(session, "twilio", "inbound", key)
        inbound_repo.owe_signals(session, receipt, [{"workflow_id": "w", "name": "sms.replied", "event_id": "e"}])
        assert created
    with db.session_factory.begin() as session:
        again, created = inbound_repo.claim_receipt(session, "twilio", "inbound", key)
        assert not created and again.pending_signals and again.signalled_at is None
        assert [r.id for r in inbound_repo.unsignalled(session, "twilio", [key])] == [again.id]
        inbound_repo.mark_signalled(session, [again.id])
    with db.session_factory() as session:
        assert inbound_repo.unsignalled(session, "twilio", [key]) == []
