"""store.repos._driver.DriverStatement hands over exactly what SQLAlchemy would (aware UTC datetimes, parsed
JSON, dates), and a task it reads becomes an ordinary persistent CallTask of the session."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, select

from store.repos._driver import DriverStatement
from store.repos.claims import claim_next
from store.repos.tasks import get_task, upsert_agent
from store.task_models import CallTask
from tests.store.conftest import MigratedDatabase, open_call_task

NOW = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


def _task(session) -> CallTask:
    facts = {"plan": "gold", "seats": 12, "tags": ["a", "b"]}
    return open_call_task(session, phone="+15550100", purpose="sales", created_at=NOW, facts=facts)


def test_rows_are_what_sqlalchemy_returns(db: MigratedDatabase) -> None:
    if db.kind != "postgres":
        pytest.skip("driver statements are PostgreSQL's (psycopg)")
    statement = select(*CallTask.__table__.c).where(CallTask.__table__.c.id == bindparam("task_id"))
    with db.session_factory.begin() as session:
        task = _task(session)
        expected = dict(session.execute(statement, {"task_id": task.id}).one()._mapping)
        [got] = DriverStatement(statement).rows(session, {"task_id": task.id})
    assert got == expected
    assert got["due_at"].tzinfo == UTC and got["facts"] == {"plan": "gold", "seats": 12, "tags": ["a", "b"]}


def test_a_statement_with_an_in_list_is_refused(db: MigratedDatabase) -> None:
    if db.kind != "postgres":
        pytest.skip("driver statements are PostgreSQL's (psycopg)")
    statement = select(CallTask.id).where(CallTask.id.in_(bindparam("ids", expanding=True)))
    with db.session_factory() as session, pytest.raises(ValueError, match="expanding"):
        DriverStatement(statement).rows(session, {"ids": ["x"]})


def test_a_claimed_task_is_an_ordinary_persistent_object(db: MigratedDatabase) -> None:
    with db.session_factory.begin() as session:
        task = _task(session)
        task_id, queue = task.id, task.queue
        upsert_agent(session, "driver-agent", name="Driver Agent", queues=[queue])
    with db.session_factory.begin() as session:
        stale = get_task(session, task_id)  # already in the session: the claim refreshes this very object
        claimed = claim_next(session, agent_id="driver-agent", queues=[queue], now=NOW).task
        assert claimed is stale and claimed.status == "claimed" and claimed.claimed_by == "driver-agent"
        assert claimed in session and not session.dirty
        claimed.priority = 7  # an ordinary change, flushed at commit
    with db.session_factory.begin() as session:
        claimed = claim_next(session, agent_id="driver-agent", queues=[queue], now=NOW).task
        assert claimed is None
        task = get_task(session, task_id)
        assert (task.status, task.claimed_by, task.claimed_at, task.priority) == ("claimed", "driver-agent", NOW, 7)
