"""The webhooks' lazy "signalled" marks, without a database: written together shortly after. Then the status
webhook's batch itself (what its group commit applies), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from api import webhook_support
from api.webhook_support import SignalledMarks
from tests.api.test_group_commit import FakeDb
from tests.store.conftest import migrated_database


async def test_marks_are_written_together_shortly_after(monkeypatch: pytest.MonkeyPatch) -> None:
    marked: list[list[int]] = []
    monkeypatch.setattr(webhook_support.inbound_repo, "mark_signalled", lambda session, ids: marked.append(ids))
    monkeypatch.setattr(webhook_support, "MARK_DELAY", 0.05)
    marks = SignalledMarks(FakeDb())
    marks.add([3, 1])
    marks.add([2])
    assert marked == []
    await asyncio.sleep(0.2)
    assert marked == [[1, 2, 3]]
    marks.add([4])
    await asyncio.sleep(0.2)
    assert marked == [[1, 2, 3], [4]]


# ---- the status webhook's batch on both databases ---------------------------------------------------------
DATABASE_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _sent(session, contact_id: str, *, enrollment: str | None = "cadence:x:1") -> tuple[str, str]:
    from store.repos.outbox import claim_outbox, mark_outbox_sent

    message_sid = "SM" + uuid.uuid4().hex
    key = f"test/{message_sid}"
    claim_outbox(
        session,
        message_key=key,
        contact_id=contact_id,
        channel="sms",
        purpose="marketing",
        to_address="+447911123456",
        body="hello",
        enrollment_id=enrollment,
        step_id="hello",
    )
    mark_outbox_sent(session, key, provider="twilio", provider_message_id=message_sid)
    return key, message_sid


def _world(db) -> tuple[str, list[tuple[str, str]]]:
    from store.repos import upsert_contact

    with db.session_factory.begin() as session:
        contact, _ = upsert_contact(session, external_id=f"ext-{uuid.uuid4().hex}", name="Batch Person")
        session.flush()
        return contact.id, [_sent(session, contact.id) for _ in range(3)]


def _status_rows(db, keys: list[str]) -> dict[str, str]:
    from sqlalchemy import select

    from store.models import OutboxMessage

    with db.session_factory() as session:
        rows = session.execute(
            select(OutboxMessage.message_key, OutboxMessage.status).where(OutboxMessage.message_key.in_(keys))
        )
        return dict(rows.all())


def _event_keys(db, contact_id: str) -> list[str]:
    from sqlalchemy import select

    from store.models import Event

    with db.session_factory() as session:
        return sorted(session.scalars(select(Event.idempotency_key).where(Event.contact_id == contact_id)))


@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_a_batch_applies_each_callback_as_if_alone_in_arrival_order(kind: str, tmp_path) -> None:
    from api.routes.twilio_webhooks import _apply_statuses, _Status

    with migrated_database(kind, tmp_path) as db:
        contact_id, [(key_a, a), (key_b, b), (key_c, c)] = _world(db)
        batch = [
            _Status(a, "read", ""),
            _Status(a, "delivered", ""),  # arrives after "read": recorded, but the status stays "opened"
            _Status(b, "delivered", ""),
            _Status(b, "delivered", ""),  # the same callback twice in one batch
            _Status("SMunknown", "delivered", ""),
        ]
        with db.session_factory.begin() as session:
            outcomes = _apply_statuses(session, batch)
        assert [o.duplicate for o in outcomes] == [False, False, False, True, False]
        assert [len(o.signals) for o in outcomes] == [1, 0, 1, 1, 0]
        assert outcomes[0].signals[0]["name"] == "sms.opened" and outcomes[2].signals[0]["name"] == "sms.delivered"
        assert outcomes[2].receipt_id == outcomes[3].receipt_id
        assert _status_rows(db, [key_a, key_b, key_c]) == {key_a: "opened", key_b: "delivered", key_c: "sent"}
        assert _event_keys(db, contact_id) == sorted(
            [f"twilio:{a}:read", f"twilio:{a}:delivered", f"twilio:{b}:delivered"]
        )

        # A redelivery finds its receipt and owes the signals not yet marked sent; new ones apply.
        later = [_Status(b, "delivered", ""), _Status(c, "undelivered", "30003"), _Status(a, "read", "")]
        with db.session_factory.begin() as session:
            again = _apply_statuses(session, later)
        assert [o.duplicate for o in again] == [True, False, True]
        assert again[0].signals == outcomes[2].signals and again[0].receipt_id == outcomes[2].receipt_id
        assert again[1].signals[0]["name"] == "sms.bounced"
        assert _status_rows(db, [key_c])[key_c] == "undelivered"
        with db.session_factory() as session:
            from store.models import OutboxMessage

            assert session.get(OutboxMessage, _outbox_id(session, key_c)).error == "twilio 30003"
        assert len(_event_keys(db, contact_id)) == 4


def _outbox_id(session, key: str) -> int:
    from sqlalchemy import select

    from store.models import OutboxMessage

    return session.scalars(select(OutboxMessage.id).where(OutboxMessage.message_key == key)).one()


@pytest.mark.postgres
def test_concurrent_batches_sharing_callbacks_apply_each_once(tmp_path) -> None:
    """Two API processes' batches with the same callbacks in opposite orders: no deadlock, one effect each."""
    from concurrent.futures import ThreadPoolExecutor

    from api.routes.twilio_webhooks import _apply_statuses, _Status

    with migrated_database("postgres", tmp_path) as db:
        contact_id, messages = _world(db)
        calls = [_Status(sid, "delivered", "") for _, sid in messages]

        def apply(batch):
            with db.session_factory.begin() as session:
                return _apply_statuses(session, batch)

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(apply, [calls, calls[::-1], calls[1:], calls[::2]]))
        fresh = [o for outcomes in results for o in outcomes if not o.duplicate]
        assert len(fresh) == 3 and all(len(o.signals) == 1 for o in fresh)
        assert set(_status_rows(db, [key for key, _ in messages]).values()) == {"delivered"}
        assert len(_event_keys(db, contact_id)) == 3
