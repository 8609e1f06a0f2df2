"""A partial index on the outbound webhook deliveries still pending.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06

Every worker's relay (activities.outbound_webhooks.WebhookRelay) looks for pending deliveries every two
seconds. Every business event leaves a delivery per endpoint and they are kept, so without the index each
look read the whole table, a table that only grows, every two seconds in every worker. Only deliveries not yet
delivered or given up are in the index, so it stays small.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text("status = 'pending'")


def upgrade() -> None:
    op.create_index(
        "ix_webhook_deliveries_pending",
        "webhook_deliveries",
        ["created_at"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
        if_not_exists=True,  # built beforehand with CONCURRENTLY on a large table (docs/runbook.md)
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_pending", table_name="webhook_deliveries")
