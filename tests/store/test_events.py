"""Events are recorded once per idempotency key (webhooks and API calls repeat)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from store.repos import events_for_contact, get_event_by_key, record_event

pytestmark = pytest.mark.timeout(60)


def test_same_idempotency_key_records_once(db, contact_id) -> None:
    key = f"sg:{contact_id}:open:1700000000"
    with db.session_factory() as s:
        first, created = record_event(
            s,
            contact_id=contact_id,
            name="email.opened",
            idempotency_key=key,
            step_id="invite",
            payload={"ip": "x"},
            occurred_at=datetime(2026, 2, 2, 10, tzinfo=UTC),
        )
        s.commit()
        assert created
    with db.session_factory() as s:
        again, created = record_event(s, contact_id=contact_id, name="email.opened", idempotency_key=key)
        s.commit()
        assert not created and again.id == first.id
        assert again.payload == {"ip": "x"} and again.step_id == "invite"
        assert get_event_by_key(s, key).id == first.id
        assert len(events_for_contact(s, contact_id)) == 1


def test_events_without_key_are_all_kept(db, contact_id) -> None:
    with db.session_factory() as s:
        record_event(s, contact_id=contact_id, name="webinar.attended")
        record_event(s, contact_id=contact_id, name="webinar.attended")
        record_event(s, contact_id=contact_id, name="replied")
        s.commit()
        assert len(events_for_contact(s, contact_id, "webinar.attended")) == 2
        assert [e.name for e in events_for_contact(s, contact_id)].count("replied") == 1


def test_concurrent_duplicates_record_once(db, contact_id) -> None:
    key = f"twilio:{contact_id}:SM123:delivered"
    barrier = threading.Barrier(4)
    created_flags: list[bool] = []
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            barrier.wait()
            with db.session_factory() as s:
                _, created = record_event(s, contact_id=contact_id, name="sms.delivered", idempotency_key=key)
                s.commit()
            created_flags.append(created)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert sorted(created_flags) == [False, False, False, True]
    with db.session_factory() as s:
        assert len(events_for_contact(s, contact_id, "sms.delivered")) == 1
