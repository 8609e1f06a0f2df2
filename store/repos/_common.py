"""Helpers shared by the repositories: race-safe insert-or-get and input checks."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

T = TypeVar("T")


def insert_or_get(session: Session, row: T, find: Callable[[], T | None]) -> tuple[T, bool]:
    """Insert ``row`` unless ``find()`` already returns one; ``(row, created)``.

    Two writers may both see nothing and both insert: the loser's INSERT violates the unique key. It runs
    inside a SAVEPOINT, so only that INSERT is rolled back (not the caller's transaction) and the winner's
    row is read back instead. Any other integrity error (e.g. an unknown contact) is re-raised.
    """
    existing = find()
    if existing is not None:
        return existing, False
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        existing = find()
        if existing is None:
            raise
        return existing, False
    return row, True


def check_choice(field: str, value: str, allowed: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``allowed``; otherwise a ValueError naming the field and choices."""
    choices = tuple(allowed)
    if value not in choices:
        raise ValueError(f"{field} must be one of {', '.join(choices)}; got {value!r}")
    return value


def insert_ignoring_conflicts(session: Session, table: Any, unique: list[str]) -> Any:
    """``INSERT ... ON CONFLICT (unique) DO NOTHING`` for ``table`` in the session's dialect (PostgreSQL and
    SQLite, the two the store runs on): a batch where a row recorded before is skipped, not the batch failed."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=unique)
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=unique)
    raise NotImplementedError(f"batched inserts need PostgreSQL or SQLite, not {dialect}")
