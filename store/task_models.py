"""Tables of the call floor: queues, agents, call tasks, dispositions, revenue and the task log.

A call task is work for one human agent: the contact's context is frozen into it when it is created (score,
facts, the call script rendered from those facts) so the agent says what the campaign said. The
``call-task`` child workflow owns its life; the API and console claim, release and dispose of it. Revenue
rows (won / lost) feed the closed-loop reports.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, Numeric, String, Text, desc
from sqlalchemy.orm import Mapped, mapped_column

from store.models import Base, _in, _new_uuid
from store.types import BigIntId, utcnow

TASK_STATUSES = ("open", "claimed", "disposed", "cancelled")
TASK_KINDS = ("escalate", "handoff", "call", "callback")
AGENT_ROLES = ("agent", "supervisor")
DISPOSITIONS = (
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
)
REVENUE_OUTCOMES = ("won", "lost")


class CallQueue(Base):
    """A queue as configured in queues.yaml (synced here so the API, console and reports can read it)."""

    __tablename__ = "call_queues"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str | None]
    purpose: Mapped[str | None]  # consent purpose for its calls; None: the cadence's purpose
    sla_seconds: Mapped[int] = mapped_column(Integer, default=86400)
    calling_hours: Mapped[dict[str, Any]] = mapped_column(default=dict)  # core.model.Window as JSON
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    retry_spacing_seconds: Mapped[int] = mapped_column(Integer, default=7200)
    supervisor: Mapped[dict[str, Any]] = mapped_column(default=dict)  # {name, email, webhook}
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Agent(Base):
    """A person on the call floor. Supervisors see every queue; agents only their own."""

    __tablename__ = "agents"
    __table_args__ = (CheckConstraint(_in("role", AGENT_ROLES), name="role"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str]
    phone: Mapped[str | None]  # E.164: click-to-call rings this phone first, then bridges the contact
    role: Mapped[str] = mapped_column(default="agent")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]


class AgentQueue(Base):
    """Membership: which queues an agent works."""

    __tablename__ = "agent_queues"

    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"), primary_key=True)
    queue: Mapped[str] = mapped_column(ForeignKey("call_queues.name"), primary_key=True)


class CallTask(Base):
    """One call to make. ``due_at`` is the SLA deadline for the first claim; ``not_before`` hides a task
    from claims until the contact's calling hours open."""

    __tablename__ = "call_tasks"
    __table_args__ = (
        CheckConstraint(_in("status", TASK_STATUSES), name="status"),
        CheckConstraint(_in("kind", TASK_KINDS), name="kind"),
        # In the claim's order (store.repos.claims.claim_next), so the first unlocked row is the answer.
        Index("ix_call_tasks_claim_order", "queue", "status", desc("priority"), "due_at", "created_at", "id"),
        Index("ix_call_tasks_contact", "contact_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_new_uuid)
    workflow_id: Mapped[str | None] = mapped_column(String, unique=True)
    enrollment_id: Mapped[str | None] = mapped_column(String, index=True)
    cadence_id: Mapped[str | None]
    cadence_name: Mapped[str | None]
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id"))
    queue: Mapped[str] = mapped_column(ForeignKey("call_queues.name"))
    kind: Mapped[str]
    step_id: Mapped[str | None]
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    purpose: Mapped[str]
    locale: Mapped[str | None]
    script: Mapped[str | None]
    script_text: Mapped[str | None] = mapped_column(Text)  # rendered from the cadence facts at creation
    facts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    score: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str | None] = mapped_column(Text)  # why the task exists, in words
    status: Mapped[str] = mapped_column(default="open")
    priority: Mapped[int] = mapped_column(Integer, default=0)  # higher first; raised on an SLA breach
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    due_at: Mapped[datetime]
    not_before: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(ForeignKey("agents.id"))
    claimed_at: Mapped[datetime | None]
    first_claimed_at: Mapped[datetime | None]
    sla_breached_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CallDisposition(Base):
    """What the agent recorded for a task, with its data. One per task."""

    __tablename__ = "call_dispositions"
    __table_args__ = (CheckConstraint(_in("disposition", DISPOSITIONS), name="disposition"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("call_tasks.id"), unique=True)
    disposition: Mapped[str]
    agent_id: Mapped[str | None]
    note: Mapped[str | None] = mapped_column(Text)
    callback_at: Mapped[datetime | None]
    amount: Mapped[Decimal | None] = mapped_column(Numeric(16, 2, asdecimal=True))
    currency: Mapped[str | None] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(Text)
    source: Mapped[str] = mapped_column(default="api")  # api | console | workflow
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class RevenueRecord(Base):
    """A closed deal (won, with its amount) or a lost one (with the reason): closed-loop reporting."""

    __tablename__ = "revenue_records"
    __table_args__ = (
        CheckConstraint(_in("outcome", REVENUE_OUTCOMES), name="outcome"),
        Index("ix_revenue_records_cadence", "cadence_id", "recorded_at"),
    )

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("call_tasks.id"), unique=True)
    enrollment_id: Mapped[str | None]
    cadence_id: Mapped[str | None]
    contact_id: Mapped[str] = mapped_column(ForeignKey("contacts.id"))
    agent_id: Mapped[str | None]
    outcome: Mapped[str]
    amount: Mapped[Decimal | None] = mapped_column(Numeric(16, 2, asdecimal=True))
    currency: Mapped[str | None] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(Text)
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class CallTaskLog(Base):
    """Everything that happened to a task: created, claimed, released, deferred, breached, notified,
    dialed, disposed, cancelled. What SLA reports and audits read."""

    __tablename__ = "call_task_log"
    __table_args__ = (Index("ix_call_task_log_task", "task_id", "at"),)

    id: Mapped[int] = mapped_column(BigIntId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("call_tasks.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    action: Mapped[str]
    agent_id: Mapped[str | None]
    detail: Mapped[str | None] = mapped_column(Text)
