"""`contact-cadence`: one contact's durable journey through one cadence (SPEC section 8).

The workflow is a thin driver of `core.engine.advance`: it executes the command the engine returns
(deliver, sleep, open a call task, finish), feeds back what happened (signals, timers, results) and
continues-as-new when Temporal suggests it. It holds no business rules of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ChildWorkflowError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from activities.types import (
        DecisionRecord,
        DeliverRequest,
        DeliverResult,
        EnrollmentRecord,
        ProfileRequest,
    )
    from core import engine
    from core.engine import ContactProfile, EnrollmentState
    from core.model import Cadence, SendStep
    from core.trace import describe
    from workflows.types import (
        DispositionSignal,
        EnrollmentInput,
        EnrollmentResult,
        EnrollmentView,
        EventSignal,
        StopSignal,
    )

from workflows import task_bridge
from workflows.call_task import CallTaskResult, TaskDisposition, call_task_workflow_id

WORKFLOW_TYPE = "contact-cadence"
DELIVER_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=10),
    non_retryable_error_types=["TemplateError", "configuration"],
)
BOOKKEEPING_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))
# A worker killed mid-send stops heartbeating (activities.heartbeats): the retry starts after this, not after
# the whole start-to-close timeout. Its in-flight mark makes the retry ask the provider before sending again.
DELIVER_HEARTBEAT_TIMEOUT = timedelta(seconds=30)


def enrollment_id(cadence_id: str, contact_id: str) -> str:
    """The workflow id: one running enrollment per contact and cadence makes enrolling idempotent."""
    return f"cadence:{cadence_id}:{contact_id}"


@workflow.defn(name=WORKFLOW_TYPE)
class ContactCadenceWorkflow:
    def __init__(self) -> None:
        self._inbox: list[engine.Happening] = []
        self._state = EnrollmentState()
        self._cadence: Cadence | None = None
        self._contact_id = ""
        self._waiting: engine.Wait | None = None
        self._trace: list[str] = []
        self._task: workflow.ChildWorkflowHandle | None = None  # the open call task's child workflow
        self._task_report: asyncio.Task | None = None

    @workflow.signal(name="event")
    def event(self, signal: EventSignal) -> None:
        self._inbox.append(engine.EventArrived(signal.name, signal.step_id, signal.event_id))

    @workflow.signal(name="disposition")
    async def disposition(self, signal: DispositionSignal) -> None:
        if self._task is not None:  # the open call task records it and reports back with its queue's policy
            await self._task.signal("disposition", TaskDisposition(signal.disposition, signal.callback_at))
            return
        at = datetime.fromisoformat(signal.callback_at) if signal.callback_at else None
        self._inbox.append(engine.DispositionRecorded(signal.disposition, at))

    @workflow.signal(name="stop")
    def stop(self, signal: StopSignal) -> None:
        self._inbox.append(engine.StopRequested(signal.reason))

    @workflow.query(name="state")
    def state(self) -> EnrollmentView:
        cadence, s = self._cadence, self._state
        step = cadence.steps[s.step_index].id if cadence and s.step_index < len(cadence.steps) else None
        waiting = self._waiting
        return EnrollmentView(
            cadence_id=cadence.id if cadence else "",
            contact_id=self._contact_id,
            status=s.status,
            step_id=step,
            score=s.score,
            variants=s.variants,
            sent=s.sent,
            skipped=s.skipped,
            waiting=waiting.reason if waiting else None,
            waiting_until=waiting.until.isoformat() if waiting and waiting.until else None,
            escalated=s.escalated,
            handed_off=s.handed_off,
            open_task=vars(s.open_task) if s.open_task else None,
            trace=list(self._trace),
        )

    @workflow.run
    async def run(self, start: EnrollmentInput) -> EnrollmentResult:
        cadence = Cadence.model_validate(start.cadence)
        self._cadence, self._contact_id = cadence, start.contact_id
        wid = workflow.info().workflow_id
        self._inbox = [engine.EventArrived(e.name, e.step_id, e.event_id) for e in start.pending] + self._inbox
        profile = start.profile
        if profile is None:
            profile = await workflow.execute_activity(
                "load-contact-profile",
                ProfileRequest(start.contact_id),
                result_type=ContactProfile,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=BOOKKEEPING_RETRY,
            )
            await self._bookkeep(
                EnrollmentRecord(
                    wid, cadence.id, start.contact_id, "running", snapshot_hash=_snapshot_hash(start.cadence)
                )
            )
        self._state = start.state or EnrollmentState()
        happened: engine.Happening = engine.Started()
        while True:
            before = dict(self._state.skipped)
            # The engine is pure and deterministic, but the holiday calendars and zoneinfo it reads touch
            # locale and file APIs the sandbox refuses; it runs unrestricted (its modules are passed through).
            with workflow.unsafe.sandbox_unrestricted():
                self._state, command = engine.advance(cadence, profile, self._state, happened, workflow.now())
            self._trace = [*self._trace[-199:], describe(command, workflow.now())]
            await self._record_skips(wid, before, cadence)
            if isinstance(command, engine.Finish):
                await self._cancel_call_task()
                await self._bookkeep(
                    EnrollmentRecord(wid, cadence.id, start.contact_id, command.status, command.reason)
                )
                return EnrollmentResult(
                    command.status, command.reason, self._state.score, self._state.sent, self._state.skipped
                )
            if isinstance(command, engine.Send):
                happened = await self._deliver(wid, cadence, command)
            elif isinstance(command, engine.CreateTask):
                if workflow.patched("call-task-child"):
                    await self._open_call_task(wid, cadence, command)
                else:  # histories from before call tasks were child workflows
                    await self._record(
                        wid,
                        command.step_id,
                        "task_opened",
                        command.kind,
                        f"call task in queue '{command.queue}' (script {command.script})",
                    )
                happened = engine.TimerFired()
            else:
                if self._should_continue_as_new():
                    workflow.continue_as_new(EnrollmentInput(start.cadence, start.contact_id, self._state, profile))
                happened = await self._wait(command)

    async def _wait(self, command: engine.Wait) -> engine.Happening:
        self._waiting = command
        try:
            if self._inbox:
                return self._inbox.pop(0)
            if command.until is None:
                await workflow.wait_condition(lambda: bool(self._inbox))
                return self._inbox.pop(0)
            remaining = command.until - workflow.now()
            if remaining <= timedelta(0):
                return engine.TimerFired()
            try:
                await workflow.wait_condition(lambda: bool(self._inbox), timeout=remaining)
            except TimeoutError:
                return engine.TimerFired()
            return self._inbox.pop(0)
        finally:
            self._waiting = None

    async def _open_call_task(self, wid: str, cadence: Cadence, command: engine.CreateTask) -> None:
        """Start the `call-task` child; its result comes back through the inbox as a disposition."""
        task_id = str(workflow.uuid4())
        start = task_bridge.child_input(task_id, wid, cadence, self._contact_id, command, self._state)
        handle = await workflow.start_child_workflow(
            "call-task",
            start,
            id=call_task_workflow_id(task_id),
            result_type=CallTaskResult,
            parent_close_policy=ParentClosePolicy.REQUEST_CANCEL,
        )
        self._task = handle

        async def report() -> None:
            try:
                happened = task_bridge.happening(await handle)
            except (ChildWorkflowError, asyncio.CancelledError) as err:
                happened = engine.TaskCancelled(f"task_ended: {getattr(err, 'cause', None) or 'cancelled'}")
            if self._task is handle:
                self._task = None
            self._inbox.append(happened)

        self._task_report = asyncio.create_task(report())  # the enrollment keeps running while the task is open

    async def _cancel_call_task(self) -> None:
        """The enrollment ends while a task is open: take the task off the queue before finishing."""
        if self._task is None or self._task_report is None:
            return
        self._task.cancel()
        await workflow.wait([self._task_report])

    async def _deliver(self, wid: str, cadence: Cadence, command: engine.Send) -> engine.SendReported:
        step = cadence.step(command.step_id)
        assert isinstance(step, SendStep)
        request = DeliverRequest(
            enrollment_id=wid,
            message_key=f"{wid}/{command.step_id}/{command.attempt}",
            cadence_id=cadence.id,
            cadence_name=cadence.name,
            purpose=cadence.purpose,
            contact_id=self._contact_id,
            step_id=command.step_id,
            channel=command.channel,
            message=command.message,
            locale=cadence.locale,
            facts=cadence.facts,
            variant=command.variant,
            fallback=command.fallback,
            window=cadence.window.model_dump(mode="json") if cadence.window else None,
            per_day=cadence.caps.per_day if cadence.caps else None,
            per_week=cadence.caps.per_week if cadence.caps else None,
        )
        try:
            result = await workflow.execute_activity(
                "deliver",
                request,
                result_type=DeliverResult,
                start_to_close_timeout=timedelta(minutes=2),
                heartbeat_timeout=DELIVER_HEARTBEAT_TIMEOUT,
                retry_policy=DELIVER_RETRY,
            )
        except ActivityError as err:
            reason = getattr(err.cause, "type", None) or "failed"
            return engine.SendReported(command.step_id, "failed", reason=str(reason))
        until = datetime.fromisoformat(result.until) if result.until else None
        return engine.SendReported(command.step_id, result.outcome, result.channel, until, result.reason)

    async def _record_skips(self, wid: str, before: dict[str, str], cadence: Cadence) -> None:
        for step_id, reason in self._state.skipped.items():
            if step_id not in before and reason == "condition_false":
                step = cadence.step(step_id)
                await self._record(wid, step_id, "skipped", reason, f"condition false: {step.if_ if step else ''}")

    async def _record(self, wid: str, step_id: str, decision: str, reason: str, detail: str) -> None:
        await workflow.execute_activity(
            "record-decision",
            DecisionRecord(wid, self._contact_id, step_id, decision, reason, detail),
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=BOOKKEEPING_RETRY,
        )

    async def _bookkeep(self, record: EnrollmentRecord) -> None:
        await workflow.execute_activity(
            "record-enrollment", record, start_to_close_timeout=timedelta(seconds=30), retry_policy=BOOKKEEPING_RETRY
        )

    def _should_continue_as_new(self) -> bool:
        return workflow.info().is_continue_as_new_suggested() and not self._inbox and self._task is None


def _snapshot_hash(snapshot: dict) -> str:
    return hashlib.sha256(json.dumps(snapshot, sort_keys=True).encode()).hexdigest()[:16]
