"""When the enrollments took their signals, by Temporal's own record: the end of a side's work in (c).

A signal call returns once the server has appended the signal to the workflow's history; the workflow task
that hands it to the workflow runs later. Timing a burst by its calls alone leaves most of that work out:
after 500 raw signals the worker and the server still spent 2.4 to 3.3 s of CPU on them (bench runs of
2026-12-06). (c) therefore ends each side when the last workflow task that took one of its signals has
completed, read from the histories afterwards (untimed), so both sides are charged for the same work: the
signal accepted, stored and seen by its enrollment.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory

SIGNALED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
TASK_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED


class NotYetHandled(RuntimeError):
    """A matching signal is in the history, but no workflow task has completed after it yet."""


def signals_taken_at(
    history: WorkflowHistory, wanted: Callable[[str], bool], since: datetime, until: datetime | None = None
) -> list[datetime]:
    """For each ``event`` signal appended from ``since`` until before ``until`` whose event name is ``wanted``:
    when the workflow task that took it completed.

    The server appends a signal that arrives while a workflow task is running after that task's completion,
    so the first completion after a signal in the history is the task that handed it to the workflow.
    """
    taken: list[datetime] = []
    waiting = 0
    for event in history.events:
        if event.event_type == SIGNALED:
            attributes = event.workflow_execution_signaled_event_attributes
            at = event.event_time.ToDatetime(tzinfo=UTC)
            in_window = since <= at and (until is None or at < until)
            if attributes.signal_name == "event" and in_window and wanted(_event_name(attributes)):
                waiting += 1
        elif event.event_type == TASK_COMPLETED and waiting:
            taken += [event.event_time.ToDatetime(tzinfo=UTC)] * waiting
            waiting = 0
    if waiting:
        raise NotYetHandled(f"{waiting} signal(s) to {history.workflow_id} not yet taken by a workflow task")
    return taken


def _event_name(attributes) -> str:
    payloads = attributes.input.payloads
    return json.loads(payloads[0].data).get("name", "") if payloads else ""


async def fetch_histories(client: Client, workflow_ids: Iterable[str]) -> dict[str, WorkflowHistory]:
    gate = asyncio.Semaphore(16)

    async def one(workflow_id: str) -> WorkflowHistory:
        async with gate:
            return await client.get_workflow_handle(workflow_id).fetch_history()

    ids = sorted(set(workflow_ids))
    return dict(zip(ids, await asyncio.gather(*map(one, ids)), strict=True))


def last_taken(
    histories: Iterable[WorkflowHistory],
    wanted: Callable[[str], bool],
    since: datetime,
    until: datetime | None,
    expected: int,
) -> datetime:
    """When the last of the ``expected`` matching signals in the window was taken by its workflow."""
    taken = [at for history in histories for at in signals_taken_at(history, wanted, since, until)]
    if len(taken) != expected:
        raise RuntimeError(f"{len(taken)} matching signals in the histories from {since:%H:%M:%S}; {expected} sent")
    return max(taken)
