"""The plans PostgreSQL keeps for the statements that run on every send, every callback and every relay sweep.

psycopg prepares a statement after its fifth run; PostgreSQL may then keep one generic plan for it, made
without the parameters' values. A statement that is fast with values in EXPLAIN can be a full scan under that
plan: a claim that compared its queue with ``= ANY($1)`` and took ``LIMIT $2`` was (test_driver_statement).
These tests look at the generic plans of the other hot statements with enough rows for the planner's
statistics to tell an index look-up from a scan, inside a transaction that is rolled back.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from store.models import ConsentRecord, Contact, OutboxMessage, Suppression
from store.repos.consent import _CURRENT
from store.repos.dnc import _BLOCKING, hash_address, plain_hash
from store.repos.outbox import BY_PROVIDER_ID, find_outbox_by_provider_id
from store.repos.status_batches import PG_CLAIM_AND_APPLY, PG_LOCK_ROWS, lock_outbox_rows
from store.repos.suppressions import SCOPES_FOR_CHANNEL
from store.repos.webhooks import create_endpoint, pending_deliveries, pending_deliveries_query
from store.webhook_models import BusinessEvent, WebhookDelivery
from tests.store.conftest import MigratedDatabase, generic_plan

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
ROWS = 3000


@pytest.fixture
def session(db: MigratedDatabase):
    if db.kind != "postgres":
        pytest.skip("plans are PostgreSQL's")
    with db.session_factory() as session:  # rolled back: the rows and statistics are this test's alone
        yield session


def _contacts(session: Session, n: int) -> list[str]:
    ids = [str(uuid.uuid4()) for _ in range(n)]
    session.execute(
        insert(Contact), [{"id": i, "external_id": f"plan-{i}", "name": "Plan", "attributes": {}} for i in ids]
    )
    return ids


def _analyzed(session: Session, *tables: str) -> None:
    for table in tables:
        session.execute(text(f"ANALYZE {table}"))


def test_the_relays_sweep_reads_only_the_pending_deliveries(session: Session) -> None:
    endpoint = create_endpoint(session, url="https://crm.example.com/hooks", event_kinds=[])
    events = session.scalars(
        insert(BusinessEvent).returning(BusinessEvent.id),
        [
            {"key": f"plan-{n}", "kind": "sent", "payload": {}, "occurred_at": NOW, "recorded_at": NOW}
            for n in range(ROWS)
        ],
    ).all()
    session.execute(
        insert(WebhookDelivery),
        [
            {
                "event_id": event,
                "endpoint_id": endpoint.id,
                "status": "pending" if n % 500 == 0 else "delivered",  # a handful pending among thousands
                "created_at": NOW - timedelta(minutes=n),
            }
            for n, event in enumerate(events)
        ],
    )
    _analyzed(session, "webhook_deliveries")
    query = pending_deliveries_query(older_than=NOW, newer_than=NOW - timedelta(days=7), limit=None)
    plan = generic_plan(session, query, {})
    assert "ix_webhook_deliveries_pending" in plan, plan
    assert "Seq Scan on webhook_deliveries" not in plan, plan
    found = pending_deliveries(session, older_than=NOW + timedelta(seconds=1), limit=None)
    assert len(found) == ROWS // 500  # the query still finds exactly the pending ones


def test_a_sends_consent_look_up_takes_one_contacts_records_from_the_index(session: Session) -> None:
    contacts = _contacts(session, ROWS // 3)
    session.execute(
        insert(ConsentRecord),
        [
            {"contact_id": c, "channel": channel, "purpose": "marketing", "status": "granted", "occurred_at": NOW}
            for c in contacts
            for channel in ("email", "sms", "voice")
        ],
    )
    _analyzed(session, "consent_records")
    plan = generic_plan(session, _CURRENT, {"contact_id": contacts[7], "channel": "sms", "purpose": "marketing"})
    assert "ix_consent_records_lookup" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_a_sends_suppression_look_up_uses_the_value_and_hash_indexes(session: Session) -> None:
    session.execute(
        insert(Suppression),
        [
            {"kind": "global", "channel_scope": "phone", "value": f"+4474{n:08d}", "created_at": NOW}
            if n % 2
            else {
                "kind": "registry",
                "channel_scope": "phone",
                "value_hash": plain_hash(f"+4475{n:08d}"),
                "created_at": NOW,
            }
            for n in range(ROWS)
        ],
    )
    _analyzed(session, "suppressions")
    phone = "+447400000777"
    params = {
        "value": phone,
        "hashes": [hash_address(phone, "salt"), plain_hash(phone)],
        "scopes": SCOPES_FOR_CHANNEL["sms"],
    }
    plan = generic_plan(session, _BLOCKING, params)
    assert "ix_suppressions_value" in plan and "ix_suppressions_value_hash" in plan, plan
    assert "Seq Scan" not in plan, plan


def _messages(session: Session) -> None:
    contacts = _contacts(session, 10)
    session.execute(
        insert(OutboxMessage),
        [
            {
                "message_key": f"plan-{n}",
                "contact_id": contacts[n % 10],
                "channel": "sms",
                "to_address": "+447400000001",
                "provider_message_id": f"SM{n:032x}",
            }
            for n in range(ROWS)
        ],
    )
    _analyzed(session, "outbox_messages")


def test_a_callbacks_message_look_up_uses_the_provider_id_index(session: Session) -> None:
    _messages(session)
    assert find_outbox_by_provider_id(session, f"SM{7:032x}").message_key == "plan-7"
    plan = generic_plan(session, BY_PROVIDER_ID, {"provider_message_id": "SM0"})
    assert "ix_outbox_messages_provider_message_id" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_a_status_batch_locks_its_messages_through_the_provider_id_index(session: Session) -> None:
    _messages(session)
    wanted = [f"SM{n:032x}" for n in (3, 700, 2999)]
    assert [row.message_key for row in lock_outbox_rows(session, wanted).values()] == [
        "plan-3",
        "plan-700",
        "plan-2999",
    ]
    plan = generic_plan(session, PG_LOCK_ROWS, {"ids": wanted})
    assert "ix_outbox_messages_provider_message_id" in plan, plan
    assert "Seq Scan" not in plan, plan


def test_a_status_batch_writes_its_statuses_without_scanning_the_outbox(session: Session) -> None:
    _messages(session)
    ids = list(session.scalars(select(OutboxMessage.id).order_by(OutboxMessage.id).limit(4)))
    params = {
        "provider": "twilio",
        "kind": "status",
        "now": NOW,
        "keys": 1,
        "receipts": json.dumps([{"key": "status:plan", "signals": []}]),
        "changed_ids": ids,
        "changes": json.dumps([{"id": id_, "status": "delivered", "error": None} for id_ in ids]),
        "events": "[]",
    }
    plan = generic_plan(session, PG_CLAIM_AND_APPLY, params)
    assert "Update on outbox_messages" in plan, plan
    assert "Seq Scan on outbox_messages" not in plan, plan
