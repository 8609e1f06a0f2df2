"""A batch of status callbacks on both databases: PostgreSQL's two driver statements and the portable path write
the same rows, and a batch with a receipt that exists writes nothing but the new receipts."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from store.models import Contact, Event, OutboxMessage
from store.permission_models import WebhookReceipt
from store.repos.status_batches import LOCKED_COLUMNS, claim_and_apply, lock_outbox_rows


@pytest.fixture
def messages(session: Session) -> dict[str, int]:
    """Three sent SMS of one contact, {provider message id: outbox id}; the second carries an older error."""
    contact_id = str(uuid.uuid4())
    session.execute(insert(Contact), [{"id": contact_id, "external_id": f"batch-{contact_id}", "attributes": {}}])
    rows = session.execute(
        insert(OutboxMessage).returning(OutboxMessage.provider_message_id, OutboxMessage.id),
        [
            {
                "message_key": f"wf-{n}/hello/1",
                "enrollment_id": f"wf-{n}",
                "contact_id": contact_id,
                "step_id": "hello",
                "channel": "sms",
                "to_address": "+447400000001",
                "status": "sent",
                "provider_message_id": f"SM-{contact_id}-{n}",
                "error": "twilio 30001" if n == 1 else None,
            }
            for n in range(3)
        ],
    )
    return dict(rows.all())


def _event(contact_id: str, sid: str) -> dict:
    return {
        "contact_id": contact_id,
        "name": "sms.delivered",
        "idempotency_key": f"twilio:{sid}:delivered",
        "enrollment_id": "wf-0",
        "step_id": "hello",
        "message_key": "wf-0/hello/1",
        "payload": {"message_sid": sid, "status": "delivered", "error_code": None},
    }


def _receipts(session: Session, keys: list[str]) -> dict[str, WebhookReceipt]:
    found = session.scalars(select(WebhookReceipt).where(WebhookReceipt.dedupe_key.in_(keys)))
    return {receipt.dedupe_key: receipt for receipt in found}


def test_the_lock_returns_each_known_message_with_the_columns_a_callback_needs(
    session: Session, messages: dict[str, int]
) -> None:
    sids = sorted(messages)
    rows = lock_outbox_rows(session, [*sids, "SM-unknown", sids[0]])
    assert list(rows) == sids  # in id order, each once, the unknown one absent
    row = rows[sids[0]]
    assert {name: getattr(row, name) for name in ("id", "status", "channel", "enrollment_id", "step_id")} == {
        "id": messages[sids[0]],
        "status": "sent",
        "channel": "sms",
        "enrollment_id": "wf-0",
        "step_id": "hello",
    }
    assert all(hasattr(row, name) for name in LOCKED_COLUMNS)
    assert lock_outbox_rows(session, []) == {}


def test_new_receipts_are_claimed_and_the_statuses_and_events_written(
    session: Session, messages: dict[str, int]
) -> None:
    first, second, third = sorted(messages, key=messages.get)
    contact_id = session.scalar(select(OutboxMessage.contact_id).where(OutboxMessage.id == messages[first]))
    signal = {"workflow_id": "wf-0", "name": "sms.delivered", "step_id": "hello", "event_id": "e-1"}
    owed = {f"status:{first}:delivered": [signal], f"status:{second}:delivered": []}
    changes = {messages[first]: ("delivered", None), messages[second]: ("undelivered", "twilio 30003")}

    created = claim_and_apply(session, "twilio", "status", owed, changes, [_event(contact_id, first)])

    receipts = _receipts(session, list(owed))
    assert created == {key: receipts[key].id for key in owed}
    assert receipts[f"status:{first}:delivered"].pending_signals == [signal]
    assert receipts[f"status:{first}:delivered"].signalled_at is None  # owes its signal
    assert receipts[f"status:{second}:delivered"].signalled_at is not None  # owes nothing
    statuses = dict(session.execute(select(OutboxMessage.id, OutboxMessage.status)).all())
    errors = dict(session.execute(select(OutboxMessage.id, OutboxMessage.error)).all())
    assert (statuses[messages[first]], statuses[messages[second]], statuses[messages[third]]) == (
        "delivered",
        "undelivered",
        "sent",
    )
    assert (errors[messages[first]], errors[messages[second]]) == (None, "twilio 30003")
    [event] = session.scalars(select(Event).where(Event.idempotency_key == f"twilio:{first}:delivered"))
    assert (event.contact_id, event.name, event.payload["message_sid"]) == (contact_id, "sms.delivered", first)
    assert event.occurred_at.tzinfo is not None


def test_an_error_of_none_keeps_the_error_the_message_has(session: Session, messages: dict[str, int]) -> None:
    second = sorted(messages, key=messages.get)[1]
    claim_and_apply(
        session, "twilio", "status", {f"status:{second}:read": []}, {messages[second]: ("opened", None)}, []
    )
    row = session.execute(select(OutboxMessage.status, OutboxMessage.error).where(OutboxMessage.id == messages[second]))
    assert tuple(row.one()) == ("opened", "twilio 30001")


def test_a_batch_with_a_receipt_seen_before_writes_only_its_new_receipts(
    session: Session, messages: dict[str, int]
) -> None:
    first, second, _ = sorted(messages, key=messages.get)
    contact_id = session.scalar(select(OutboxMessage.contact_id).where(OutboxMessage.id == messages[first]))
    seen = f"status:{first}:delivered"
    claim_and_apply(session, "twilio", "status", {seen: []}, {}, [])

    fresh = f"status:{second}:delivered"
    created = claim_and_apply(
        session,
        "twilio",
        "status",
        {seen: [], fresh: []},
        {messages[first]: ("delivered", None), messages[second]: ("delivered", None)},
        [_event(contact_id, first), _event(contact_id, second)],
    )

    assert list(created) == [fresh]  # the caller decides again for the new one alone
    statuses = dict(session.execute(select(OutboxMessage.id, OutboxMessage.status)).all())
    assert (statuses[messages[first]], statuses[messages[second]]) == ("sent", "sent")
    assert session.scalars(select(Event).where(Event.contact_id == contact_id)).all() == []


def test_an_event_recorded_before_is_skipped_not_failed(session: Session, messages: dict[str, int]) -> None:
    first, second, _ = sorted(messages, key=messages.get)
    contact_id = session.scalar(select(OutboxMessage.contact_id).where(OutboxMessage.id == messages[first]))
    claim_and_apply(session, "twilio", "status", {"status:a": []}, {}, [_event(contact_id, first)])
    created = claim_and_apply(
        session, "twilio", "status", {"status:b": []}, {}, [_event(contact_id, first), _event(contact_id, second)]
    )
    assert list(created) == ["status:b"]
    keys = session.scalars(select(Event.idempotency_key).where(Event.contact_id == contact_id)).all()
    assert sorted(keys) == sorted([f"twilio:{first}:delivered", f"twilio:{second}:delivered"])
