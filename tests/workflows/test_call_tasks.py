"""Call tasks on the time-skipping Temporal server: escalation with context, marketing paused, every
disposition (SPEC section 3), retries inside calling hours, SLA breaches at the deadline, handoff, revenue."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.tasks import supervisor_webhook_secret
from core import webhook_signing
from core.model import Window
from core.queues import QueueBook, QueueSpec, RetrySpec, SupervisorSpec
from core.timewindow import is_allowed
from store.models import Enrollment
from store.repos.claims import claim_task
from store.repos.consent import current_consent
from store.repos.suppressions import find_suppression
from store.repos.tasks import get_disposition, list_tasks, task_log
from store.task_models import CallTask, RevenueRecord
from tests.workflows.harness import TEMPLATES, Harness, scheduled_time
from worker import build_activities, build_worker
from workflows.call_task import CallTaskWorkflow, TaskDisposition, TaskNudge
from workflows.contact_cadence import (
    ContactCadenceWorkflow,
    DispositionSignal,
    EnrollmentResult,
    EventSignal,
    StopSignal,
)

BERLIN = ZoneInfo("Europe/Berlin")  # Germany: no legal-hours rule, so only the queue's hours apply
ALWAYS = Window(hours="00:00-24:00")
OFFICE = Window(days=["mon", "tue", "wed", "thu", "fri"], hours="09:00-17:00")
CADENCE = """
    id: t-calls
    name: Call test
    purpose: marketing
    facts: {title: Tax 101, offer: Free 30-minute consultation}
    score:
      email.opened: 1
      webinar.attended: 10
    escalate:
      when: "score >= 10"
      queue: telemarketing
      script: qualify
      sla: 24h
    handoff:
      when: "disposition in ['qualified', 'appointment_set']"
      queue: telesales
      script: closing
      sla: 4h
    steps:
      - id: invite
        send: email
        message: invite
      - wait: 2d
      - id: last
        send: sms
        message: last
"""
SCRIPTS = {
    "scripts/qualify.md.j2": "Hello {{ contact.name }}, calling about {{ facts.title }}: {{ facts.offer }}",
    "scripts/closing.md.j2": "Closing call for {{ facts.title }} with {{ contact.first_name }}",
}
VOICE = (("email", "marketing"), ("sms", "marketing"), ("voice", "marketing"))


class Receiver:
    """A real HTTP server on loopback that records every POST (the supervisor's webhook endpoint)."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/sla"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def book(
    url: str | None, hours: Window = ALWAYS, attempts: int = 3, spacing: str = "2h", sla: str = "24h"
) -> QueueBook:
    supervisor = SupervisorSpec(name="Spv", email="spv@example.id", webhook=url)
    queue = QueueSpec(sla=sla, calling_hours=hours, retry=RetrySpec(max_attempts=attempts, spacing=spacing))
    return QueueBook(
        queues={
            "telemarketing": queue.model_copy(update={"supervisor": supervisor}),
            "telesales": queue.model_copy(update={"sla": "4h", "supervisor": supervisor}),
        }
    )


@dataclass
class Floor:
    """The harness plus what call-task tests need: the queue book, the supervisor's endpoint, shortcuts."""

    h: Harness
    env: WorkflowEnvironment
    receiver: Receiver

    def tasks(self, contact: str) -> list[CallTask]:
        with self.h.sessions() as session:
            rows = session.scalars(
                select(CallTask).where(CallTask.contact_id == contact).order_by(CallTask.created_at)
            ).all()
            session.expunge_all()
            return list(rows)

    async def task(self, contact: str, count: int = 1, timeout: float = 20.0) -> CallTask:
        """The contact's `count`-th task, once it exists (real time: no timers are needed to create it)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            rows = self.tasks(contact)
            if len(rows) >= count:
                return rows[count - 1]
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no call task #{count} for the contact within {timeout}s: {rows}")
            await asyncio.sleep(0.1)

    async def escalate(self, contact: str) -> tuple[WorkflowHandle, CallTask]:
        handle = await self.h.start(self.h.cadence(CADENCE), contact)
        await self.env.sleep(timedelta(hours=1))
        await handle.signal("event", EventSignal("webinar.attended", None, f"evt-{uuid.uuid4().hex}"))
        return handle, await self.task(contact)

    async def dispose(self, task: CallTask, disposition: str, **data: str | None) -> None:
        child = self.env.client.get_workflow_handle(task.workflow_id)
        await child.signal("disposition", TaskDisposition(disposition, **data))


def _plain(env: WorkflowEnvironment | Client) -> Client:
    """A client without the time-skipping interceptor: awaiting a result through it does not unlock time
    skipping. (Through env.client, a result() can let the test server jump years ahead when nothing else is
    scheduled, which drags the session clock past the holiday calendars other tests rely on.)"""
    client = env if isinstance(env, Client) else env.client
    return Client(client.service_client, namespace=client.namespace, data_converter=client.data_converter)


async def ended(handle: WorkflowHandle, env: WorkflowEnvironment, timeout: float = 30.0) -> EnrollmentResult:
    """The enrollment's result once it ends in real time (dispositions act at once; no timer is needed)."""
    plain = _plain(env).get_workflow_handle(handle.id, result_type=EnrollmentResult)
    return await asyncio.wait_for(plain.result(), timeout=timeout)


