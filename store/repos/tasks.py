"""Call tasks: create, release, dispose, breach, cancel; queues and agents. Claiming is store.repos.claims.

Like every repository, these functions flush but never commit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from store.models import PURPOSES, Contact
from store.repos import milestones
from store.repos._common import check_choice, insert_or_get
from store.repos.consent import append_consent
from store.repos.suppressions import add_suppression
from store.task_models import (
    AGENT_ROLES,
    DISPOSITIONS,
    Agent,
    AgentQueue,
    CallDisposition,
    CallQueue,
    CallTask,
    CallTaskLog,
    RevenueRecord,
)

PRIORITY_RAISE_ON_BREACH = 10


class TaskConflict(ValueError):
    """The task is not in a state that allows this (already claimed, disposed, cancelled...)."""


# ---- queues and agents -----------------------------------------------------------------------------
def upsert_queue(
    session: Session,
    name: str,
    *,
    title: str | None = None,
    purpose: str | None = None,
    sla_seconds: int = 86400,
    calling_hours: dict[str, Any] | None = None,
    max_attempts: int = 3,
    retry_spacing_seconds: int = 7200,
    supervisor: dict[str, Any] | None = None,
) -> CallQueue:
    """Create the queue or bring its settings up to date (queues.yaml is the source of truth)."""
    values = {
        "title": title,
        "purpose": None if purpose is None else check_choice("purpose", purpose, PURPOSES),
        "sla_seconds": sla_seconds,
        "calling_hours": dict(calling_hours or {}),
        "max_attempts": max_attempts,
        "retry_spacing_seconds": retry_spacing_seconds,
        "supervisor": dict(supervisor or {}),
    }
    row, created = insert_or_get(session, CallQueue(name=name, **values), lambda: session.get(CallQueue, name))
    if not created:
        for key, value in values.items():
            if getattr(row, key) != value:
                setattr(row, key, value)
        session.flush()
    return row


def get_queue(session: Session, name: str) -> CallQueue | None:
    return session.get(CallQueue, name)


def list_queues(session: Session) -> list[CallQueue]:
    return list(session.scalars(select(CallQueue).order_by(CallQueue.name)))


def upsert_agent(
    session: Session,
    agent_id: str,
    *,
    name: str,
    queues: Iterable[str],
    phone: str | None = None,
    role: str = "agent",
) -> Agent:
    """Create or update an agent and set its queues (each must exist: sync queues.yaml first)."""
    check_choice("role", role, AGENT_ROLES)
    wanted = sorted(set(queues))
    missing = [q for q in wanted if session.get(CallQueue, q) is None]
    if missing:
        known = ", ".join(q.name for q in list_queues(session)) or "none yet"
        raise ValueError(f"unknown queue(s) {', '.join(missing)}; known queues: {known}")
    agent = session.get(Agent, agent_id)
    if agent is None:
        agent = Agent(id=agent_id, name=name, phone=phone, role=role)
        session.add(agent)
    else:
        agent.name, agent.phone, agent.role, agent.disabled_at = name, phone, role, None
    session.flush()
    current = set(agent_queues(session, agent_id))
    for queue in current - set(wanted):
        session.delete(session.get(AgentQueue, (agent_id, queue)))
    for queue in set(wanted) - current:
        session.add(AgentQueue(agent_id=agent_id, queue=queue))
    session.flush()
    return agent


def get_agent(session: Session, agent_id: str) -> Agent | None:
    return session.get(Agent, agent_id)


def list_agents(session: Session) -> list[Agent]:
    return list(session.scalars(select(Agent).order_by(Agent.id)))


def agent_queues(session: Session, agent_id: str) -> list[str]:
    """The queues an agent works (sorted)."""
    return list(
        session.scalars(select(AgentQueue.queue).where(AgentQueue.agent_id == agent_id).order_by(AgentQueue.queue))
    )


# ---- tasks ---------------------------------------------------------------------------------------
def log_task(
    session: Session, task_id: str, action: str, at: datetime, *, agent_id: str | None = None, detail: str = ""
) -> None:
    session.add(CallTaskLog(task_id=task_id, action=action, at=at, agent_id=agent_id, detail=detail or None))
    session.flush()


def create_task(
    session: Session, *, id: str, created_at: datetime, due_at: datetime, **fields: Any
) -> tuple[CallTask, bool]:
    """Insert the task under its id (the workflow's), or return the one an earlier attempt created."""
    row = CallTask(id=id, created_at=created_at, due_at=due_at, **fields)
    task, created = insert_or_get(session, row, lambda: session.get(CallTask, id))
    if created:
        log_task(session, id, "created", created_at, detail=fields.get("reason") or "")
        milestones.task_opened(session, task)
    return task, created


def get_task(session: Session, task_id: str) -> CallTask | None:
    return session.get(CallTask, task_id)


def lock_task(session: Session, task_id: str) -> CallTask | None:
    """The task, locked until the transaction ends (PostgreSQL; SQLite's transaction already is)."""
    return session.scalars(
        select(CallTask).where(CallTask.id == task_id).with_for_update().execution_options(populate_existing=True)
    ).one_or_none()


def release_task(session: Session, task_id: str, *, agent_id: str, now: datetime, note: str = "") -> CallTask:
    """Put a claimed task back in its queue (the agent could not call it after all)."""
    task = lock_task(session, task_id)
    if task is None:
        raise LookupError(f"no call task {task_id!r}")
    if task.status != "claimed":
        raise TaskConflict(not_open_reason(task) if task.status != "open" else f"task {task_id} is not claimed")
    task.status, task.claimed_by, task.claimed_at = "open", None, None
    session.flush()
    log_task(session, task.id, "released", now, agent_id=agent_id, detail=note)
    return task


def close_task(session: Session, task: CallTask, status: str, now: datetime, *, reason: str = "") -> None:
    task.status = status
    task.closed_at = now
    task.close_reason = reason or None
    session.flush()
    log_task(session, task.id, status, now, agent_id=task.claimed_by, detail=reason)


def cancel_task(session: Session, task_id: str, *, reason: str, now: datetime) -> bool:
    """Cancel an open or claimed task (its enrollment ended, nobody may call); False if already closed."""
    task = lock_task(session, task_id)
    if task is None or task.status in ("disposed", "cancelled"):
        return False
    close_task(session, task, "cancelled", now, reason=reason)
    return True


def mark_breached(session: Session, task_id: str, *, now: datetime) -> CallTask | None:
    """Record an SLA breach if the task is still waiting for its first claim past its deadline: the
    breach time, a higher priority and a log row. None when there is nothing to record (claimed in time,
    already breached, closed). The database, not the timer, decides: a claim that raced the timer wins."""
    task = lock_task(session, task_id)
    if task is None or task.sla_breached_at is not None or task.status not in ("open", "claimed"):
        return None
    if task.first_claimed_at is not None and task.first_claimed_at <= task.due_at:
        return None
    if now < task.due_at:
        return None
    task.sla_breached_at = now
    task.priority += PRIORITY_RAISE_ON_BREACH
    session.flush()
    waited = int((now - task.created_at).total_seconds())
    log_task(session, task.id, "sla_breached", now, detail=f"unclaimed {waited}s after creation (deadline passed)")
    milestones.sla_breached(session, task)
    return task


@dataclass(frozen=True)
class DispositionData:
    disposition: str
    agent_id: str | None = None
    note: str | None = None
    callback_at: datetime | None = None
    amount: Decimal | None = None
    currency: str | None = None
    reason: str | None = None
    source: str = "api"


def record_disposition(session: Session, task: CallTask, data: DispositionData, *, now: datetime) -> CallDisposition:
    """Close the task with the agent's disposition and apply what it means at once:
    ``do_not_call`` withdraws voice consent (every purpose) and suppresses the number for every cadence;
    ``won`` / ``lost`` write a revenue record. Idempotent: a task already disposed returns its disposition
    (TaskConflict when a different one was recorded)."""
    check_choice("disposition", data.disposition, DISPOSITIONS)
    existing = session.scalars(select(CallDisposition).where(CallDisposition.task_id == task.id)).one_or_none()
    if existing is not None:
        if existing.disposition != data.disposition:
            raise TaskConflict(f"task {task.id} was already disposed as {existing.disposition!r}")
        return existing
    if task.status == "cancelled":
        raise TaskConflict(not_open_reason(task))
    row = CallDisposition(
        task_id=task.id,
        disposition=data.disposition,
        agent_id=data.agent_id,
        note=data.note,
        callback_at=data.callback_at,
        amount=data.amount,
        currency=data.currency,
        reason=data.reason,
        source=data.source,
        recorded_at=now,
    )
    session.add(row)
    close_task(session, task, "disposed", now, reason=data.disposition)
    if data.disposition == "do_not_call":
        _do_not_call(session, task, data, now)
    if data.disposition in ("won", "lost"):
        revenue = RevenueRecord(
            task_id=task.id,
            enrollment_id=task.enrollment_id,
            cadence_id=task.cadence_id,
            contact_id=task.contact_id,
            agent_id=data.agent_id,
            outcome=data.disposition,
            amount=data.amount,
            currency=data.currency,
            reason=data.reason,
            recorded_at=now,
        )
        session.add(revenue)
        milestones.deal_closed(session, revenue)
    session.flush()
    milestones.task_disposed(session, task, row)
    return row


def _do_not_call(session: Session, task: CallTask, data: DispositionData, now: datetime) -> None:

    contact = session.get(Contact, task.contact_id)
    if contact is None:
        return
    who = f"agent {data.agent_id}" if data.agent_id else "an agent"
    for purpose in PURPOSES:
        append_consent(
            session,
            contact_id=contact.id,
            channel="voice",
            purpose=purpose,
            status="withdrawn",
            occurred_at=now,
            address=contact.phone,
            method="agent_call",
            source=f"call task {task.id}",
            agent_id=data.agent_id,
            evidence={"disposition": "do_not_call", "task_id": task.id, "note": data.note or ""},
        )
    if contact.phone:
        add_suppression(
            session,
            kind="company_dnc",
            channel_scope="phone",
            value=contact.phone,
            reason=f"do_not_call recorded by {who} on call task {task.id}",
        )


def get_disposition(session: Session, task_id: str) -> CallDisposition | None:
    return session.scalars(select(CallDisposition).where(CallDisposition.task_id == task_id)).one_or_none()


def list_tasks(
    session: Session,
    *,
    queues: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
    visible_to: str | None = None,
    contact_id: str | None = None,
    limit: int = 100,
) -> list[CallTask]:
    """Tasks, most urgent first. ``visible_to`` (an agent id) hides tasks another agent has claimed or
    closed, so an agent sees its queues' open work and its own."""
    query = select(CallTask)
    if queues is not None:
        query = query.where(CallTask.queue.in_(list(queues)))
    if statuses:
        query = query.where(CallTask.status.in_(list(statuses)))
    if contact_id is not None:
        query = query.where(CallTask.contact_id == contact_id)
    if visible_to is not None:
        query = query.where(or_(CallTask.status == "open", CallTask.claimed_by == visible_to))
    order = (CallTask.priority.desc(), CallTask.due_at, CallTask.created_at, CallTask.id)
    return list(session.scalars(query.order_by(*order).limit(limit)))


def queue_counts(session: Session, queues: Sequence[str], *, now: datetime) -> dict[str, dict[str, int]]:
    """Per queue: open (callable now), waiting (outside calling hours), claimed, breached (still open)."""
    counts = {q: {"open": 0, "waiting": 0, "claimed": 0, "breached": 0} for q in queues}
    rows = session.execute(
        select(CallTask.queue, CallTask.status, CallTask.not_before, CallTask.sla_breached_at).where(
            CallTask.queue.in_(list(queues)), CallTask.status.in_(("open", "claimed"))
        )
    )
    for queue, status, not_before, breached in rows:
        bucket = counts[queue]
        if status == "claimed":
            bucket["claimed"] += 1
        elif not_before is not None and not_before > now:
            bucket["waiting"] += 1
        else:
            bucket["open"] += 1
        if breached is not None:
            bucket["breached"] += 1
    return counts


def task_log(session: Session, task_id: str) -> list[CallTaskLog]:
    return list(session.scalars(select(CallTaskLog).where(CallTaskLog.task_id == task_id).order_by(CallTaskLog.id)))


def count_dials(session: Session, contact_id: str, start_utc: datetime, end_utc: datetime) -> int:
    """How often agents dialed the contact in [start, end): frequency caps count calls like messages."""
    return (
        session.scalar(
            select(func.count(CallTaskLog.id))
            .join(CallTask, CallTask.id == CallTaskLog.task_id)
            .where(
                CallTask.contact_id == contact_id,
                CallTaskLog.action == "dialed",
                CallTaskLog.at >= start_utc,
                CallTaskLog.at < end_utc,
            )
        )
        or 0
    )


def not_open_reason(task: CallTask) -> str:
    """Why a task that is not open cannot be claimed or released, in words."""
    if task.status == "claimed":
        return f"task {task.id} is already claimed by another agent"
    return f"task {task.id} is {task.status}" + (f" ({task.close_reason})" if task.close_reason else "")
