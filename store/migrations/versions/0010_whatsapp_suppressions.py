"""Suppressions that bind WhatsApp only: channel scope ``whatsapp``.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06

Twilio's error 63014 means the person blocked the business on WhatsApp; COMPLIANCE.md says to suppress. A
``phone`` suppression would also stop SMS and calls to the number, which the person did not ask for, so the
suppression needs a scope of its own. SQLite cannot alter a CHECK constraint: Alembic's batch mode copies the
table (its other constraints and indexes with it); PostgreSQL swaps the constraint in place.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The name 0001's naming convention gave the constraint; op.f() keeps it as written.
NAME = "ck_suppressions_ck_suppressions_channel_scope"


def _scopes(*scopes: str) -> str:
    return "channel_scope IN (" + ", ".join(f"'{scope}'" for scope in scopes) + ")"


def upgrade() -> None:
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_constraint(op.f(NAME), type_="check")
        batch.create_check_constraint(op.f(NAME), _scopes("phone", "email", "whatsapp", "all"))


def downgrade() -> None:
    op.execute("DELETE FROM suppressions WHERE channel_scope = 'whatsapp'")
    with op.batch_alter_table("suppressions") as batch:
        batch.drop_constraint(op.f(NAME), type_="check")
        batch.create_check_constraint(op.f(NAME), _scopes("phone", "email", "all"))
