"""Long enrollments continue-as-new and lose nothing on the way (DESIGN.md convention 7).

1. A 365-day cadence (one SMS a day) with a scored event from the contact every day, on the time-skipping
   server: every run stays far below 10,000 history events, all 365 messages go out once, every event counts.
2. On the real dev server, with Temporal's continue-as-new suggestion lowered to 150 events, a burst of
   concurrent signals races the hand-over between runs: none is lost or counted twice.
"""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.long_cadence import long_cadence
from bench.world import (
    WorkerParts,
    add_contacts,
    console_channel,
    open_store,
    product_worker,
    repo_library,
    scratch_dir,
    virtual_clock,
)
from core.settings import Settings
from store.models import OutboxMessage
from tests.conftest import dev_server_binary
from workflows.contact_cadence import WORKFLOW_TYPE, EnrollmentInput, EnrollmentResult, EventSignal, enrollment_id

HISTORY_LIMIT = 10_000


@pytest.fixture
def parts() -> Iterator[WorkerParts]:
    var = scratch_dir()  # in memory: this test is about history sizes, not disk speed
    settings = Settings(database_url=f"sqlite:///{var / 'omnireach.db'}", secret_key="s", var_dir=var)
    yield WorkerParts(settings, open_store(settings.database_url), repo_library(), console_channel(var))
    shutil.rmtree(var, ignore_errors=True)


async def _start(client: Client, parts: WorkerParts, task_queue: str, days: int) -> WorkflowHandle:
    cadence = long_cadence(days)
    contact = add_contacts(parts.sessions, 1)[0]
    return await client.start_workflow(
        WORKFLOW_TYPE,
        EnrollmentInput(cadence.snapshot(), contact),
        id=enrollment_id(cadence.id, contact),
        task_queue=task_queue,
        result_type=EnrollmentResult,
    )


async def _runs(client: Client, handle: WorkflowHandle) -> list[tuple[int, int]]:
    """(history events, signals received) of every run, first to last, following the continue-as-new chain."""
    runs, run_id = [], handle.first_execution_run_id
    while run_id:
        history = await client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
        signals = sum(1 for e in history.events if e.HasField("workflow_execution_signaled_event_attributes"))
        runs.append((len(history.events), signals))
        last = history.events[-1]
        continued = last.HasField("workflow_execution_continued_as_new_event_attributes")
        run_id = last.workflow_execution_continued_as_new_event_attributes.new_execution_run_id if continued else None
    return runs


def _sent_keys(parts: WorkerParts, workflow_id: str) -> tuple[int, int]:
    with parts.sessions() as session:
        rows = session.execute(
            select(func.count(), func.count(func.distinct(OutboxMessage.message_key))).where(
                OutboxMessage.enrollment_id == workflow_id, OutboxMessage.status == "sent"
            )
        ).one()
    return rows[0], rows[1]


@workflow.defn(name="daily-contact", sandboxed=False)
class DailyContact:
    """The contact: one scored event a (virtual) day, signalled to the enrollment through Temporal.

    It runs beside the enrollment on the time-skipping server, so a year passes in seconds without a
    client round trip per day; the enrollment sees exactly what 365 webhook-driven signals would give it.
    """

    @workflow.run
    async def run(self, target: str, days: int) -> None:
        enrollment = workflow.get_external_workflow_handle(target)
        for day in range(days):
            await workflow.sleep(timedelta(days=1))
            await enrollment.signal("event", EventSignal("daily.used", None, f"day-{day}"))


async def test_a_year_of_daily_sends_and_events_keeps_every_run_small(time_skipping_env: WorkflowEnvironment, parts):
    env = time_skipping_env
    started = time.monotonic()
    queue = f"can-{uuid.uuid4().hex[:6]}"
    async with (
        product_worker(env.client, parts, queue, clock=virtual_clock),
        Worker(env.client, task_queue=f"{queue}-contact", workflows=[DailyContact]),
    ):
        handle = await _start(env.client, parts, queue, days=365)
        contact = await env.client.start_workflow(
            DailyContact.run, args=[handle.id, 365], id=f"daily-{handle.id}", task_queue=f"{queue}-contact"
        )
        result = await handle.result()
        await contact.result()
    runs = await _runs(env.client, handle)
    lengths = [events for events, _ in runs]
    print(f"\n365 days, 365 signals: runs {lengths}, {time.monotonic() - started:.1f}s wall")

    assert result.status == "completed"
    assert len(lengths) >= 2, f"a year of daily events should continue-as-new at least once: {lengths}"
    assert max(lengths) < HISTORY_LIMIT
    assert result.score == 365, "an event signalled around a continue-as-new was lost or counted twice"
    assert len(result.sent) == 365
    assert _sent_keys(parts, handle.id) == (365, 365)


async def test_signals_racing_continue_as_new_are_all_counted(parts):
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=dev_server_binary(),
        ui=False,
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=150"],
    )
    signals = 400
    try:
        async with product_worker(env.client, parts, "can-race") as worker:
            handle = await _start(env.client, parts, worker.task_queue, days=3)
            for batch in range(0, signals, 25):  # 25 at a time, while runs hand over every ~150 events
                await asyncio.gather(
                    *(
                        handle.signal("event", EventSignal("daily.used", None, f"evt-{n}"))
                        for n in range(batch, batch + 25)
                    )
                )
            await handle.signal("event", EventSignal("purchased", None, "order-1"))
            result = await asyncio.wait_for(handle.result(), 60)
            runs = await _runs(env.client, handle)
    finally:
        await env.shutdown()
    print(f"\n{signals} concurrent signals: (events, signals) per run {runs}")

    assert (result.status, result.reason) == ("exited", "exit_on:purchased")
    # The burst straddled at least one hand-over: runs before and after it received some of the signals.
    assert sum(1 for _, received in runs if received) >= 2, f"no hand-over happened during the burst: {runs}"
    assert result.score == signals
