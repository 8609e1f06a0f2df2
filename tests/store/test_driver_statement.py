"""store.repos._driver.DriverStatement hands over exactly what SQLAlchemy would (aware UTC datetimes, parsed
JSON, dates), and a task it reads becomes an ordinary persistent CallTask of the session."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, insert, select, text

from store.repos._driver import DriverStatement
from store.repos.claims import claim_next
from store.repos.tasks import get_task, upsert_agent
from store.task_models import CallTask
from tests.store.conftest import MigratedDatabase, generic_plan, open_call_task

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


def test_the_claim_takes_the_first_row_of_the_claim_order_index(db: MigratedDatabase) -> None:
    """The plan PostgreSQL keeps for the prepared claim (a generic plan) must read the claim-order index, not
    scan and sort the task table: with ``queue = ANY($1)`` it did, 30 times slower at 2,000 tasks and worse as
    the table grows."""
    if db.kind != "postgres":
        pytest.skip("the claim's one statement is PostgreSQL's")
    from store.repos.claims import _claim_next_statement
    from store.repos.dnc import hmac_key_blocks

    with db.session_factory() as session:  # rolled back: the tasks and statistics are this test's alone
        # Enough tasks, a third of them closed, for the planner's statistics to tell a scan from an index look-up.
        task = _task(session)
        like = {
            name: getattr(task, name) for name in ("contact_id", "queue", "kind", "purpose", "created_at", "due_at")
        }
        rows = [
            {**like, "id": str(n), "updated_at": NOW, "status": "open" if n % 3 else "disposed"} for n in range(3000)
        ]
        session.execute(insert(CallTask), rows)
        session.execute(text("ANALYZE call_tasks"))
        params = {"queue_0": "q", "now": NOW, "agent_id": "a", **hmac_key_blocks("salt")}
        plan = generic_plan(session, _claim_next_statement(1, True).statement, params)
    assert "ix_call_tasks_claim_order" in plan, plan
    assert "Seq Scan on call_tasks" not in plan, plan
    assert "JIT" not in plan, plan  # compiling the plan to machine code on every claim would cost milliseconds
