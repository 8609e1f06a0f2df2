"""The call floor's rules, shared by the task API and the agent console: who may see, claim, release and
dispose of which task, and the contact context an agent works from.

Each function runs inside one database transaction (``Database.run``) and raises ``ProblemError`` with a
detail that says what was wrong and how to fix it. Telling the task's workflow is the caller's job, after
the commit (``nudge``): the database is the task's source of truth; the workflow reads it back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from typing import Any, TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from activities.call_checks import vet_candidate
from api.deps import Database, Principal
from api.problems import ProblemError
from core.jurisdiction import JurisdictionPolicy
from core.permission import Verdict
from store.models import Contact
from store.repos import claims as claims_repo
from store.repos import tasks as task_repo
from store.repos.consent import consent_overview
from store.repos.outbox import messages_for_contact
from store.repos.timeline import contact_timeline
from store.task_models import CallDisposition, CallTask
from workflows.call_task import TaskNudge

log = logging.getLogger("omnireach.api.tasks")
T = TypeVar("T")


@dataclass(frozen=True)
class Desk:
    """Who is working the floor: an agent (its queues) or a supervisor / admin (every queue)."""

    name: str
    agent_id: str | None
    queues: tuple[str, ...] | None  # None: every queue
    supervisor: bool

    def works(self, queue: str) -> bool:
        return self.queues is None or queue in self.queues


def desk_for(session: Session, principal: Principal) -> Desk:
    """The caller's desk, or 403: agent keys need an agent that exists; developer keys have no desk."""
    agent = task_repo.get_agent(session, principal.agent_id) if principal.agent_id else None
    if principal.agent_id and (agent is None or agent.disabled_at is not None):
        raise ProblemError(
            403,
            f"the key '{principal.key_prefix}' belongs to agent '{principal.agent_id}', which is not set up on the "
            "call floor; create it with `omnireach agents add ID --queue QUEUE`",
        )
    if agent is not None:
        if agent.role == "supervisor":
            return Desk(agent.name, agent.id, None, True)
        return Desk(agent.name, agent.id, tuple(task_repo.agent_queues(session, agent.id)), False)
    if "admin" in principal.scopes:
        return Desk("admin", None, None, True)
    raise ProblemError(
        403,
        f"call tasks need an agent key (scope 'agent' with an agent id) or an admin key; the key "
        f"'{principal.key_prefix}' has: {', '.join(sorted(principal.scopes)) or 'none'}",
    )


def visible_task(session: Session, desk: Desk, task_id: str) -> CallTask:
    """The task, if this desk may see it: 404 when it does not exist, 403 when it is another queue's or
    another agent's."""
    task = task_repo.get_task(session, task_id)
    if task is None:
        raise ProblemError(404, f"no call task {task_id!r}; list yours with GET /v1/tasks")
    if desk.supervisor:
        return task
    if not desk.works(task.queue):
        raise ProblemError(403, f"task {task_id} is in queue '{task.queue}', which you do not work ({_queues(desk)})")
    if task.claimed_by is not None and task.claimed_by != desk.agent_id:
        raise ProblemError(403, f"task {task_id} is claimed by another agent; only they can see or change it")
    return task


def list_visible(
    session: Session, desk: Desk, *, queue: str | None = None, status: list[str] | None = None, limit: int = 100
) -> list[CallTask]:
    if queue is not None and not desk.works(queue):
        raise ProblemError(403, f"you do not work queue '{queue}' ({_queues(desk)})")
    queues = [queue] if queue is not None else (list(desk.queues) if desk.queues is not None else None)
    visible_to = None if desk.supervisor else desk.agent_id
    return task_repo.list_tasks(session, queues=queues, statuses=status, visible_to=visible_to, limit=limit)


@dataclass
class Claimed:
    task: CallTask | None
    nudge: list[tuple[str, str]] = field(default_factory=list)  # (workflow id, what changed)
    deferred: int = 0


