"""`call-task`: one call task's life, as a child of the contact's `contact-cadence` enrollment.

It opens the task (with the contact's score, facts and call script) through an activity, runs the SLA
timer, and waits for the task to be disposed; then it hands the disposition and the queue's retry policy
back to the parent, whose engine decides what happens next (SPEC section 3). The database is the task's
source of truth: the API and console change it and send a `changed` nudge; the workflow reads the task
back (and also looks every hour, so a lost nudge only delays). Foreign callers may instead signal
`disposition` with the data; the workflow records it.

SLA: when the deadline passes and the task has not been claimed, the breach is recorded (priority raised)
and the queue's supervisor is notified (signed webhook and/or email), once. Not before the deadline, and
not when a claim was recorded in time, even if its nudge is still on the way.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.task_types import (
        BreachResult,
        CallTaskOpened,
        CallTaskStatus,
        CancelCallTask,
        FinishCallTask,
        OpenCallTask,
        SupervisorNotice,
        TaskRef,
    )
    from workflows.types import CallTaskInput, CallTaskResult, CallTaskView, TaskDisposition, TaskNudge

WORKFLOW_TYPE = "call-task"
RECONCILE_EVERY = timedelta(hours=1)
BOOKKEEPING_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=10), maximum_attempts=12
)


def call_task_workflow_id(task_id: str) -> str:
    return f"call-task:{task_id}"


@workflow.defn(name=WORKFLOW_TYPE)
class CallTaskWorkflow:
    def __init__(self) -> None:
        self._input: CallTaskInput | None = None
        self._disposition: TaskDisposition | None = None
        self._nudged = False
        self._status: CallTaskStatus | None = None
        self._due: datetime | None = None
        self._breached_at: str | None = None
        self._notifications: list[asyncio.Task] = []

    @workflow.signal(name="disposition")
    def disposition(self, signal: TaskDisposition) -> None:
        if self._disposition is None:
            self._disposition = signal

    @workflow.signal(name="changed")
    def changed(self, nudge: TaskNudge) -> None:
        self._nudged = True

    @workflow.query(name="state")
    def state(self) -> CallTaskView:
        task, status = self._input, self._status
        return CallTaskView(
            task_id=task.task_id if task else "",
            queue=task.queue if task else "",
            kind=task.kind if task else "",
            attempt=task.attempt if task else 0,
            status=status.status if status else "opening",
            claimed_by=status.claimed_by if status else None,
            due_at=self._due.isoformat() if self._due else None,
            sla_state=self._sla_state(),
            sla_breached_at=self._breached_at,
        )

    @workflow.run
    async def run(self, task: CallTaskInput) -> CallTaskResult:
        self._input = task
        opened: CallTaskOpened = await workflow.execute_activity(
            "open-call-task",
            OpenCallTask(
                task_id=task.task_id,
                workflow_id=workflow.info().workflow_id,
                enrollment_id=task.enrollment_id,
                cadence_id=task.cadence_id,
                cadence_name=task.cadence_name,
                purpose=task.purpose,
                locale=task.locale,
                contact_id=task.contact_id,
                kind=task.kind,
                step_id=task.step_id,
                queue=task.queue,
                script=task.script,
                sla_seconds=task.sla_seconds,
                attempt=task.attempt,
                score=task.score,
                facts=task.facts,
                reason=task.reason,
                created_at=workflow.now().isoformat(),
            ),
            result_type=CallTaskOpened,
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=BOOKKEEPING_RETRY,
        )
        self._status = CallTaskStatus(task.task_id, opened.status, close_reason=opened.reason or None)
        if opened.status != "open":
            return CallTaskResult("cancelled", reason=opened.reason, task_id=task.task_id)
        self._due = datetime.fromisoformat(opened.due_at)
        try:
            status = await self._until_closed(task)
        except asyncio.CancelledError:
            # The enrollment ended (stopped, exited) while the task was open: take it off the queue.
            await workflow.execute_activity(
                "cancel-call-task",
                CancelCallTask(task.task_id, "the enrollment ended while the task was open"),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=BOOKKEEPING_RETRY,
            )
            raise
        for notification in self._notifications:
            await notification  # a breach notice goes out even when the task closes right after
        if status.status != "disposed" or status.disposition is None:
            return CallTaskResult("cancelled", reason=status.close_reason or "cancelled", task_id=task.task_id)
        return CallTaskResult(
            "disposed",
            status.disposition,
            status.callback_at,
            status.amount,
            status.currency,
            status.reason,
            task.task_id,
            opened.max_attempts,
            opened.retry_spacing_seconds,
            opened.calling_hours,
        )

    async def _until_closed(self, task: CallTaskInput) -> CallTaskStatus:
        sla_pending = True
        while True:
            if self._disposition is not None:
                signal, self._disposition = self._disposition, None
                finish = FinishCallTask(
                    task.task_id,
                    signal.disposition,
                    signal.agent_id,
                    signal.note,
                    signal.callback_at,
                    signal.amount,
                    signal.currency,
                    signal.reason,
                )
                try:
                    self._status = await self._activity("finish-call-task", finish)
                except ActivityError as err:
                    # e.g. an unknown disposition name: nothing was recorded, the task stays open
                    workflow.logger.warning("disposition %r refused: %s", signal.disposition, err.cause)
                    self._nudged = True
                    continue
            elif self._nudged:
                self._nudged = False
                self._status = await self._activity("call-task-status", TaskRef(task.task_id))
            status = self._status
            assert status is not None
            if status.status in ("disposed", "cancelled"):
                return status
            if status.sla_breached_at is not None or _claimed_in_time(status, self._due):
                sla_pending = False
            timeout = RECONCILE_EVERY
            if sla_pending and self._due is not None:
                timeout = min(timeout, self._due - workflow.now())
            if timeout > timedelta(0):
                try:
                    await workflow.wait_condition(
                        lambda: self._disposition is not None or self._nudged, timeout=timeout
                    )
                    continue
                except TimeoutError:
                    pass
            if sla_pending and self._due is not None and workflow.now() >= self._due:
                sla_pending = False
                await self._check_breach(task)
            self._nudged = True  # look at the database: a nudge may have been lost

    async def _check_breach(self, task: CallTaskInput) -> None:
        result: BreachResult = await workflow.execute_activity(
            "call-task-sla-breach",
            TaskRef(task.task_id),
            result_type=BreachResult,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=BOOKKEEPING_RETRY,
        )
        if not result.breached:
            return
        self._breached_at = result.breached_at
        if result.notice is not None:
            self._notifications.append(asyncio.create_task(self._notify(result.notice)))

    async def _notify(self, notice: SupervisorNotice) -> None:
        try:
            await workflow.execute_activity(
                "notify-supervisor", notice, start_to_close_timeout=timedelta(seconds=60), retry_policy=NOTIFY_RETRY
            )
        except ActivityError:
            workflow.logger.warning("supervisor notification for task %s failed after retries", notice.task_id)

    async def _activity(self, name: str, argument: object) -> CallTaskStatus:
        return await workflow.execute_activity(
            name,
            argument,
            result_type=CallTaskStatus,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=BOOKKEEPING_RETRY,
        )

    def _sla_state(self) -> str:
        status = self._status
        if self._breached_at or (status and status.sla_breached_at):
            return "breached"
        if status and status.first_claimed_at:
            return "met"
        return "pending"


def _claimed_in_time(status: CallTaskStatus, due: datetime | None) -> bool:
    if status.first_claimed_at is None:
        return False
    return due is None or datetime.fromisoformat(status.first_claimed_at) <= due
