"""Initial schema: contacts, consent ledger (append-only), suppressions, enrollments, outbox, events,
send decisions, API keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-29

Types are spelled out here (not imported from store.types) so this file keeps meaning the same schema when
the models move on. The append-only triggers have stable names: the erasure migration is expected to
replace ``consent_records_append_only_delete`` with one that permits deleting the rows of a contact that
has an erasure request on record.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)

APPEND_ONLY_MESSAGE = "consent_records is append-only"


def _create_consent_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION consent_records_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION '{APPEND_ONLY_MESSAGE} (% refused)', TG_OP
                    USING ERRCODE = 'restrict_violation';
            END
            $$
            """
        )
        for op_name, level in (("update", "ROW"), ("delete", "ROW"), ("truncate", "STATEMENT")):
            op.execute(
                f"CREATE TRIGGER consent_records_append_only_{op_name} BEFORE {op_name.upper()} "
                f"ON consent_records FOR EACH {level} EXECUTE FUNCTION consent_records_append_only()"
            )
        return
    for op_name in ("update", "delete"):
        op.execute(
            f"CREATE TRIGGER consent_records_append_only_{op_name} BEFORE {op_name.upper()} "
            f"ON consent_records BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
        )


def _drop_consent_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for op_name in ("update", "delete", "truncate"):
            op.execute(f"DROP TRIGGER IF EXISTS consent_records_append_only_{op_name} ON consent_records")
        op.execute("DROP FUNCTION IF EXISTS consent_records_append_only()")
        return
    for op_name in ("update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS consent_records_append_only_{op_name}")


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("external_id", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("email", sa.String(), nullable=True),
        sa.Column("phone", sa.String(), nullable=True),
        sa.Column("whatsapp", sa.String(), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("timezone", sa.String(), nullable=True),
        sa.Column("locale", sa.String(), nullable=True),
        sa.Column("attributes", JSON, nullable=False),
        sa.Column("email_unusable_reason", sa.String(), nullable=True),
        sa.Column("phone_unusable_reason", sa.String(), nullable=True),
        sa.Column("last_inbound_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("erased_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_contacts"),
        sa.UniqueConstraint("external_id", name="uq_contacts_external_id"),
    )
    op.create_index("ix_contacts_email", "contacts", ["email"])
    op.create_index("ix_contacts_phone", "contacts", ["phone"])
    op.create_index("ix_contacts_whatsapp", "contacts", ["whatsapp"])

    op.create_table(
        "api_keys",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("prefix", sa.String(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", JSON, nullable=False),
        sa.Column("agent_id", sa.String(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("revoked_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_api_keys_key_hash"),
    )
    op.create_index("ix_api_keys_prefix", "api_keys", ["prefix"])

    op.create_table(
        "suppressions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("list_name", sa.String(), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("channel_scope", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=True),
        sa.Column("value_hash", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("channel_scope IN ('phone', 'email', 'all')", name="ck_suppressions_channel_scope"),
        sa.CheckConstraint(
            "kind IN ('global', 'list', 'registry', 'erasure', 'company_dnc')", name="ck_suppressions_kind"
        ),
        sa.CheckConstraint("value IS NOT NULL OR value_hash IS NOT NULL", name="ck_suppressions_value_or_hash"),
        sa.PrimaryKeyConstraint("id", name="pk_suppressions"),
    )
    op.create_index("ix_suppressions_value", "suppressions", ["value"])
    op.create_index("ix_suppressions_value_hash", "suppressions", ["value_hash"])

    op.create_table(
        "consent_records",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("contact_id", sa.String(length=36), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("purpose", sa.String(), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("address", sa.String(), nullable=True),
        sa.Column("method", sa.String(), nullable=True),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("notice_text", sa.Text(), nullable=True),
        sa.Column("notice_version", sa.String(), nullable=True),
        sa.Column("lawful_basis", sa.String(), nullable=True),
        sa.Column("ip", sa.String(), nullable=True),
        sa.Column("agent_id", sa.String(), nullable=True),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("source_timezone", sa.String(), nullable=True),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("evidence", JSON, nullable=False),
        sa.CheckConstraint("channel IN ('email', 'sms', 'whatsapp', 'voice')", name="ck_consent_records_channel"),
        sa.CheckConstraint("purpose IN ('marketing', 'sales', 'service')", name="ck_consent_records_purpose"),
        sa.CheckConstraint("status IN ('granted', 'withdrawn')", name="ck_consent_records_status"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name="fk_consent_records_contact_id_contacts"),
        sa.PrimaryKeyConstraint("id", name="pk_consent_records"),
    )
    op.create_index("ix_consent_records_lookup", "consent_records", ["contact_id", "channel", "purpose", "occurred_at"])
    _create_consent_triggers()

    op.create_table(
        "enrollments",
        sa.Column("id", sa.String(), nullable=False),
        sa.Column("cadence_id", sa.String(), nullable=False),
        sa.Column("contact_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("cadence_snapshot_hash", sa.String(), nullable=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("ended_at", TS, nullable=True),
        sa.Column("end_reason", sa.String(), nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'completed', 'exited', 'stopped', 'failed')", name="ck_enrollments_status"
        ),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name="fk_enrollments_contact_id_contacts"),
        sa.PrimaryKeyConstraint("id", name="pk_enrollments"),
    )
    op.create_index("ix_enrollments_cadence_id", "enrollments", ["cadence_id"])
    op.create_index("ix_enrollments_contact_status", "enrollments", ["contact_id", "status"])

    op.create_table(
        "events",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("contact_id", sa.String(length=36), nullable=False),
        sa.Column("enrollment_id", sa.String(), nullable=True),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("step_id", sa.String(), nullable=True),
        sa.Column("message_key", sa.String(), nullable=True),
        sa.Column("idempotency_key", sa.String(), nullable=True),
        sa.Column("payload", JSON, nullable=False),
        sa.Column("occurred_at", TS, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name="fk_events_contact_id_contacts"),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.UniqueConstraint("idempotency_key", name="uq_events_idempotency_key"),
    )
    op.create_index("ix_events_contact_occurred", "events", ["contact_id", "occurred_at"])
    op.create_index("ix_events_message_key", "events", ["message_key"])

    op.create_table(
        "outbox_messages",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("message_key", sa.String(), nullable=False),
        sa.Column("enrollment_id", sa.String(), nullable=True),
        sa.Column("contact_id", sa.String(length=36), nullable=False),
        sa.Column("cadence_id", sa.String(), nullable=True),
        sa.Column("step_id", sa.String(), nullable=True),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("purpose", sa.String(), nullable=True),
        sa.Column("variant", sa.String(), nullable=True),
        sa.Column("locale", sa.String(), nullable=True),
        sa.Column("to_address", sa.String(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("html", sa.Text(), nullable=True),
        sa.Column("status", sa.String(), nullable=False),
        sa.Column("provider", sa.String(), nullable=True),
        sa.Column("provider_message_id", sa.String(), nullable=True),
        sa.Column("segments", sa.Integer(), nullable=True),
        sa.Column("encoding", sa.String(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name="fk_outbox_messages_contact_id_contacts"),
        sa.PrimaryKeyConstraint("id", name="pk_outbox_messages"),
        sa.UniqueConstraint("message_key", name="uq_outbox_messages_message_key"),
    )
    op.create_index("ix_outbox_messages_contact_sent", "outbox_messages", ["contact_id", "sent_at"])
    op.create_index("ix_outbox_messages_enrollment_id", "outbox_messages", ["enrollment_id"])
    op.create_index("ix_outbox_messages_provider_message_id", "outbox_messages", ["provider_message_id"])

    op.create_table(
        "send_decisions",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("contact_id", sa.String(length=36), nullable=False),
        sa.Column("enrollment_id", sa.String(), nullable=True),
        sa.Column("step_id", sa.String(), nullable=True),
        sa.Column("message_key", sa.String(), nullable=True),
        sa.Column("channel", sa.String(), nullable=True),
        sa.Column("decision", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("until", TS, nullable=True),
        sa.Column("decided_at", TS, nullable=False),
        sa.CheckConstraint("decision IN ('sent', 'deferred', 'skipped', 'failed')", name="ck_send_decisions_decision"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name="fk_send_decisions_contact_id_contacts"),
        sa.PrimaryKeyConstraint("id", name="pk_send_decisions"),
    )
    op.create_index("ix_send_decisions_contact_decided", "send_decisions", ["contact_id", "decided_at"])


def downgrade() -> None:
    for table in ("send_decisions", "outbox_messages", "events", "enrollments"):
        op.drop_table(table)
    _drop_consent_triggers()
    for table in ("consent_records", "suppressions", "api_keys", "contacts"):
        op.drop_table(table)
