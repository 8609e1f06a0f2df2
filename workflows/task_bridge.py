"""Between the enrollment and its call tasks: what a `call-task` child is started with, and what its result
means to the engine. Kept apart so `contact-cadence` stays a thin driver."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core import engine
    from core.engine import EnrollmentState
    from core.model import Cadence, Window

from workflows.call_task import CallTaskInput, CallTaskResult


def child_input(
    task_id: str, enrollment: str, cadence: Cadence, contact_id: str, command: engine.CreateTask, state: EnrollmentState
) -> CallTaskInput:
    """The task's context: the cadence facts (so the script says what the messages said) and the score."""
    return CallTaskInput(
        task_id=task_id,
        enrollment_id=enrollment,
        cadence_id=cadence.id,
        cadence_name=cadence.name,
        purpose=cadence.purpose,
        locale=cadence.locale,
        contact_id=contact_id,
        kind=command.kind,
        step_id=command.step_id,
        queue=command.queue,
        script=command.script,
        sla_seconds=command.sla_seconds,
        attempt=command.attempt,
        score=state.score,
        facts=dict(cadence.facts),
        reason=_reason(cadence, command, state),
    )


def _reason(cadence: Cadence, command: engine.CreateTask, state: EnrollmentState) -> str:
    if command.attempt > 1:
        return f"attempt {command.attempt}: the last call ended '{state.disposition}'"
    if command.kind == "escalate" and cadence.escalate:
        return f'engaged (MQL): score {state.score} meets escalate.when "{cadence.escalate.when}"'
    if command.kind == "handoff" and cadence.handoff:
        return f"ready to buy (SQL): disposition '{state.disposition}' meets handoff.when \"{cadence.handoff.when}\""
    if command.kind == "callback":
        return "the contact asked to be called back at this time"
    return f"call step '{command.step_id}' of the cadence"


def happening(result: CallTaskResult) -> engine.Happening:
    """The child's result as the engine hears it: a disposition with the queue's retry policy, or a
    cancellation (nobody may call the contact, or the task failed)."""
    if result.outcome != "disposed" or result.disposition is None:
        return engine.TaskCancelled(result.reason or "cancelled")
    windows = (Window.model_validate(result.calling_hours).daily(),) if result.calling_hours else ()
    retry = engine.RetryRule(result.max_attempts, result.retry_spacing_seconds, windows)
    callback = datetime.fromisoformat(result.callback_at) if result.callback_at else None
    return engine.DispositionRecorded(result.disposition, callback, retry)
