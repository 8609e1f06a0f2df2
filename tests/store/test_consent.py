"""The consent ledger: append-only in the ORM and in the database, current permission from the latest record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from store.models import AppendOnlyError, ConsentRecord
from store.repos import append_consent, consent_overview, current_consent, upsert_contact
from tests.store.conftest import migrated_database

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


def _grant(s, contact_id, at, channel="sms", purpose="marketing", status="granted", **kw):
    return append_consent(
        s, contact_id=contact_id, channel=channel, purpose=purpose, status=status, occurred_at=at, **kw
    )


def test_record_keeps_all_evidence(db, contact_id) -> None:
    with db.session_factory() as s:
        record = append_consent(
            s,
            contact_id=contact_id,
            channel="whatsapp",
            purpose="marketing",
            status="granted",
            address="+628123456789",
            method="web_form",
            source="https://example.com/ebook",
            notice_text="Saya setuju menerima info via WhatsApp dari PT Contoh.",
            notice_version="2026-01",
            lawful_basis="consent",
            ip="203.0.113.7",
            occurred_at=datetime(2026, 1, 5, 16, 0, tzinfo=UTC),
            source_timezone="Asia/Jakarta",
            evidence={"form_id": "f1"},
        )
        s.commit()
        rid = record.id
    with db.session_factory() as s:
        r = s.get(ConsentRecord, rid)
        assert (r.method, r.notice_version, r.ip, r.source_timezone) == (
            "web_form",
            "2026-01",
            "203.0.113.7",
            "Asia/Jakarta",
        )
        assert r.notice_text.startswith("Saya setuju")
        assert r.occurred_at == datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
        assert r.recorded_at.tzinfo == UTC
        assert r.evidence == {"form_id": "f1"}


def test_never_recorded_means_no_consent(session, contact_id) -> None:
    state = current_consent(session, contact_id, "email", "marketing")
    assert (state.granted, state.status, state.record_id, state.occurred_at) == (False, None, None, None)


def test_current_consent_follows_grant_withdraw_regrant(db, contact_id) -> None:
    with db.session_factory() as s:
        g1 = _grant(s, contact_id, T0)
        s.commit()
        assert current_consent(s, contact_id, "sms", "marketing").granted
        w = _grant(s, contact_id, T0 + timedelta(days=1), status="withdrawn", method="keyword")
        s.commit()
        state = current_consent(s, contact_id, "sms", "marketing")
        assert (state.granted, state.status, state.record_id) == (False, "withdrawn", w.id)
        g2 = _grant(s, contact_id, T0 + timedelta(days=2), method="keyword")
        s.commit()
        state = current_consent(s, contact_id, "sms", "marketing")
        assert (state.granted, state.status, state.record_id) == (True, "granted", g2.id)
        assert state.occurred_at == T0 + timedelta(days=2)
        assert g1.id < w.id < g2.id
        # Other channels and purposes are independent.
        assert not current_consent(s, contact_id, "sms", "sales").granted
        assert not current_consent(s, contact_id, "email", "marketing").granted


def test_latest_by_occurrence_not_by_arrival(db, contact_id) -> None:
    """An import of an older grant, appended after a withdrawal, must not re-enable sending."""
    with db.session_factory() as s:
        _grant(s, contact_id, T0 + timedelta(days=3), status="withdrawn")
        _grant(s, contact_id, T0, method="import")
        s.commit()
        assert current_consent(s, contact_id, "sms", "marketing").status == "withdrawn"
        # Same instant: the later appended record wins.
        last = _grant(s, contact_id, T0 + timedelta(days=3))
        s.commit()
        assert current_consent(s, contact_id, "sms", "marketing").record_id == last.id


def test_overview_has_one_state_per_channel_and_purpose(db, contact_id) -> None:
    with db.session_factory() as s:
        _grant(s, contact_id, T0, channel="email")
        _grant(s, contact_id, T0 + timedelta(hours=1), channel="email", status="withdrawn")
        _grant(s, contact_id, T0, channel="voice", purpose="sales")
        s.commit()
        overview = consent_overview(s, contact_id)
        assert set(overview) == {("email", "marketing"), ("voice", "sales")}
        assert overview[("email", "marketing")].status == "withdrawn"
        assert overview[("voice", "sales")].granted


def test_bad_channel_purpose_or_status_refused(session, contact_id) -> None:
    with pytest.raises(ValueError, match="channel"):
        _grant(session, contact_id, T0, channel="fax")
    with pytest.raises(ValueError, match="status"):
        _grant(session, contact_id, T0, status="maybe")
    with pytest.raises(IntegrityError):  # the CHECK constraint, for writers that bypass the repository
        session.execute(
            text(
                "INSERT INTO consent_records (contact_id, channel, purpose, status, occurred_at, recorded_at,"
                " evidence) VALUES (:c, 'sms', 'spam', 'granted', :t, :t, '{}')"
            ),
            {"c": contact_id, "t": T0},
        )


def test_orm_refuses_update_and_delete(db, contact_id) -> None:
    with db.session_factory() as s:
        record = _grant(s, contact_id, T0)
        s.commit()
        record.status = "withdrawn"
        with pytest.raises(AppendOnlyError):
            s.flush()
        s.rollback()
        s.delete(record)
        with pytest.raises(AppendOnlyError):
            s.flush()
        s.rollback()
    with db.session_factory() as s:
        assert current_consent(s, contact_id, "sms", "marketing").status == "granted"


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE consent_records SET status = 'withdrawn' WHERE id = :id",
        "UPDATE consent_records SET notice_text = 'edited' WHERE id = :id",
        "DELETE FROM consent_records WHERE id = :id",
    ],
)
def test_database_trigger_refuses_raw_update_and_delete(db, contact_id, sql) -> None:
    with db.session_factory() as s:
        rid = _grant(s, contact_id, T0).id
        s.commit()
    with db.engine.connect() as conn:
        with pytest.raises(IntegrityError, match="append-only"):
            conn.execute(text(sql), {"id": rid})
        conn.rollback()
    with db.session_factory() as s:
        record = s.get(ConsentRecord, rid)
        assert record is not None
        assert (record.status, record.notice_text) == ("granted", None)


@pytest.mark.postgres
def test_database_refuses_truncate_on_postgres(tmp_path) -> None:
    with migrated_database("postgres", tmp_path) as db:
        with db.session_factory() as s:
            contact, _ = upsert_contact(s, external_id="truncate")
            _grant(s, contact.id, T0)
            s.commit()
        with db.engine.connect() as conn, pytest.raises(IntegrityError, match="append-only"):
            conn.execute(text("TRUNCATE consent_records CASCADE"))
