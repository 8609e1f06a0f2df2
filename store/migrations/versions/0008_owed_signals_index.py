"""A partial index on the webhook receipts that still owe enrollment signals.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

The API's relay (api.webhook_support.OwedSignalRelay) looks for them every few seconds; every callback
leaves a receipt, so without the index each look would read the whole table. Only receipts whose signals
were not sent (Temporal down, a process killed in between) are in it, so it stays tiny.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OWED = sa.text("signalled_at IS NULL")


def upgrade() -> None:
    op.create_index(
        "ix_webhook_receipts_owed",
        "webhook_receipts",
        ["received_at"],
        postgresql_where=OWED,
        sqlite_where=OWED,
        if_not_exists=True,  # built beforehand with CONCURRENTLY on a large table (docs/runbook.md)
    )


def downgrade() -> None:
    op.drop_index("ix_webhook_receipts_owed", table_name="webhook_receipts")
