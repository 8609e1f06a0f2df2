"""The outbox: one row per message key however often (and however concurrently) it is claimed."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from store.repos import (
    advance_outbox_status,
    claim_outbox,
    count_sends,
    get_outbox,
    mark_outbox_failed,
    mark_outbox_sent,
    mark_outbox_unknown,
    messages_for_contact,
)
from store.repos import outbox as outbox_module

pytestmark = pytest.mark.timeout(60)

DAY = datetime(2026, 2, 2, tzinfo=UTC)


def _fields(contact_id: str, cadence: str = "webinar-nurture", step: str = "invite") -> dict:
    return {
        "contact_id": contact_id,
        "enrollment_id": f"cadence:{cadence}:{contact_id}",
        "cadence_id": cadence,
        "step_id": step,
        "channel": "email",
        "purpose": "marketing",
        "to_address": "siti@example.com",
        "subject": "Webinar",
        "body": "Halo Siti",
    }


def _key(contact_id: str, step: str = "invite", attempt: int = 1, cadence: str = "webinar-nurture") -> str:
    return f"cadence:{cadence}:{contact_id}/{step}/{attempt}"


def test_claim_twice_gives_one_row(db, contact_id) -> None:
    key = _key(contact_id)
    with db.session_factory() as s:
        row, created = claim_outbox(s, message_key=key, **_fields(contact_id))
        s.commit()
        assert created and row.status == "pending"
    with db.session_factory() as s:
        again, created = claim_outbox(s, message_key=key, **{**_fields(contact_id), "body": "different"})
        s.commit()
        assert not created
        assert again.id == row.id and again.body == "Halo Siti"
        assert len(messages_for_contact(s, contact_id)) == 1


def test_claim_racing_an_uncommitted_claim_waits_and_gets_the_winners_row(db, contact_id) -> None:
    """Two workers retry the same activity: the second blocks on the first's insert, then sees its row."""
    key = _key(contact_id, step="race")
    result: dict = {}

    def second_worker() -> None:
        with db.session_factory() as s:
            row, created = claim_outbox(s, message_key=key, **_fields(contact_id, step="race"))
            result.update(id=row.id, created=created)
            s.commit()

    with db.session_factory() as first:
        row, created = claim_outbox(first, message_key=key, **_fields(contact_id, step="race"))
        assert created
        thread = threading.Thread(target=second_worker)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the second claim should wait for the first transaction"
        first.commit()
    thread.join(timeout=20)
    assert result == {"id": row.id, "created": False}