def claim(
    session: Session,
    desk: Desk,
    *,
    now: datetime,
    salt: str,
    policy: JurisdictionPolicy,
    queue: str | None = None,
    task_id: str | None = None,
) -> Claimed:
    """Claim a named task, or the most urgent one of ``queue`` (default: all the desk's queues). Calling
    hours, voice consent and DNC are checked first: a contact outside their hours is skipped until then,
    one nobody may call is taken off the queue (and its enrollment told)."""
    if desk.agent_id is None:
        raise ProblemError(403, "claiming needs an agent key: an admin key has no agent to assign the task to")

    def vet(s: Session, candidate: claims_repo.Candidate, at: datetime) -> Verdict:
        return vet_candidate(s, candidate, at, salt=salt, policy=policy)

    if task_id is not None:
        visible_task(session, desk, task_id)
        try:
            outcome = claims_repo.claim_task(session, task_id, agent_id=desk.agent_id, now=now, vet=vet, salt=salt)
        except task_repo.TaskConflict as exc:
            raise ProblemError(409, str(exc)) from exc
        if outcome.task is None:
            why = "outside the contact's calling hours" if outcome.deferred else "nobody may call this contact"
            detail = f"task {task_id} cannot be claimed now: {why}"
            if outcome.deferred:
                detail += f"; it is back in the queue from {outcome.deferred[0][1].isoformat()}"
            raise ProblemError(409, detail)
    else:
        if queue is not None and not desk.works(queue):
            raise ProblemError(403, f"you do not work queue '{queue}' ({_queues(desk)})")
        queues = [queue] if queue else (list(desk.queues) if desk.queues is not None else _all_queues(session))
        outcome = claims_repo.claim_next(session, agent_id=desk.agent_id, queues=queues, now=now, vet=vet, salt=salt)
    nudges = [(t.workflow_id, "cancelled") for t in outcome.cancelled if t.workflow_id]
    if outcome.task is not None and outcome.task.workflow_id:
        nudges.append((outcome.task.workflow_id, "claimed"))
    return Claimed(outcome.task, nudges, len(outcome.deferred))


def release(session: Session, desk: Desk, task_id: str, *, now: datetime, note: str = "") -> CallTask:
    task = visible_task(session, desk, task_id)
    if task.status == "claimed" and task.claimed_by != desk.agent_id and not desk.supervisor:
        raise ProblemError(403, f"task {task_id} is claimed by another agent")
    try:
        return task_repo.release_task(session, task_id, agent_id=desk.agent_id or "admin", now=now, note=note)
    except task_repo.TaskConflict as exc:
        raise ProblemError(409, f"{exc}; only a claimed task can be released") from exc


@dataclass(frozen=True)
class DispositionInput:
    disposition: str
    note: str | None = None
    callback_at: datetime | None = None
    amount: Decimal | None = None
    currency: str | None = None
    reason: str | None = None


def dispose(
    session: Session, desk: Desk, task_id: str, data: DispositionInput, *, now: datetime, source: str
) -> tuple[CallTask, CallDisposition]:
    """Record the disposition of a task the desk holds. The data each disposition needs is checked here:
    `callback` a future callback_at, `won` an amount, `lost` a reason."""
    task = visible_task(session, desk, task_id)
    if task.status == "open":
        raise ProblemError(409, f"task {task_id} is not claimed: claim it (POST /v1/tasks/claim) before disposing")
    if task.status == "claimed" and task.claimed_by != desk.agent_id and not desk.supervisor:
        raise ProblemError(403, f"task {task_id} is claimed by another agent")
    check_disposition_data(data, now)
    record = task_repo.DispositionData(
        data.disposition,
        desk.agent_id,
        data.note,
        data.callback_at,
        data.amount,
        data.currency,
        data.reason,
        source,
    )
    try:
        row = task_repo.record_disposition(session, task_repo.lock_task(session, task_id) or task, record, now=now)
    except task_repo.TaskConflict as exc:
        raise ProblemError(409, str(exc)) from exc
    log.info("event=task_disposed task=%s disposition=%s agent=%s", task_id, data.disposition, desk.agent_id)
    return task, row


def check_disposition_data(data: DispositionInput, now: datetime) -> None:
    if data.disposition == "callback":
        if data.callback_at is None:
            raise ProblemError.invalid("callback_at", "a callback needs the agreed time (ISO 8601 with offset)")
        if data.callback_at <= now:
            raise ProblemError.invalid(
                "callback_at", f"{data.callback_at.isoformat()} is in the past; pick a later time"
            )
    if data.disposition == "won" and data.amount is None:
        raise ProblemError.invalid("amount", "a won deal needs its amount (e.g. 15000000.00) for revenue reports")
    if data.disposition == "lost" and not (data.reason or "").strip():
        raise ProblemError.invalid("reason", "a lost deal needs the reason (price, timing, competitor, ...)")
    if data.amount is not None and data.amount < 0:
        raise ProblemError.invalid("amount", "the amount cannot be negative")


