"""Permission engine: Do-Not-Call imports, inbound messages, webhook receipts, erasure requests; the consent
ledger's DELETE trigger now lets erasure (and only erasure) remove a contact's evidence rows.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29

Types are spelled out here (not imported from store.types) so this file keeps meaning the same schema when
the models move on. UPDATE (and on PostgreSQL TRUNCATE) stay refused on consent_records; DELETE is allowed
only for a contact that has a row in erasure_requests, which the erasure writes first in the same
transaction.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
APPEND_ONLY_MESSAGE = "consent_records is append-only"


def _replace_delete_trigger(erasure_aware: bool) -> None:
    """Swap ``consent_records_append_only_delete`` for the erasure-aware guard (or back)."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS consent_records_append_only_delete ON consent_records")
        if erasure_aware:
            op.execute(
                f"""
                CREATE FUNCTION consent_records_delete_guard() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    IF EXISTS (SELECT 1 FROM erasure_requests WHERE contact_id = OLD.contact_id) THEN
                        RETURN OLD;
                    END IF;
                    RAISE EXCEPTION '{APPEND_ONLY_MESSAGE} (DELETE refused: no erasure request for the contact)'
                        USING ERRCODE = 'restrict_violation';
                END
                $$
                """
            )
            function = "consent_records_delete_guard"
        else:
            function = "consent_records_append_only"
        op.execute(
            "CREATE TRIGGER consent_records_append_only_delete BEFORE DELETE ON consent_records "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()"
        )
        if not erasure_aware:
            op.execute("DROP FUNCTION IF EXISTS consent_records_delete_guard()")
        return
    op.execute("DROP TRIGGER IF EXISTS consent_records_append_only_delete")
    when = (
        "WHEN NOT EXISTS (SELECT 1 FROM erasure_requests WHERE erasure_requests.contact_id = OLD.contact_id) "
        if erasure_aware
        else ""
    )
    op.execute(
        "CREATE TRIGGER consent_records_append_only_delete BEFORE DELETE ON consent_records "
        f"{when}BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
    )


def upgrade() -> None:
    op.create_table(
        "dnc_imports",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("list_name", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=True),
        sa.Column("as_of", sa.Date(), nullable=True),
        sa.Column("hashed", sa.Boolean(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("refused", sa.Integer(), nullable=False),
        sa.Column("source_name", sa.String(), nullable=True),
        sa.Column("imported_at", TS, nullable=False),
        sa.CheckConstraint("kind IN ('registry', 'list', 'global')", name="ck_dnc_imports_kind"),
        sa.PrimaryKeyConstraint("id", name="pk_dnc_imports"),
    )
    op.create_index("ix_dnc_imports_country_list", "dnc_imports", ["country", "list_name", "as_of"])
    op.create_index("ix_suppressions_list", "suppressions", ["kind", "list_name", "country"])

    op.create_table(
        "inbound_messages",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("provider_message_id", sa.String(), nullable=False),
        sa.Column("channel", sa.String(), nullable=False),
        sa.Column("from_address", sa.String(), nullable=True),
        sa.Column("to_address", sa.String(), nullable=True),
        sa.Column("body", sa.Text(), nullable=True),
        sa.Column("intent", sa.String(), nullable=False),
        sa.Column("keyword", sa.String(), nullable=True),
        sa.Column("reply", sa.Text(), nullable=True),
        sa.Column("contact_ids", JSON, nullable=False),
        sa.Column("received_at", TS, nullable=False),
        sa.CheckConstraint("intent IN ('stop', 'start', 'help', 'other')", name="ck_inbound_messages_intent"),
        sa.PrimaryKeyConstraint("id", name="pk_inbound_messages"),
        sa.UniqueConstraint("provider_message_id", name="uq_inbound_messages_provider_message_id"),
    )
    op.create_index("ix_inbound_messages_from_address", "inbound_messages", ["from_address"])

    op.create_table(
        "webhook_receipts",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("dedupe_key", sa.String(), nullable=False),
        sa.Column("pending_signals", JSON, nullable=False),
        sa.Column("signalled_at", TS, nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_webhook_receipts"),
        sa.UniqueConstraint("provider", "dedupe_key", name="uq_webhook_receipts_provider_key"),
    )

    op.create_table(
        "erasure_requests",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("contact_id", sa.String(length=36), nullable=False),
        sa.Column("requested_at", TS, nullable=False),
        sa.Column("requested_by", sa.String(), nullable=True),
        sa.Column("address_hashes", JSON, nullable=False),
        sa.Column("consent_summary", JSON, nullable=False),
        sa.Column("enrollments_stopped", JSON, nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], name="fk_erasure_requests_contact_id_contacts"),
        sa.PrimaryKeyConstraint("id", name="pk_erasure_requests"),
        sa.UniqueConstraint("contact_id", name="uq_erasure_requests_contact_id"),
    )
    _replace_delete_trigger(erasure_aware=True)


def downgrade() -> None:
    _replace_delete_trigger(erasure_aware=False)
    for table in ("erasure_requests", "webhook_receipts", "inbound_messages"):
        op.drop_table(table)
    op.drop_index("ix_suppressions_list", table_name="suppressions")
    op.drop_table("dnc_imports")
