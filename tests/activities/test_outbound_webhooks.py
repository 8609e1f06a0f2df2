"""Outbound webhooks on the real Temporal dev server against a real local HTTP receiver.

The receiver checks signatures with its own code, written from the documented scheme (Standard
Webhooks: HMAC-SHA256 over "{webhook-id}.{webhook-timestamp}.{body}" with the base64 key after
"whsec_"), not with ours.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.outbound_webhooks import delivery_workflow_id, emit_event
from activities.types import OutboundEvent
from channels.console import ConsoleChannel
from core.messages import MessageCatalog
from core.settings import Settings
from core.webhook_signing import endpoint_secret
from store.db import make_engine, make_session_factory, upgrade
from store.repos import webhooks as repo
from store.webhook_models import WebhookAttempt, WebhookDelivery
from tests.activities.emitter_workflow import EmitterWorkflow
from worker import build_activities, build_worker

pytestmark = pytest.mark.timeout(120)
SECRET_KEY = "master-secret-for-tests"


@dataclass
class Receiver:
    """A local HTTP endpoint that answers the scripted statuses in order (then 200)."""

    script: list[int]
    seen: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    url: str = ""

    def answered(self, status: int) -> list[tuple[dict[str, str], bytes]]:
        return [(h, b) for s, h, b in self.seen if s == status]


@pytest.fixture
def receiver_factory() -> Iterator:
    servers: list[ThreadingHTTPServer] = []

    def make(script: list[int]) -> Receiver:
        receiver = Receiver(list(script))
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with lock:
                    status = receiver.script.pop(0) if receiver.script else 200
                    receiver.seen.append((status, {k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks"
        return receiver

    yield make
    for server in servers:
        server.shutdown()
        server.server_close()


def valid_signature(secret: str, headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    fresh = abs(time.time() - int(headers["webhook-timestamp"])) < 300
    return fresh and any(hmac.compare_digest(expected, s) for s in headers["webhook-signature"].split())


@dataclass
class Setup:
    sessions: object
    env: WorkflowEnvironment
    task_queue: str


@pytest.fixture
async def setup(dev_env: WorkflowEnvironment, tmp_path: Path):
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    settings = Settings(secret_key=SECRET_KEY, var_dir=tmp_path, task_queue=f"hooks-{uuid.uuid4().hex[:8]}")
    console = ConsoleChannel(tmp_path / "console.jsonl", out=io.StringIO())
    activities = build_activities(
        settings, sessions, MessageCatalog({}), channels=dict.fromkeys(("email", "sms", "whatsapp", "voice"), console)
    )
    async with build_worker(dev_env.client, settings, activities):
        yield Setup(sessions, dev_env, settings.task_queue)
    engine.dispose()


def add_endpoint(setup: Setup, url: str, kinds: list[str]) -> tuple[str, str]:
    with setup.sessions.begin() as session:  # type: ignore[attr-defined]
        endpoint = repo.create_endpoint(session, url=url, event_kinds=kinds)
        return endpoint.id, endpoint_secret(SECRET_KEY, endpoint.id, endpoint.secret_version)


async def test_receiver_failing_twice_gets_exactly_one_accepted_signed_delivery(setup: Setup, receiver_factory) -> None:
    receiver = receiver_factory([500, 503])
    endpoint_id, secret = add_endpoint(setup, receiver.url, ["deal.won"])
    other = receiver_factory([])
    add_endpoint(setup, other.url, ["consent.withdrawn"])  # subscribed to another kind: gets nothing
    event = OutboundEvent(
        kind="deal.won",
        key=f"cadence:x:{uuid.uuid4()}/won",
        payload={"amount": 1200.5, "currency": "USD", "task_id": "t-1"},
        contact_id="c-1",
        enrollment_id="cadence:x:c-1",
        cadence_id="x",
    )
    result = await emit_event(setup.sessions, setup.env.client, setup.task_queue, event)  # type: ignore[arg-type]
    assert not result.duplicate and len(result.deliveries) == 1
    [delivery_id] = result.deliveries
    outcome = await setup.env.client.get_workflow_handle(delivery_workflow_id(delivery_id, endpoint_id)).result()
    assert outcome == "delivered"

    assert [s for s, _, _ in receiver.seen] == [500, 503, 200]
    [(headers, body)] = receiver.answered(200)
    assert valid_signature(secret, headers, body)
    assert not valid_signature(secret, headers, body.replace(b"1200.5", b"9999.5"))  # tampering shows
    assert len({h["webhook-id"] for _, h, _ in receiver.seen}) == 1  # one id across retries: receivers dedupe
    document = json.loads(body)
    assert document["type"] == "deal.won"
    assert document["data"]["amount"] == 1200.5 and document["data"]["cadence_id"] == "x"
    assert other.seen == []

    with setup.sessions() as session:  # type: ignore[attr-defined]
        delivery = session.get(WebhookDelivery, delivery_id)
        assert delivery.status == "delivered" and delivery.attempts == 3 and delivery.endpoint_id == endpoint_id
        codes = session.scalars(
            select(WebhookAttempt.status_code)
            .where(WebhookAttempt.delivery_id == delivery_id)
            .order_by(WebhookAttempt.id)
        ).all()
        assert codes == [500, 503, 200]

    again = await emit_event(setup.sessions, setup.env.client, setup.task_queue, event)  # type: ignore[arg-type]
    assert again.duplicate and again.deliveries == [] and again.event_id == result.event_id
    assert len(receiver.seen) == 3


async def test_a_4xx_refusal_is_final_and_logged(setup: Setup, receiver_factory) -> None:
    receiver = receiver_factory([400])
    endpoint_id, _ = add_endpoint(setup, receiver.url, [])  # all kinds
    event = OutboundEvent(kind="sla.breached", key=f"task:{uuid.uuid4()}/sla", payload={"queue": "telesales"})
    result = await emit_event(setup.sessions, setup.env.client, setup.task_queue, event)  # type: ignore[arg-type]
    [delivery_id] = result.deliveries
    outcome = await setup.env.client.get_workflow_handle(delivery_workflow_id(delivery_id, endpoint_id)).result()
    assert outcome == "failed"
    assert [s for s, _, _ in receiver.seen] == [400]
    with setup.sessions() as session:  # type: ignore[attr-defined]
        delivery = session.get(WebhookDelivery, delivery_id)
        assert delivery.status == "failed" and delivery.attempts == 1
        assert "400" in (delivery.last_error or "")


async def test_workflows_emit_through_the_activity(setup: Setup, receiver_factory, tmp_path: Path) -> None:
    receiver = receiver_factory([])
    add_endpoint(setup, receiver.url, ["mql.created"])
    settings = Settings(secret_key=SECRET_KEY, var_dir=tmp_path)
    console = ConsoleChannel(tmp_path / "c.jsonl", out=io.StringIO())
    activities = build_activities(settings, setup.sessions, MessageCatalog({}), channels={"email": console})  # type: ignore[arg-type]
    queue = f"emitter-{uuid.uuid4().hex[:6]}"
    from worker import WORKFLOWS, workflow_runner

    async with Worker(
        setup.env.client,
        task_queue=queue,
        workflows=[*WORKFLOWS, EmitterWorkflow],
        activities=activities,
        workflow_runner=workflow_runner(),
    ):
        key = f"cadence:y:{uuid.uuid4()}/mql"
        started = await setup.env.client.execute_workflow(
            EmitterWorkflow.run,
            key,
            id=f"emitter-{uuid.uuid4()}",
            task_queue=queue,
            execution_timeout=timedelta(seconds=60),
        )
        assert started == 1
        deadline = time.monotonic() + 20
        while not receiver.answered(200) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
    [(_, body)] = receiver.answered(200)
    assert json.loads(body)["data"]["key"] == key


async def test_facts_recorded_anywhere_reach_subscribers_through_the_relay(setup: Setup, receiver_factory) -> None:
    """The store journals each milestone in the transaction that makes it true (an escalation or hand-off task,
    an SLA breach, a disposition, a won deal, a consent withdrawal); the worker's relay starts the signed
    deliveries. Each fact reaches the subscriber once, however often the relay sweeps or restarts."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from activities.outbound_webhooks import WebhookRelay
    from store.repos.consent import append_consent
    from store.repos.contacts import upsert_contact
    from store.repos.tasks import DispositionData, create_task, mark_breached, record_disposition, upsert_queue

    receiver = receiver_factory([])
    _, secret = add_endpoint(setup, receiver.url, [])  # every kind
    now = datetime.now(UTC)
    with setup.sessions.begin() as session:  # type: ignore[attr-defined]
        upsert_queue(session, "telemarketing")
        contact, _ = upsert_contact(session, external_id=f"crm-{uuid.uuid4().hex[:8]}", phone="+628123456789")
        common = {"contact_id": contact.id, "queue": "telemarketing", "purpose": "marketing", "status": "open"}
        mql, _ = create_task(
            session,
            id=f"mql-{uuid.uuid4()}",
            created_at=now,
            due_at=now + timedelta(hours=1),
            kind="escalate",
            **common,
        )
        record_disposition(
            session, mql, DispositionData("won", "ani", amount=Decimal("1500.50"), currency="IDR"), now=now
        )
        sql, _ = create_task(
            session,
            id=f"sql-{uuid.uuid4()}",
            created_at=now - timedelta(hours=5),
            due_at=now - timedelta(hours=1),
            kind="handoff",
            **common,
        )
        assert mark_breached(session, sql.id, now=now) is not None
        append_consent(
            session,
            contact_id=contact.id,
            channel="sms",
            purpose="marketing",
            status="withdrawn",
            method="stop_keyword",
            source="twilio:inbound",
        )
        record_disposition(
            session, mql, DispositionData("won", "ani", amount=Decimal("1500.50"), currency="IDR"), now=now
        )  # the same disposition again (a retried request) is no new fact

    relay = WebhookRelay(setup.sessions, setup.env.client, setup.task_queue, settle=timedelta(0))  # type: ignore[arg-type]
    assert await relay.sweep() == 6
    assert await relay.sweep() == 0  # started ones are remembered
    restarted = WebhookRelay(setup.sessions, setup.env.client, setup.task_queue, settle=timedelta(0))  # type: ignore[arg-type]
    await restarted.sweep()  # catches up on everything pending: starting a running delivery again is refused

    kinds = {"mql.created", "task.disposed", "deal.won", "sql.handed_off", "sla.breached", "consent.withdrawn"}
    deadline = time.monotonic() + 60
    while len(receiver.seen) < len(kinds) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    await asyncio.sleep(1)  # a duplicate, if any, would arrive now
    documents = [json.loads(body) for _, _, body in receiver.seen]
    assert sorted(d["type"] for d in documents) == sorted(kinds)
    assert all(valid_signature(secret, headers, body) for _, headers, body in receiver.seen)
    by_kind = {d["type"]: d["data"] for d in documents}
    assert by_kind["deal.won"]["amount"] == 1500.5 and by_kind["deal.won"]["task_id"] == mql.id
    assert by_kind["task.disposed"]["disposition"] == "won"
    assert by_kind["sla.breached"]["task_id"] == sql.id
    assert by_kind["consent.withdrawn"] == {**by_kind["consent.withdrawn"], "channel": "sms", "purpose": "marketing"}
    assert "+628123456789" not in json.dumps(documents)  # no address leaves in an event