def test_concurrent_claims_from_many_threads(db, contact_id) -> None:
    keys = [_key(contact_id, step=f"s{i}") for i in range(8)]
    threads_per_key = 4
    barrier = threading.Barrier(threads_per_key)
    outcomes: list[tuple[str, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            barrier.wait()
            for key in keys:
                with db.session_factory() as s:
                    _, created = claim_outbox(s, message_key=key, **_fields(contact_id, step=key))
                    s.commit()
                with lock:
                    outcomes.append((key, created))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(threads_per_key)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    created = Counter(key for key, was_created in outcomes if was_created)
    assert created == Counter({key: 1 for key in keys})
    assert len(outcomes) == len(keys) * threads_per_key
    with db.session_factory() as s:
        assert sorted(m.message_key for m in messages_for_contact(s, contact_id)) == sorted(keys)


def test_lost_race_rolls_back_only_the_savepoint(db, contact_id, monkeypatch) -> None:
    """The look-up missed a row another worker committed: the unique key catches it; the caller's earlier
    work in the same transaction survives."""
    key = _key(contact_id, step="lost")
    with db.session_factory() as s:
        winner, _ = claim_outbox(s, message_key=key, **_fields(contact_id, step="lost"))
        s.commit()
    real_get = outbox_module.get_outbox
    calls = {"n": 0}

    def stale_first_lookup(session, message_key):
        calls["n"] += 1
        return None if calls["n"] == 1 else real_get(session, message_key)

    monkeypatch.setattr(outbox_module, "get_outbox", stale_first_lookup)
    with db.session_factory() as s:
        claim_outbox(s, message_key=_key(contact_id, step="earlier"), **_fields(contact_id))
        row, created = claim_outbox(s, message_key=key, **_fields(contact_id, step="lost"))
        assert (row.id, created) == (winner.id, False)
        assert calls["n"] == 2
        s.commit()
    monkeypatch.undo()
    with db.session_factory() as s:
        assert get_outbox(s, _key(contact_id, step="earlier")) is not None


def test_claim_for_unknown_contact_is_an_error_not_a_silent_get(session) -> None:
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        claim_outbox(session, message_key="x/y/1", **_fields("no-such-contact"))


def test_sent_failed_unknown_and_later_statuses(db, contact_id) -> None:
    with db.session_factory() as s:
        for step in ("a", "b", "c"):
            claim_outbox(s, message_key=_key(contact_id, step), **_fields(contact_id, step=step))
        sent = mark_outbox_sent(s, _key(contact_id, "a"), "sendgrid", "sg-1", segments=None, encoding="utf-8")
        failed = mark_outbox_failed(s, _key(contact_id, "b"), "550 mailbox unavailable")
        unknown = mark_outbox_unknown(s, _key(contact_id, "c"), "timeout")
        s.commit()
        assert (sent.status, sent.provider, sent.provider_message_id) == ("sent", "sendgrid", "sg-1")
        assert sent.sent_at is not None and sent.sent_at.tzinfo == UTC
        assert (failed.status, failed.error, failed.sent_at) == ("failed", "550 mailbox unavailable", None)
        assert unknown.status == "unknown" and unknown.sent_at is not None

        assert advance_outbox_status(s, _key(contact_id, "a"), "opened")
        assert not advance_outbox_status(s, _key(contact_id, "a"), "delivered")  # late, out of order
        assert get_outbox(s, _key(contact_id, "a")).status == "opened"
        # A failure report after a send was recorded does not move it back.
        assert mark_outbox_failed(s, _key(contact_id, "a"), "late error").status == "opened"
        with pytest.raises(LookupError):
            mark_outbox_sent(s, "missing/key/1", "sendgrid", "x")
        with pytest.raises(ValueError):
            advance_outbox_status(s, _key(contact_id, "a"), "teleported")


def test_count_sends_spans_cadences_and_respects_the_range(db, contact_id) -> None:
    with db.session_factory() as s:
        plan = [
            ("nurture", "a", DAY + timedelta(hours=9), "sent"),
            ("onboarding", "b", DAY + timedelta(hours=10), "delivered"),
            ("winback", "c", DAY + timedelta(hours=11), "unknown"),
            ("nurture", "d", DAY - timedelta(seconds=1), "sent"),  # the day before
            ("nurture", "e", DAY + timedelta(days=1), "sent"),  # end is exclusive
            ("nurture", "f", DAY + timedelta(hours=12), "failed"),
            ("nurture", "g", None, "pending"),
        ]
        for cadence, step, at, status in plan:
            key = _key(contact_id, step, cadence=cadence)
            claim_outbox(s, message_key=key, **_fields(contact_id, cadence=cadence, step=step))
            if status in ("sent", "delivered"):
                mark_outbox_sent(s, key, "console", f"id-{step}", sent_at=at)
                if status == "delivered":
                    advance_outbox_status(s, key, "delivered")
            elif status == "unknown":
                mark_outbox_unknown(s, key, "timeout", sent_at=at)
            elif status == "failed":
                mark_outbox_failed(s, key, "refused", sent_at=at)
        s.commit()
        assert count_sends(s, contact_id, DAY, DAY + timedelta(days=1)) == 3
        assert count_sends(s, contact_id, DAY - timedelta(days=1), DAY + timedelta(days=2)) == 5
        assert count_sends(s, contact_id, DAY, DAY + timedelta(hours=10)) == 1
        assert count_sends(s, contact_id, DAY, DAY + timedelta(days=1), channel="sms") == 0
        assert count_sends(s, "someone-else", DAY, DAY + timedelta(days=1)) == 0


def test_claim_known_absent_skips_the_look_up_and_still_loses_a_race_cleanly(db, contact_id, monkeypatch) -> None:
    """``absent``: the deliver activity has just looked the key up; a row committed since is caught by the
    unique key, and the winner's row comes back without undoing the caller's earlier work."""
    key = _key(contact_id, step="absent")
    with db.session_factory() as s:
        winner, _ = claim_outbox(s, message_key=key, **_fields(contact_id, step="absent"))
        s.commit()
    real_get = outbox_module.get_outbox
    calls = {"n": 0}

    def counted(session, message_key):
        calls["n"] += 1
        return real_get(session, message_key)

    monkeypatch.setattr(outbox_module, "get_outbox", counted)
    with db.session_factory() as s:
        fresh, created = claim_outbox(s, message_key=_key(contact_id, step="new"), absent=True, **_fields(contact_id))
        assert created and calls["n"] == 0  # no look-up when nothing is there
        row, created = claim_outbox(s, message_key=key, absent=True, **_fields(contact_id, step="absent"))
        assert (row.id, created) == (winner.id, False) and calls["n"] == 1
        s.commit()
    monkeypatch.undo()
    with db.session_factory() as s:
        assert get_outbox(s, _key(contact_id, step="new")).id == fresh.id
