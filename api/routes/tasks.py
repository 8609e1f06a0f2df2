"""Agent work (SPEC section 7): list tasks, claim the next one, dispose of it, release it; plus each task's
SLA state and the contact context. An agent key sees and claims only its queues' tasks and only its own
claimed tasks (403 otherwise); supervisor agents and admin keys see every queue."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api import task_service as svc
from api.deps import Principal, ServicesDep, authenticate
from api.problems import problem_responses
from store.repos.tasks import get_disposition
from store.task_models import DISPOSITIONS, CallDisposition, CallTask

router = APIRouter(prefix="/v1/tasks", tags=["tasks"])
Caller = Annotated[Principal, Depends(authenticate)]
TaskId = Annotated[str, Path(description="The call task's id (from GET /v1/tasks or a claim)")]
Disposition = Literal[
    "qualified",
    "appointment_set",
    "not_interested",
    "do_not_call",
    "no_answer",
    "busy",
    "voicemail",
    "callback",
    "won",
    "lost",
]
assert set(Disposition.__args__) == set(DISPOSITIONS)  # type: ignore[attr-defined]


class SlaOut(BaseModel):
    state: Literal["pending", "met", "breached"] = Field(description="pending, met (claimed in time) or breached")
    due_at: datetime
    breached_at: datetime | None = None
    seconds_left: int | None = Field(None, description="While pending: seconds until the deadline")


class DispositionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    disposition: str
    agent_id: str | None = None
    note: str | None = None
    callback_at: datetime | None = None
    amount: Decimal | None = None
    currency: str | None = None
    reason: str | None = None
    recorded_at: datetime


class TaskOut(BaseModel):
    id: str
    queue: str
    kind: str = Field(description="escalate (MQL), handoff (SQL), call (a cadence step) or callback")
    status: str = Field(description="open, claimed, disposed or cancelled")
    attempt: int
    priority: int
    contact_id: str
    enrollment_id: str | None
    cadence_id: str | None
    step_id: str | None
    score: int
    reason: str | None
    script: str | None
    created_at: datetime
    not_before: datetime | None = Field(None, description="Hidden from claims until then (calling hours)")
    claimed_by: str | None
    claimed_at: datetime | None
    closed_at: datetime | None
    close_reason: str | None
    sla: SlaOut
    disposition: DispositionOut | None = None


class TaskDetailOut(TaskOut):
    script_text: str | None = Field(None, description="The call script, rendered from the cadence facts")
    facts: dict[str, Any]
    contact: dict[str, Any]
    consents: list[dict[str, Any]]
    messages: list[dict[str, Any]] = Field(description="What the contact was sent, as rendered")
    timeline: list[dict[str, Any]]
    log: list[dict[str, Any]]


class ClaimIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: str | None = Field(None, description="Only this queue (default: all queues you work)")
    task_id: str | None = Field(None, description="This task rather than the most urgent one")


class DispositionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disposition: Disposition
    note: str | None = Field(None, max_length=4000)
    callback_at: datetime | None = Field(None, description="callback: the agreed time, ISO 8601 with offset")
    amount: Decimal | None = Field(None, max_digits=16, decimal_places=2, description="won: the deal's value")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 4217, e.g. IDR")
    reason: str | None = Field(None, max_length=1000, description="lost: why")


class ReleaseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=1000)


def task_out(task: CallTask, disposition: CallDisposition | None, now: datetime) -> TaskOut:
    return TaskOut(
        id=task.id,
        queue=task.queue,
        kind=task.kind,
        status=task.status,
        attempt=task.attempt,
        priority=task.priority,
        contact_id=task.contact_id,
        enrollment_id=task.enrollment_id,
        cadence_id=task.cadence_id,
        step_id=task.step_id,
        score=task.score,
        reason=task.reason,
        script=task.script,
        created_at=task.created_at,
        not_before=task.not_before,
        claimed_by=task.claimed_by,
        claimed_at=task.claimed_at,
        closed_at=task.closed_at,
        close_reason=task.close_reason,
        sla=SlaOut(**svc.sla_of(task, now)),
        disposition=DispositionOut.model_validate(disposition) if disposition else None,
    )


@router.get(
    "",
    response_model=list[TaskOut],
    summary="Tasks you may work: your queues' open tasks and your own",
    responses=problem_responses(401, 403, 422, 500),
)
async def list_tasks(
    services: ServicesDep,
    caller: Caller,
    queue: Annotated[str | None, Query(description="Only this queue")] = None,
    task_status: Annotated[
        list[Literal["open", "claimed", "disposed", "cancelled"]] | None,
        Query(alias="status", description="Only these statuses (repeatable); default: all"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[TaskOut]:
    """Most urgent first (priority, then SLA deadline). Each task carries its SLA state."""
    now = svc.utcnow()

    def run(session: Session) -> list[TaskOut]:
        desk = svc.desk_for(session, caller)
        tasks = svc.list_visible(session, desk, queue=queue, status=list(task_status or []), limit=limit)
        return [task_out(t, get_disposition(session, t.id), now) for t in tasks]

    return await services.db.run(run)


@router.post(
    "/claim",
    response_model=TaskDetailOut,
    summary="Claim the most urgent task you may call now (or a named one)",
    responses={
        204: {"description": "Nothing to claim right now"},
        **problem_responses(401, 403, 404, 409, 413, 422, 500, 503),
    },
)
async def claim_task(body: ClaimIn, services: ServicesDep, caller: Caller) -> TaskDetailOut:
    """Atomic: one agent per task, even when many claim at once. Calling hours, voice consent and DNC are
    checked first; a task whose contact may not be called now is skipped (204 when none is left)."""
    now = svc.utcnow()
    salt = services.settings.secret_key

    def run(session: Session) -> tuple[svc.Claimed, TaskDetailOut | None]:
        desk = svc.desk_for(session, caller)
        claimed = svc.claim(
            session, desk, now=now, salt=salt, policy=services.policy, queue=body.queue, task_id=body.task_id
        )
        detail = _detail(session, desk, claimed.task.id, now) if claimed.task else None
        return claimed, detail

    claimed, detail = await svc.run_claim(services.db, run, grouped=body.task_id is None)
    await svc.nudge(services.temporal.client, claimed.nudge)
    if detail is None:
        return Response(status_code=status.HTTP_204_NO_CONTENT)  # type: ignore[return-value]
    return detail


@router.get(
    "/{task_id}",
    response_model=TaskDetailOut,
    summary="A task with its contact context, script and SLA state",
    responses=problem_responses(401, 403, 404, 500),
)
async def get_task(task_id: TaskId, services: ServicesDep, caller: Caller) -> TaskDetailOut:
    now = svc.utcnow()
    return await services.db.run(lambda s: _detail(s, svc.desk_for(s, caller), task_id, now))


@router.post(
    "/{task_id}/disposition",
    response_model=TaskOut,
    summary="Record what happened on the call",
    responses=problem_responses(401, 403, 404, 409, 413, 422, 500),
)
async def dispose_task(task_id: TaskId, body: DispositionIn, services: ServicesDep, caller: Caller) -> TaskOut:
    """Closes the task; the enrollment then does what SPEC section 3 says (handoff, retry, callback, end).
    `do_not_call` withdraws voice consent and suppresses the number at once; `won` / `lost` are recorded
    for revenue reports."""
    now = svc.utcnow()
    data = svc.DispositionInput(body.disposition, body.note, body.callback_at, body.amount, body.currency, body.reason)

    def run(session: Session) -> tuple[str | None, TaskOut]:
        desk = svc.desk_for(session, caller)
        task, row = svc.dispose(session, desk, task_id, data, now=now, source="api")
        return task.workflow_id, task_out(task, row, now)

    workflow_id, out = await services.db.run(run)
    await svc.nudge(services.temporal.client, [(workflow_id, "disposed")] if workflow_id else [])
    return out


@router.post(
    "/{task_id}/release",
    response_model=TaskOut,
    summary="Put a claimed task back in its queue",
    responses=problem_responses(401, 403, 404, 409, 413, 422, 500),
)
async def release_task(
    task_id: TaskId, services: ServicesDep, caller: Caller, body: ReleaseIn | None = None
) -> TaskOut:
    now = svc.utcnow()

    def run(session: Session) -> tuple[str | None, TaskOut]:
        desk = svc.desk_for(session, caller)
        task = svc.release(session, desk, task_id, now=now, note=(body.note if body else None) or "")
        return task.workflow_id, task_out(task, None, now)

    workflow_id, out = await services.db.run(run)
    await svc.nudge(services.temporal.client, [(workflow_id, "released")] if workflow_id else [])
    return out


def _detail(session: Session, desk: svc.Desk, task_id: str, now: datetime) -> TaskDetailOut:
    ctx = svc.context(session, desk, task_id)
    base = task_out(ctx.task, ctx.disposition, now)
    contact = ctx.contact
    return TaskDetailOut(
        **base.model_dump(),
        script_text=ctx.task.script_text,
        facts=dict(ctx.task.facts or {}),
        contact={
            "id": contact.id,
            "external_id": contact.external_id,
            "name": contact.name,
            "phone": contact.phone,
            "email": contact.email,
            "country": contact.country,
            "timezone": contact.timezone,
            "locale": contact.locale,
        }
        if contact
        else {},
        consents=ctx.consents,
        messages=ctx.messages,
        timeline=ctx.timeline,
        log=ctx.log,
    )