@pytest.fixture
async def receiver():
    r = Receiver()
    yield r
    r.close()


def _harness(env: WorkflowEnvironment, tmp_path, queues: QueueBook) -> Harness:
    h = Harness(env.client, tmp_path, templates={**TEMPLATES, **SCRIPTS})
    channels = dict.fromkeys(("email", "sms", "whatsapp", "voice"), h.console)
    activities = build_activities(
        h.settings, h.sessions, h.catalog, channels=channels, clock=scheduled_time, queues=queues
    )
    h.task_queue = f"calls-{uuid.uuid4().hex[:8]}"  # the harness registered its own worker on its queue
    h.worker = build_worker(env.client, h.settings, activities, task_queue=h.task_queue)
    return h


@contextlib.asynccontextmanager
async def running_floor(env: WorkflowEnvironment, tmp_path, receiver: Receiver, queues: QueueBook):
    h = _harness(env, tmp_path, queues)
    async with h.worker:
        try:
            yield Floor(h, env, receiver)
        finally:
            await _close_everything(h, env)


@pytest.fixture
async def floor(time_skipping_env, tmp_path, receiver):
    async with running_floor(time_skipping_env, tmp_path, receiver, book(receiver.url)) as running:
        yield running


async def _close_everything(h: Harness, env: WorkflowEnvironment) -> None:
    """Let every workflow of the test finish while its worker still runs: a child left with a pending
    cancellation and no worker would stop the shared time-skipping server from skipping time."""
    with h.sessions() as session:
        children = [t.workflow_id for t in session.scalars(select(CallTask))]
        parents = [e.id for e in session.scalars(select(Enrollment))]
    for workflow_id in [*children, *parents]:
        handle = env.client.get_workflow_handle(workflow_id)
        if (await handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            continue
        try:
            await asyncio.wait_for(_plain(env).get_workflow_handle(workflow_id).result(), timeout=10)
        except Exception:  # still running (a failed test) or ended in error: make sure it is gone
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test teardown")


async def test_engaged_contact_gets_a_task_with_its_context_and_marketing_pauses(time_skipping_env, tmp_path, receiver):
    async with running_floor(time_skipping_env, tmp_path, receiver, book(receiver.url, attempts=1)) as floor:
        h = floor.h
        contact = h.contact(timezone="Europe/Berlin", country="DE", consents=VOICE)
        handle, task = await floor.escalate(contact)

        assert (task.kind, task.queue, task.status, task.score, task.attempt) == (
            "escalate",
            "telemarketing",
            "open",
            10,
            1,
        )
        assert task.facts == {"title": "Tax 101", "offer": "Free 30-minute consultation"}
        assert task.script_text == "Hello Dewi, calling about Tax 101: Free 30-minute consultation"
        assert "score 10 meets escalate.when" in task.reason
        assert task.due_at - task.created_at == timedelta(hours=24)
        [invite] = h.sent(contact)  # what the agent will see the contact was sent, as rendered
        assert invite.step_id == "invite" and "Tax 101" in invite.subject

        view = await handle.query(ContactCadenceWorkflow.state)
        assert view.waiting == "task_open" and view.open_task["kind"] == "escalate" and view.score == 10
        await time_skipping_env.sleep(timedelta(days=3))  # the 2d wait is long over: "last" would be due
        assert [m.step_id for m in h.sent(contact)] == ["invite"]  # ... but the agent owns the contact now

        await floor.dispose(task, "voicemail")  # max_attempts 1: no retry, nurture resumes at once
        result = await ended(handle, floor.env)
        assert result.status == "completed"
        assert [m.step_id for m in h.sent(contact)] == ["invite", "last"]
        assert len(floor.tasks(contact)) == 1


@pytest.mark.parametrize("disposition", ["qualified", "appointment_set"])
async def test_a_handoff_disposition_creates_the_telesales_task(floor, disposition):
    contact = floor.h.contact(timezone="Europe/Berlin", country="DE", consents=VOICE)
    handle, task = await floor.escalate(contact)
    await floor.dispose(task, disposition, note="decision maker, 3 outlets", agent_id=None)

    handoff = await floor.task(contact, 2)
    assert (handoff.kind, handoff.queue, handoff.script, handoff.status) == ("handoff", "telesales", "closing", "open")
    assert handoff.due_at - handoff.created_at == timedelta(hours=4)
    assert handoff.script_text == "Closing call for Tax 101 with Dewi"
    assert f"disposition '{disposition}'" in handoff.reason
    with floor.h.sessions() as session:
        assert get_disposition(session, task.id).note == "decision maker, 3 outlets"
        assert [t.id for t in list_tasks(session, queues=["telesales"], statuses=["open"])] == [handoff.id]
    view = await handle.query(ContactCadenceWorkflow.state)
    assert view.handed_off and view.open_task["kind"] == "handoff"
    await handle.signal("stop", StopSignal("test over"))
    assert (await ended(handle, floor.env)).status == "stopped"


async def test_not_interested_ends_the_enrollment(floor):
    contact = floor.h.contact(timezone="Europe/Berlin", country="DE", consents=VOICE)
    handle, task = await floor.escalate(contact)
    await floor.dispose(task, "not_interested", reason="already has a consultant")
    result = await ended(handle, floor.env)
    assert (result.status, result.reason) == ("exited", "not_interested")
    assert [m.step_id for m in floor.h.sent(contact)] == ["invite"]
    assert len(floor.tasks(contact)) == 1


async def test_do_not_call_suppresses_the_number_everywhere_and_ends(floor):
    contact = floor.h.contact(timezone="Europe/Berlin", country="DE", consents=VOICE)
    handle, task = await floor.escalate(contact)
    await floor.dispose(task, "do_not_call", note="asked never to be called again")
    result = await ended(handle, floor.env)

    assert (result.status, result.reason) == ("exited", "do_not_call")
    with floor.h.sessions() as session:
        for channel in ("voice", "sms", "whatsapp"):
            hit = find_suppression(session, channel=channel, address="+6281234567890", salt="test-secret")
            assert hit is not None and hit.kind == "company_dnc", channel
        for purpose in ("marketing", "sales", "service"):
            assert current_consent(session, contact, "voice", purpose).status == "withdrawn"
        assert current_consent(session, contact, "email", "marketing").granted  # email is another matter


async def test_callback_creates_a_task_at_the_agreed_time(floor):
    contact = floor.h.contact(timezone="Europe/Berlin", country="DE", consents=VOICE)
    handle, task = await floor.escalate(contact)
    now = await floor.env.get_current_time()
    agreed = (now + timedelta(days=2)).replace(microsecond=0)
    await floor.dispose(task, "callback", callback_at=agreed.isoformat())

    await floor.env.sleep(timedelta(days=1))
    assert len(floor.tasks(contact)) == 1  # nothing before the agreed time
    view = await handle.query(ContactCadenceWorkflow.state)
    assert view.waiting == "callback_scheduled" and view.waiting_until == agreed.astimezone(UTC).isoformat()
    await floor.env.sleep(timedelta(days=1, minutes=5))
    callback = await floor.task(contact, 2)
    assert callback.kind == "callback" and callback.queue == "telemarketing"
    assert abs(callback.created_at - agreed) <= timedelta(seconds=5)
    assert [m.step_id for m in floor.h.sent(contact)] == ["invite"]  # still paused while the agent owns it
    await handle.signal("stop", StopSignal("test over"))
    await ended(handle, floor.env)


async def test_won_records_the_amount_and_ends_the_enrollment(floor):
    contact = floor.h.contact(timezone="Europe/Berlin", country="DE", consents=VOICE)
    handle, task = await floor.escalate(contact)
    await floor.dispose(task, "qualified")
    handoff = await floor.task(contact, 2)
    await floor.dispose(handoff, "won", amount="15000000.50", currency="IDR", note="annual plan")
    result = await ended(handle, floor.env)

    assert (result.status, result.reason) == ("completed", "won")
    with floor.h.sessions() as session:
        [revenue] = session.scalars(select(RevenueRecord).where(RevenueRecord.contact_id == contact)).all()
        assert (revenue.outcome, revenue.amount, revenue.currency) == ("won", Decimal("15000000.50"), "IDR")
        assert revenue.task_id == handoff.id and revenue.cadence_id == "t-calls"
        enrollment = session.get(Enrollment, handle.id)
        assert (enrollment.status, enrollment.end_reason) == ("completed", "won")


async def test_lost_records_the_reason(floor):
    contact = floor.h.contact(timezone="Europe/Berlin", country="DE", consents=VOICE)
    handle, task = await floor.escalate(contact)
    await floor.dispose(task, "appointment_set")
    handoff = await floor.task(contact, 2)
    await floor.dispose(handoff, "lost", reason="price")
    assert (await ended(handle, floor.env)).reason == "lost"
    with floor.h.sessions() as session:
        [revenue] = session.scalars(select(RevenueRecord).where(RevenueRecord.contact_id == contact)).all()
        assert (revenue.outcome, revenue.reason, revenue.amount) == ("lost", "price", None)


async def test_retries_happen_only_inside_calling_hours_and_stop_after_the_max(
    fresh_time_skipping_env, tmp_path, receiver
):
    # Its own server: the shared one's clock has been skipped far ahead by earlier tests (holidays, weekdays).
    async with running_floor(
        fresh_time_skipping_env, tmp_path, receiver, book(receiver.url, hours=OFFICE, attempts=3, spacing="2h")
    ) as floor:
        h = floor.h
        contact = h.contact(timezone="Europe/Berlin", country="DE", consents=VOICE)
        handle, first = await floor.escalate(contact)
        # Move to 16:00 on the next weekday in Berlin: 2h later is 18:00, outside the calling hours.
        now = await fresh_time_skipping_env.get_current_time()
        day = now.astimezone(BERLIN).date() + timedelta(days=1)
        while day.weekday() >= 5:
            day += timedelta(days=1)
        await fresh_time_skipping_env.sleep(datetime.combine(day, time(16), tzinfo=BERLIN) - now)
        await floor.dispose(first, "no_answer")

        second = await _next_task(floor, contact, 2)
        next_day = day + timedelta(days=1)
        while next_day.weekday() >= 5:
            next_day += timedelta(days=1)
        assert abs(second.created_at - datetime.combine(next_day, time(9), tzinfo=BERLIN)) <= timedelta(seconds=5)
        assert second.attempt == 2 and second.kind == "escalate" and "no_answer" in second.reason
        await floor.dispose(second, "busy")
        third = await _next_task(floor, contact, 3)
        assert abs(third.created_at - datetime.combine(next_day, time(11), tzinfo=BERLIN)) <= timedelta(seconds=5)
        assert third.attempt == 3
        for task in (second, third):
            assert is_allowed(task.created_at, BERLIN, [OFFICE.daily()], "DE"), task.created_at

        assert [m.step_id for m in h.sent(contact)] == ["invite"]  # paused through the retries
        await floor.dispose(third, "voicemail")  # the 3rd attempt was the last: nurture resumes
        result = await ended(handle, floor.env)
        assert result.status == "completed"
        assert len(floor.tasks(contact)) == 3
        assert [m.step_id for m in h.sent(contact)] == ["invite", "last"]
        view_attempts = [t.attempt for t in floor.tasks(contact)]
        assert view_attempts == [1, 2, 3]


async def _next_task(floor: Floor, contact: str, count: int) -> CallTask:
    """Skip virtual time in steps until the `count`-th task exists (retries wait for calling hours)."""
    for _ in range(100):
        rows = floor.tasks(contact)
        if len(rows) >= count:
            return rows[count - 1]
        await floor.env.sleep(timedelta(minutes=30))
    raise AssertionError(f"task #{count} never appeared")


async def test_sla_breach_fires_at_the_deadline_and_not_before(floor):
    contact = floor.h.contact(timezone="Europe/Berlin", country="DE", consents=VOICE)
    handle, task = await floor.escalate(contact)
    child = floor.env.client.get_workflow_handle(task.workflow_id)

    await floor.env.sleep(task.due_at - await floor.env.get_current_time() - timedelta(minutes=2))
    assert floor.tasks(contact)[0].sla_breached_at is None
    assert floor.receiver.requests == []
    assert (await child.query(CallTaskWorkflow.state)).sla_state == "pending"

    await floor.env.sleep(timedelta(minutes=4))
    breached = await _eventually(
        lambda: floor.tasks(contact)[0].sla_breached_at is not None and floor.tasks(contact)[0]
    )
    assert abs(breached.sla_breached_at - task.due_at) <= timedelta(seconds=5)
    assert breached.priority == 10 and breached.status == "open"
    view = await child.query(CallTaskWorkflow.state)
    assert view.sla_state == "breached"

    headers, body = (await _eventually(lambda: floor.receiver.requests))[0]
    secret = supervisor_webhook_secret("test-secret", "telemarketing")
    webhook_signing.verify(secret, headers, body, now=int(headers["webhook-timestamp"]))
    payload = json.loads(body)
    assert (payload["type"], payload["task_id"], payload["queue"]) == ("sla.breached", task.id, "telemarketing")
    assert "Dewi" not in body.decode() and "+62" not in body.decode()  # ids only: no personal data leaves
    emails = await _eventually(lambda: [r for r in floor.h.console.records() if r["to"] == "spv@example.id"])
    assert "SLA" in emails[0]["subject"] and task.id in emails[0]["text"]
    with floor.h.sessions() as session:
        actions = [row.action for row in task_log(session, task.id)]
    assert actions.count("sla_breached") == 1 and "supervisor_notified" in actions

    # The telesales task is claimed within its 4h SLA: no breach when its deadline passes.
    await floor.dispose(task, "qualified")
    handoff = await floor.task(contact, 2)
    with floor.h.sessions.begin() as session:
        claimed = claim_task(session, handoff.id, agent_id=_agent(session), now=await floor.env.get_current_time())
        assert claimed.task is not None
    await floor.env.client.get_workflow_handle(handoff.workflow_id).signal("changed", TaskNudge("claimed"))
    await floor.env.sleep(timedelta(hours=5))
    assert floor.tasks(contact)[1].sla_breached_at is None
    assert len(floor.receiver.requests) == 1
    handoff_view = await floor.env.client.get_workflow_handle(handoff.workflow_id).query(CallTaskWorkflow.state)
    assert (handoff_view.status, handoff_view.sla_state, handoff_view.claimed_by) == ("claimed", "met", "agent-ani")
    await handle.signal("stop", StopSignal("test over"))
    await ended(handle, floor.env)


def _agent(session) -> str:
    from store.repos.tasks import get_agent, upsert_agent

    if get_agent(session, "agent-ani") is None:
        upsert_agent(session, "agent-ani", name="Ani", queues=["telemarketing", "telesales"])
    return "agent-ani"


async def _eventually(check, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)


async def test_a_foreign_callers_disposition_signal_still_reaches_the_task(floor):
    contact = floor.h.contact(timezone="Europe/Berlin", country="DE", consents=VOICE)
    handle, task = await floor.escalate(contact)
    await handle.signal("disposition", DispositionSignal("not_interested"))
    result = await ended(handle, floor.env)
    assert result.reason == "not_interested"
    with floor.h.sessions() as session:
        recorded = get_disposition(session, task.id)
        assert (recorded.disposition, recorded.source) == ("not_interested", "workflow")
    assert floor.tasks(contact)[0].status == "disposed"


async def test_stopping_the_enrollment_cancels_its_open_task(floor):
    contact = floor.h.contact(timezone="Europe/Berlin", country="DE", consents=VOICE)
    handle, _ = await floor.escalate(contact)
    await handle.signal("stop", StopSignal("unsubscribed elsewhere"))
    assert (await ended(handle, floor.env)).status == "stopped"
    cancelled = await _eventually(lambda: floor.tasks(contact)[0].status == "cancelled" and floor.tasks(contact)[0])
    assert "enrollment ended" in cancelled.close_reason


async def test_without_voice_consent_the_task_is_cancelled_and_nurture_resumes(floor):
    contact = floor.h.contact(timezone="Europe/Berlin", country="DE")  # email and SMS only
    handle, _ = await floor.escalate(contact)
    await floor.env.sleep(timedelta(days=2))  # the 2d wait, no longer paused
    result = await ended(handle, floor.env)
    assert result.status == "completed"
    assert floor.tasks(contact)[0].status == "cancelled" and "no_consent" in floor.tasks(contact)[0].close_reason
    assert [m.step_id for m in floor.h.sent(contact)] == ["invite", "last"]