def sla_of(task: CallTask, now: datetime) -> dict[str, Any]:
    """pending (seconds left), met (claimed in time), breached (when)."""
    if task.sla_breached_at is not None:
        state = "breached"
    elif task.first_claimed_at is not None and task.first_claimed_at <= task.due_at:
        state = "met"
    elif task.first_claimed_at is not None or now >= task.due_at:
        state = "breached"
    else:
        state = "pending"
    left = int((task.due_at - now).total_seconds()) if state == "pending" else None
    return {"state": state, "due_at": task.due_at, "breached_at": task.sla_breached_at, "seconds_left": left}


@dataclass
class TaskContext:
    """What an agent needs on screen: the task, the contact, what they were sent (as rendered), what
    happened, where consent stands, and the task's own history."""

    task: CallTask
    contact: Contact | None
    consents: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    timeline: list[dict[str, Any]]
    disposition: CallDisposition | None
    log: list[dict[str, Any]]
    earlier_tasks: list[CallTask]


def context(session: Session, desk: Desk, task_id: str) -> TaskContext:
    task = visible_task(session, desk, task_id)
    contact = session.get(Contact, task.contact_id)
    consents = [
        {"channel": c, "purpose": p, "status": state.status, "since": state.occurred_at, "method": state.method}
        for (c, p), state in sorted(consent_overview(session, task.contact_id).items())
    ]
    messages = [
        {
            "channel": m.channel,
            "step_id": m.step_id,
            "cadence_id": m.cadence_id,
            "subject": m.subject,
            "body": m.body,
            "status": m.status,
            "sent_at": m.sent_at,
        }
        for m in messages_for_contact(session, task.contact_id, sent_only=True)
    ]
    timeline = [
        {"at": item.at, "kind": item.kind, "summary": item.summary}
        for item in contact_timeline(session, task.contact_id)
    ]
    earlier = [t for t in task_repo.list_tasks(session, contact_id=task.contact_id, limit=50) if t.id != task.id]
    log_rows = [
        {"at": row.at, "action": row.action, "agent_id": row.agent_id, "detail": row.detail}
        for row in task_repo.task_log(session, task.id)
    ]
    return TaskContext(
        task, contact, consents, messages, timeline, task_repo.get_disposition(session, task.id), log_rows, earlier
    )


async def nudge(client: Client | None, changes: list[tuple[str, str]]) -> None:
    """Tell each task's workflow that its row changed. Best effort: a task made without a workflow has
    none to tell, and a lost nudge is caught by the workflow's hourly look at the database."""
    if client is None:
        return
    for workflow_id, what in changes:
        try:
            await client.get_workflow_handle(workflow_id).signal("changed", TaskNudge(what))
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                log.warning("event=task_nudge_failed workflow=%s what=%s status=%s", workflow_id, what, exc.status)


async def run_claim(db: Database, fn: Callable[[Session], T], *, grouped: bool = False) -> T:
    """A claim's transaction: like ``Database.run``, but serialized per process on SQLite (and retried if
    another process holds the database) so many agents pressing "next task" at once never see an error.
    ``grouped``: shared with the claims of other agents arriving meanwhile (``Database.claim_groups``); for
    "next task", where a refusal is rare (a refused member makes its group run again one by one)."""
    run = db.claim_groups.run if grouped else partial(claims_repo.run_serialized, db.session_factory)
    try:
        return await run_in_threadpool(run, fn)
    except OperationalError as exc:
        log.error("event=db_unavailable error=%s", type(exc.orig).__name__)
        raise ProblemError(503, "the database is busy; nothing was claimed, try again in a moment") from exc


def utcnow() -> datetime:
    return datetime.now(UTC)


def _queues(desk: Desk) -> str:
    return "your queues: " + (", ".join(desk.queues) if desk.queues else "none")


def _all_queues(session: Session) -> list[str]:
    return [q.name for q in task_repo.list_queues(session)]
