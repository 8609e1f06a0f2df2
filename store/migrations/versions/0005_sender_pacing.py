"""Per-sender pacing: sender_pacing (next free instant per sender) and send_slots (reserved slots).

Revision ID: 0005
Revises: 0001
Create Date: 2026-12-01

Types are spelled out here (not imported from store.types) so this file keeps meaning the same schema.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "sender_pacing",
        sa.Column("sender", sa.String(), nullable=False),
        sa.Column("next_free_at", TS, nullable=False),
        sa.Column("departs_after", TS, nullable=True),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("sender", name="pk_sender_pacing"),
    )
    op.create_table(
        "send_slots",
        sa.Column("message_key", sa.String(), nullable=False),
        sa.Column("sender", sa.String(), nullable=False),
        sa.Column("slot_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("message_key", name="pk_send_slots"),
    )


def downgrade() -> None:
    op.drop_table("send_slots")
    op.drop_table("sender_pacing")
