"""Claiming call tasks on PostgreSQL and SQLite: 50 agents at once on 500 tasks, each claimed exactly once;
plus what a claim does with tasks nobody may call now (deferred) or ever (cancelled), releases, breaches
and dispositions."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import partial

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.pool import QueuePool

from core.permission import Verdict
from store.db import make_engine, make_session_factory
from store.repos import upsert_contact
from store.repos.claims import claim_next, claim_task, run_serialized
from store.repos.consent import current_consent
from store.repos.suppressions import find_suppression
from store.repos.tasks import (
    DispositionData,
    TaskConflict,
    create_task,
    mark_breached,
    record_disposition,
    release_task,
    upsert_agent,
    upsert_queue,
)
from store.task_models import CallTask, CallTaskLog, RevenueRecord
from store.transaction_groups import TransactionGroups
from tests.store.conftest import PG_URL, MigratedDatabase

AGENTS = 50
TASKS = 500
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def _fresh_engine(db: MigratedDatabase):
    """An engine on the same database with a connection per agent, so all 50 really claim at once."""
    if db.kind == "sqlite":
        return make_engine(db.engine.url, poolclass=QueuePool, pool_size=AGENTS + 5, max_overflow=0)
    with db.engine.connect() as conn:
        schema = conn.exec_driver_sql("SHOW search_path").scalar()
    return make_engine(
        PG_URL, connect_args={"options": f"-csearch_path={schema}"}, pool_size=AGENTS + 5, max_overflow=0
    )


def _floor(db: MigratedDatabase, queue: str, tasks: int, agents: int) -> tuple[list[str], list[str]]:
    """A queue with `tasks` open tasks and `agents` agents working it."""
    with db.session_factory.begin() as session:
        upsert_queue(session, queue, sla_seconds=3600)
        contact, _ = upsert_contact(
            session, external_id=f"ext-{uuid.uuid4().hex}", name="Claim Test", phone="+15550100"
        )
        agent_ids = [f"{queue}-agent-{n}" for n in range(agents)]
        for agent_id in agent_ids:
            upsert_agent(session, agent_id, name=agent_id, queues=[queue])
        rows = [
            {
                "id": str(uuid.uuid4()),
                "contact_id": contact.id,
                "queue": queue,
                "kind": "escalate",
                "attempt": 1,
                "purpose": "marketing",
                "facts": {},
                "score": 10,
                "status": "open",
                "priority": n % 3,  # a few priorities, so agents contend for the same "most urgent" rows
                "created_at": NOW,
                "due_at": NOW + timedelta(minutes=n % 7),
                "updated_at": NOW,
            }
            for n in range(tasks)
        ]
        if rows:  # an empty executemany would insert one row of defaults
            session.execute(insert(CallTask), rows)
    return agent_ids, [r["id"] for r in rows]


@pytest.mark.timeout(240)
@pytest.mark.parametrize("transactions", ["one per claim", "grouped"])
def test_fifty_agents_claim_five_hundred_tasks_each_exactly_once(db: MigratedDatabase, transactions: str) -> None:
    """Both ways the API claims: one transaction per claim (a named task), and "next task" in transactions
    shared by the agents claiming at the same moment (Database.claim_groups)."""
    queue = f"q{uuid.uuid4().hex[:8]}"
    agent_ids, task_ids = _floor(db, queue, TASKS, AGENTS)
    engine = _fresh_engine(db)
    sessions = make_session_factory(engine)
    groups = TransactionGroups(partial(run_serialized, sessions))
    run = groups.run if transactions == "grouped" else partial(run_serialized, sessions)
    start = threading.Barrier(AGENTS)
    claimed: dict[str, list[str]] = {a: [] for a in agent_ids}
    errors: list[BaseException] = []

    def agent(agent_id: str) -> None:
        try:
            start.wait()
            while True:
                outcome = run(lambda s, a=agent_id: claim_next(s, agent_id=a, queues=[queue], now=NOW))
                if outcome.task is None:
                    return
                claimed[agent_id].append(outcome.task.id)
        except BaseException as exc:  # any error at all fails the test
            errors.append(exc)

    threads = [threading.Thread(target=agent, args=(a,)) for a in agent_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=200)
    engine.dispose()

    assert errors == []
    everything = [t for ids in claimed.values() for t in ids]
    assert len(everything) == TASKS  # none lost
    assert Counter(everything).most_common(1)[0][1] == 1  # none twice
    assert set(everything) == set(task_ids)
    with db.session_factory() as session:
        rows = session.execute(select(CallTask.id, CallTask.status, CallTask.claimed_by).where(CallTask.queue == queue))
        owner = {task_id: agent for agent, ids in claimed.items() for task_id in ids}
        for task_id, status, claimed_by in rows:
            assert status == "claimed" and claimed_by == owner[task_id], task_id
        logged = session.execute(
            select(CallTaskLog.task_id, CallTaskLog.agent_id)
            .join(CallTask, CallTask.id == CallTaskLog.task_id)
            .where(CallTask.queue == queue, CallTaskLog.action == "claimed")
        ).all()
    assert sorted(logged) == sorted(owner.items())  # one log row per claim, naming its agent
    assert sum(1 for ids in claimed.values() if ids) > 1  # really concurrent: more than one agent got work
    if transactions == "grouped":
        assert groups.calls == TASKS + AGENTS  # every claim, and every agent's last (empty) one, in a group
        assert groups.groups < groups.calls  # agents arriving together shared transactions


def test_claims_take_the_most_urgent_task_first(db: MigratedDatabase) -> None:
    queue = f"q{uuid.uuid4().hex[:8]}"
    [agent], _ = _floor(db, queue, 0, 1)
    with db.session_factory.begin() as session:
        contact_id = session.scalar(select(func.min(CallTask.contact_id))) or _contact(session)
        late, _ = _task(session, queue, contact_id, due=NOW + timedelta(hours=5))
        soon, _ = _task(session, queue, contact_id, due=NOW + timedelta(hours=1))
        urgent, _ = _task(session, queue, contact_id, due=NOW + timedelta(hours=9), priority=10)
        ids = [urgent.id, soon.id, late.id]
    got = []
    for _ in ids:
        with db.session_factory.begin() as session:
            got.append(claim_next(session, agent_id=agent, queues=[queue], now=NOW).task.id)
    assert got == ids


def test_an_agent_of_several_queues_gets_the_most_urgent_task_of_all_of_them(db: MigratedDatabase) -> None:
    first, second, third = (f"q{uuid.uuid4().hex[:8]}" for _ in range(3))
    with db.session_factory.begin() as session:
        for queue in (first, second, third):
            upsert_queue(session, queue, sla_seconds=3600)
        upsert_agent(session, f"{first}-agent", name="Three Queues", queues=[first, second, third])
        contact_id = _contact(session)
        late, _ = _task(session, first, contact_id, due=NOW + timedelta(hours=5))
        soon, _ = _task(session, second, contact_id, due=NOW + timedelta(hours=1))
        urgent, _ = _task(session, third, contact_id, due=NOW + timedelta(hours=9), priority=10)
    got = []
    for queues in ([first, second, third], [second, first], [first, third], [first, second, third]):
        with db.session_factory.begin() as session:
            task = claim_next(session, agent_id=f"{first}-agent", queues=queues, now=NOW).task
            got.append(task.id if task else None)
    assert got == [urgent.id, soon.id, late.id, None]


def test_a_contact_outside_calling_hours_is_skipped_and_one_nobody_may_call_is_cancelled(db: MigratedDatabase) -> None:
    queue = f"q{uuid.uuid4().hex[:8]}"
    [agent], _ = _floor(db, queue, 0, 1)
    opening = NOW + timedelta(hours=3)
    with db.session_factory.begin() as session:
        contact_id = _contact(session)
        night, _ = _task(session, queue, contact_id, due=NOW, priority=2)
        dnc, _ = _task(session, queue, contact_id, due=NOW, priority=1)
        fine, _ = _task(session, queue, contact_id, due=NOW)

    def vet(session, candidate, now) -> Verdict:
        if candidate.task.id == night.id:
            return Verdict("defer", "outside_window", "outside calling hours", opening)
        if candidate.task.id == dnc.id:
            return Verdict("skip", "suppressed", "address suppressed: company DNC")
        return Verdict("allow", "allowed", "ok")

    with db.session_factory.begin() as session:
        outcome = claim_next(session, agent_id=agent, queues=[queue], now=NOW, vet=vet)
        assert outcome.task.id == fine.id
        assert outcome.deferred == [(night.id, opening)]
        assert [t.id for t in outcome.cancelled] == [dnc.id]
    with db.session_factory() as session:
        assert (
            session.get(CallTask, night.id).not_before == opening and session.get(CallTask, night.id).status == "open"
        )
        cancelled = session.get(CallTask, dnc.id)
        assert cancelled.status == "cancelled" and "suppressed" in cancelled.close_reason
        # A refused task was never claimed, whatever order the claim does its work in (PostgreSQL claims first
        # and checks after, in one transaction): nobody holds it, and its log says only what happened.
        for refused in (session.get(CallTask, night.id), cancelled):
            assert (refused.claimed_by, refused.claimed_at, refused.first_claimed_at) == (None, None, None)
        actions = session.execute(
            select(CallTaskLog.task_id, CallTaskLog.action).where(CallTaskLog.task_id.in_([night.id, dnc.id, fine.id]))
        ).all()
        expected = [(night.id, "created"), (night.id, "deferred"), (dnc.id, "created"), (dnc.id, "cancelled")]
        expected += [(fine.id, "created"), (fine.id, "claimed")]
        assert sorted(actions) == sorted(expected)
    with db.session_factory.begin() as session:  # before the opening nothing is left; after it, the night task
        assert claim_next(session, agent_id=agent, queues=[queue], now=NOW).task is None
        assert claim_next(session, agent_id=agent, queues=[queue], now=opening).task.id == night.id


def test_claim_release_and_conflicts(db: MigratedDatabase) -> None:
    queue = f"q{uuid.uuid4().hex[:8]}"
    [ani, budi], _ = _floor(db, queue, 0, 2)
    with db.session_factory.begin() as session:
        task, _ = _task(session, queue, _contact(session), due=NOW + timedelta(hours=1))
    with db.session_factory.begin() as session:
        assert claim_task(session, task.id, agent_id=ani, now=NOW).task.claimed_by == ani
    with db.session_factory.begin() as session:
        assert claim_task(session, task.id, agent_id=ani, now=NOW).task.id == task.id  # again: no change
        with pytest.raises(TaskConflict, match="already claimed by another agent"):
            claim_task(session, task.id, agent_id=budi, now=NOW)
    with db.session_factory.begin() as session:
        released = release_task(session, task.id, agent_id=ani, now=NOW)
        assert (released.status, released.claimed_by) == ("open", None)
    with db.session_factory.begin() as session:
        again = claim_task(session, task.id, agent_id=budi, now=NOW + timedelta(hours=2)).task
        assert again.claimed_by == budi and again.first_claimed_at == NOW  # the SLA counts the first claim


def test_breach_is_recorded_once_and_only_when_nobody_claimed_in_time(db: MigratedDatabase) -> None:
    queue = f"q{uuid.uuid4().hex[:8]}"
    [agent], _ = _floor(db, queue, 0, 1)
    due = NOW + timedelta(hours=1)
    with db.session_factory.begin() as session:
        contact_id = _contact(session)
        waiting, _ = _task(session, queue, contact_id, due=due)
        served, _ = _task(session, queue, contact_id, due=due)
        claim_task(session, served.id, agent_id=agent, now=due - timedelta(seconds=1))
    with db.session_factory.begin() as session:
        assert mark_breached(session, waiting.id, now=due - timedelta(seconds=1)) is None  # not before
        breached = mark_breached(session, waiting.id, now=due)
        assert breached.sla_breached_at == due and breached.priority == 10
        assert mark_breached(session, waiting.id, now=due + timedelta(minutes=1)) is None  # once
        assert mark_breached(session, served.id, now=due) is None  # claimed in time


def test_dispositions_apply_at_once_and_only_once(db: MigratedDatabase) -> None:
    queue = f"q{uuid.uuid4().hex[:8]}"
    [agent], _ = _floor(db, queue, 0, 1)
    with db.session_factory.begin() as session:
        contact, _ = upsert_contact(session, external_id=f"ext-{uuid.uuid4().hex}", name="D", phone="+6281299990000")
        dnc, _ = _task(session, queue, contact.id, due=NOW)
        won, _ = _task(session, queue, contact.id, due=NOW)
    with db.session_factory.begin() as session:
        task = session.get(CallTask, dnc.id)
        record_disposition(session, task, DispositionData("do_not_call", agent, note="never again"), now=NOW)
        record_disposition(session, task, DispositionData("do_not_call", agent), now=NOW)  # a repeat: no-op
        with pytest.raises(TaskConflict, match="already disposed"):
            record_disposition(session, task, DispositionData("qualified", agent), now=NOW)
        assert find_suppression(session, channel="voice", address="+6281299990000", salt="s").kind == "company_dnc"
        assert current_consent(session, contact.id, "voice", "sales").status == "withdrawn"
        record_disposition(
            session,
            session.get(CallTask, won.id),
            DispositionData("won", agent, amount=Decimal("1250000.75"), currency="IDR"),
            now=NOW,
        )
    with db.session_factory() as session:
        revenue = session.scalars(select(RevenueRecord).where(RevenueRecord.task_id == won.id)).one()
        assert (revenue.amount, revenue.currency, revenue.agent_id) == (Decimal("1250000.75"), "IDR", agent)
        assert session.get(CallTask, dnc.id).status == "disposed"


def _contact(session) -> str:
    contact, _ = upsert_contact(session, external_id=f"ext-{uuid.uuid4().hex}", name="C", phone="+15550199")
    return contact.id


def _task(session, queue: str, contact_id: str, *, due: datetime, priority: int = 0):
    task, created = create_task(
        session,
        id=str(uuid.uuid4()),
        created_at=NOW,
        due_at=due,
        contact_id=contact_id,
        queue=queue,
        kind="escalate",
        purpose="marketing",
        facts={},
        score=1,
        status="open",
        priority=priority,
    )
    return task, created
