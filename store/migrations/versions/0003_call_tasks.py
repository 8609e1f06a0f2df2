"""Call floor: queues, agents, call tasks, dispositions, revenue records, task log.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-29

Types are spelled out here (not imported from store.types) so this file keeps meaning the same schema when
the models move on.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
MONEY = sa.Numeric(16, 2)
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


def _in(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "call_queues",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(), nullable=True),
        sa.Column("purpose", sa.String(), nullable=True),
        sa.Column("sla_seconds", sa.Integer(), nullable=False),
        sa.Column("calling_hours", JSON, nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("retry_spacing_seconds", sa.Integer(), nullable=False),
        sa.Column("supervisor", JSON, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_call_queues"),
    )
    op.create_table(
        "agents",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("phone", sa.String(), nullable=True),
        sa.Column("role", sa.String(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("disabled_at", TS, nullable=True),
        sa.CheckConstraint(_in("role", ("agent", "supervisor")), name="ck_agents_role"),
        sa.PrimaryKeyConstraint("id", name="pk_agents"),
    )
    op.create_table(
        "agent_queues",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["agent_id"], ["agents.id"], name="fk_agent_queues_agent_id_agents"),
        sa.ForeignKeyConstraint(["queue"], ["call_queues.name"], name="fk_agent_queues_queue_call_queues"),
        sa.PrimaryKeyConstraint("agent_id", "queue", name="pk_agent_queues"),
    )
    op.create_table(
        "call_tasks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("workflow_id", sa.String(), nullable=True),
        sa.Column("enrollment_id", sa.String(), nullable=True),
        sa.Column("cadence_id", sa.String(), nullable=True),
        sa.Column("cadence_name", sa.String(), nullable=True),
        sa.Column("contact_id", sa.String(length=36), nullable=False),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("step_id", sa.String(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("locale", sa.String(), nullable=True),
        sa.Column("script", sa.String(), nullable=True),
        sa.Column("script_text", sa.Text(), nullable=True),
        sa.Column("facts", JSON, nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("due_at", TS, nullable=False),
        sa.Column("not_before", TS, nullable=True),
        sa.Column("claimed_by", sa.String(length=64), nullable=True),
        sa.Column("claimed_at", TS, nullable=True),
        sa.Column("first_claimed_at", TS, nullable=True),
        sa.Column("sla_breached_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("close_reason", sa.Text(), nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.CheckConstraint(_in("status", ("open", "claimed", "disposed", "cancelled")), name="ck_call_tasks_status"),
        sa.CheckConstraint(_in("kind", ("escalate", "handoff", "call", "callback")), name="ck_call_tasks_kind"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name="fk_call_tasks_contact_id_contacts"),
        sa.ForeignKeyConstraint(["queue"], ["call_queues.name"], name="fk_call_tasks_queue_call_queues"),
        sa.ForeignKeyConstraint(["claimed_by"], ["agents.id"], name="fk_call_tasks_claimed_by_agents"),
        sa.PrimaryKeyConstraint("id", name="pk_call_tasks"),
        sa.UniqueConstraint("workflow_id", name="uq_call_tasks_workflow_id"),
    )
    op.create_index("ix_call_tasks_enrollment_id", "call_tasks", ["enrollment_id"])
    op.create_index("ix_call_tasks_claim", "call_tasks", ["queue", "status", "priority", "due_at"])
    op.create_index("ix_call_tasks_contact", "call_tasks", ["contact_id", "created_at"])
    op.create_table(
        "call_dispositions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("disposition", sa.String(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("callback_at", TS, nullable=True),
        sa.Column("amount", MONEY, nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.CheckConstraint(_in("disposition", DISPOSITIONS), name="ck_call_dispositions_disposition"),
        sa.ForeignKeyConstraint(["task_id"], ["call_tasks.id"], name="fk_call_dispositions_task_id_call_tasks"),
        sa.PrimaryKeyConstraint("id", name="pk_call_dispositions"),
        sa.UniqueConstraint("task_id", name="uq_call_dispositions_task_id"),
    )
    op.create_table(
        "revenue_records",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("enrollment_id", sa.String(), nullable=True),
        sa.Column("cadence_id", sa.String(), nullable=True),
        sa.Column("contact_id", sa.String(length=36), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=True),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("amount", MONEY, nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("recorded_at", TS, nullable=False),
        sa.CheckConstraint(_in("outcome", ("won", "lost")), name="ck_revenue_records_outcome"),
        sa.ForeignKeyConstraint(["task_id"], ["call_tasks.id"], name="fk_revenue_records_task_id_call_tasks"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name="fk_revenue_records_contact_id_contacts"),
        sa.PrimaryKeyConstraint("id", name="pk_revenue_records"),
        sa.UniqueConstraint("task_id", name="uq_revenue_records_task_id"),
    )
    op.create_index("ix_revenue_records_cadence", "revenue_records", ["cadence_id", "recorded_at"])
    op.create_table(
        "call_task_log",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("agent_id", sa.String(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["task_id"], ["call_tasks.id"], name="fk_call_task_log_task_id_call_tasks"),
        sa.PrimaryKeyConstraint("id", name="pk_call_task_log"),
    )
    op.create_index("ix_call_task_log_task", "call_task_log", ["task_id", "at"])


def downgrade() -> None:
    for table in (
        "call_task_log",
        "revenue_records",
        "call_dispositions",
        "call_tasks",
        "agent_queues",
        "agents",
        "call_queues",
    ):
        op.drop_table(table)
