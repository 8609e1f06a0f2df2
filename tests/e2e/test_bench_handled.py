"""bench (c) ends each side when its enrollments took its signals, read from real histories (dev server):
the time is that of the workflow task after each signal, a window keeps other signals out, and a signal no
workflow task has taken yet is an error, not a time."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.handled import NotYetHandled, fetch_histories, last_taken, signals_taken_at
from workflows.contact_cadence import EventSignal

pytestmark = pytest.mark.e2e
RAW = "bench.raw"


@workflow.defn(sandboxed=False)
class Inbox:
    """Takes ``event`` signals until it has ``count`` of them."""

    def __init__(self) -> None:
        self.names: list[str] = []

    @workflow.signal(name="event")
    def event(self, signal: EventSignal) -> None:
        self.names.append(signal.name)

    @workflow.run
    async def run(self, count: int) -> list[str]:
        await workflow.wait_condition(lambda: len(self.names) >= count)
        return self.names


def _raw(name: str) -> bool:
    return name == RAW


def _event_times(history: WorkflowHistory, event_type: int) -> list[datetime]:
    return [e.event_time.ToDatetime(tzinfo=UTC) for e in history.events if e.event_type == event_type]


async def _signal(client: Client, workflow_id: str, name: str, n: int) -> None:
    await client.get_workflow_handle(workflow_id).signal("event", EventSignal(name, None, f"{name}-{n}"))


async def test_each_signal_is_timed_by_the_workflow_task_that_took_it(dev_env: WorkflowEnvironment):
    client, queue = dev_env.client, f"handled-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=queue, workflows=[Inbox]):
        handle = await client.start_workflow(Inbox.run, 3, id=f"inbox-{uuid.uuid4().hex[:6]}", task_queue=queue)
        await asyncio.sleep(0.5)  # the first workflow task (before any signal) has completed
        since = datetime.now(UTC)
        await _signal(client, handle.id, RAW, 0)
        await asyncio.sleep(0.3)
        await _signal(client, handle.id, RAW, 1)
        await asyncio.sleep(0.3)
        until = datetime.now(UTC)
        await _signal(client, handle.id, "sms.delivered", 2)
        assert await handle.result() == [RAW, RAW, "sms.delivered"]
    [history] = (await fetch_histories(client, [handle.id, handle.id])).values()
    signalled = _event_times(history, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
    completed = _event_times(history, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)

    raw = signals_taken_at(history, _raw, since, until)
    assert raw == [min(c for c in completed if c > s) for s in signalled[:2]]
    assert raw[0] < signalled[1] < raw[1]  # each its own task, the first completion (at start) not counted
    ours = signals_taken_at(history, lambda name: name != RAW, until)
    assert ours == [completed[-1]] and ours[0] > signalled[2]
    assert signals_taken_at(history, _raw, until) == []  # the window keeps the earlier signals out ...
    assert signals_taken_at(history, lambda name: True, since, until) == raw  # ... and the later ones
    assert last_taken([history], _raw, since, until, expected=2) == raw[1]
    with pytest.raises(RuntimeError, match=r"2 matching signals .* 3 sent"):
        last_taken([history], _raw, since, until, expected=3)


async def test_a_signal_no_workflow_task_has_taken_is_not_given_a_time(dev_env: WorkflowEnvironment):
    client = dev_env.client
    handle = await client.start_workflow(  # nobody polls this queue: its workflow tasks never run
        Inbox.run, 1, id=f"inbox-{uuid.uuid4().hex[:6]}", task_queue=f"nobody-{uuid.uuid4().hex[:6]}"
    )
    since = datetime.now(UTC)
    await _signal(client, handle.id, RAW, 0)
    history = await handle.fetch_history()
    try:
        with pytest.raises(NotYetHandled, match="1 signal"):
            signals_taken_at(history, _raw, since)
    finally:
        await handle.terminate("test over")
