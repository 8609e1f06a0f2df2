"""Merge the branches added in parallel (permissions, call tasks, webhooks/reports, sender pacing).

Revision ID: 0006
Revises: 0002, 0003, 0004, 0005
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0006"
down_revision: str | Sequence[str] | None = ("0002", "0003", "0004", "0005")
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Nothing to do: the branches touch separate tables."""


def downgrade() -> None:
    """Nothing to undo."""
