"""The data workflows exchange with the outside: inputs, signals, results and query answers.

Kept apart from the workflow modules so the sandbox can pass them through: a workflow module is imported
afresh for every workflow run, and building these dataclasses again each time cost a run about 3 ms of CPU
(DESIGN.md: pass pure modules through). Pure: standard library and core only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.engine import ContactProfile, EnrollmentState


@dataclass
class EventSignal:
    name: str
    step_id: str | None = None
    event_id: str | None = None


@dataclass
class EnrollmentInput:
    cadence: dict  # the cadence snapshot (Cadence.snapshot()), fixed at enrollment
    contact_id: str
    state: EnrollmentState | None = None  # carried over by continue-as-new
    profile: ContactProfile | None = None
    pending: list[EventSignal] = field(default_factory=list)


@dataclass
class DispositionSignal:
    disposition: str
    callback_at: str | None = None  # ISO 8601 with offset
    task_id: str | None = None


@dataclass
class StopSignal:
    reason: str = "stopped by request"


@dataclass
class EnrollmentResult:
    status: str
    reason: str
    score: int = 0
    sent: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)


@dataclass
class EnrollmentView:
    """The `state` query's answer."""

    cadence_id: str
    contact_id: str
    status: str
    step_id: str | None
    score: int
    variants: dict[str, str]
    sent: dict[str, str]
    skipped: dict[str, str]
    waiting: str | None
    waiting_until: str | None
    escalated: bool
    handed_off: bool
    open_task: dict | None
    trace: list[str]


@dataclass
class CallTaskInput:
    task_id: str
    enrollment_id: str
    cadence_id: str
    cadence_name: str
    purpose: str
    locale: str
    contact_id: str
    kind: str
    step_id: str
    queue: str
    script: str
    sla_seconds: int = 0
    attempt: int = 1
    score: int = 0
    facts: dict = field(default_factory=dict)
    reason: str = ""


@dataclass
class TaskDisposition:
    """The `disposition` signal: what the agent recorded, with its data (for callers outside the API)."""

    disposition: str
    callback_at: str | None = None  # ISO 8601 with offset
    note: str | None = None
    amount: str | None = None  # decimal text
    currency: str | None = None
    reason: str | None = None
    agent_id: str | None = None


@dataclass
class TaskNudge:
    """The `changed` signal: the task changed in the database (claimed, released, disposed, cancelled)."""

    what: str = ""


@dataclass
class CallTaskResult:
    outcome: str  # disposed | cancelled
    disposition: str | None = None
    callback_at: str | None = None
    amount: str | None = None
    currency: str | None = None
    reason: str | None = None
    task_id: str = ""
    max_attempts: int = 1
    retry_spacing_seconds: int = 0
    calling_hours: dict | None = None


@dataclass
class CallTaskView:
    """The `state` query's answer: where the task and its SLA stand."""

    task_id: str
    queue: str
    kind: str
    attempt: int
    status: str
    claimed_by: str | None
    due_at: str | None
    sla_state: str  # pending | met | breached
    sla_breached_at: str | None
