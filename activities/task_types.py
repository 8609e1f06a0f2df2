"""Inputs and outputs of the call-task activities: with activities/types.py, the only part of activities/
that workflows import. One dataclass in, one out; new fields get defaults so old histories still decode.
Amounts travel as decimal text so no float ever rounds a deal."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class OpenCallTask:
    task_id: str
    workflow_id: str  # the call-task workflow's id
    enrollment_id: str
    cadence_id: str
    cadence_name: str
    purpose: str  # the cadence's consent purpose (the queue may override it)
    locale: str
    contact_id: str
    kind: str  # escalate | handoff | call | callback
    step_id: str
    queue: str
    script: str
    sla_seconds: int = 0  # 0: the queue's SLA
    attempt: int = 1
    score: int = 0
    facts: dict = field(default_factory=dict)
    reason: str = ""
    created_at: str = ""  # ISO 8601, the workflow's time: the SLA runs from here


@dataclass
class CallTaskOpened:
    status: str  # open | cancelled (nobody may call this contact: no voice consent, suppressed, no phone)
    reason: str = ""
    due_at: str = ""  # ISO 8601: the SLA deadline for the first claim
    sla_seconds: int = 0
    max_attempts: int = 1
    retry_spacing_seconds: int = 0
    calling_hours: dict | None = None  # core.model.Window as JSON


@dataclass
class TaskRef:
    task_id: str


@dataclass
class CallTaskStatus:
    """The task as the database has it: the single source of truth the workflow reconciles with."""

    task_id: str
    status: str  # open | claimed | disposed | cancelled
    claimed_by: str | None = None
    first_claimed_at: str | None = None
    sla_breached_at: str | None = None
    close_reason: str | None = None
    disposition: str | None = None
    callback_at: str | None = None
    note: str | None = None
    amount: str | None = None
    currency: str | None = None
    reason: str | None = None
    agent_id: str | None = None


@dataclass
class FinishCallTask:
    """A disposition that reached the workflow directly (a foreign caller's signal): record it."""

    task_id: str
    disposition: str
    agent_id: str | None = None
    note: str | None = None
    callback_at: str | None = None
    amount: str | None = None
    currency: str | None = None
    reason: str | None = None


@dataclass
class CancelCallTask:
    task_id: str
    reason: str


@dataclass
class SupervisorNotice:
    """An SLA breach to tell the queue's supervisor about (signed webhook and/or email)."""

    task_id: str
    queue: str
    payload: dict = field(default_factory=dict)  # ids and times only: no names or addresses
    email: str | None = None
    webhook: str | None = None


@dataclass
class BreachResult:
    breached: bool
    breached_at: str | None = None
    priority: int = 0
    notice: SupervisorNotice | None = None
