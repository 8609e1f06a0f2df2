"""(d) "Next task" latency with 50 agents claiming at once on PostgreSQL: the product's claim (store.repos.claims
.claim_next with the claim-time permission check, in the transactions the API's claim groups share between the
claims arriving together: store.transaction_groups) versus a bare
``UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED)`` loop on the same table.

Each agent is a thread with its own connection that claims until its queue is empty; rounds alternate
(bare, ours, bare, ours) on fresh queues of the same size. Latency is per claim, commit included. Both sides
draw connections from one long-lived pool and are warmed up first (a round not measured), as in a running
API process: what a fresh process pays once is not what an agent waits for on every claim.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from bench.results import Figure, percentile
from bench.stack import drop_postgres, fresh_postgres
from bench.world import ANY_HOUR, add_contacts, open_store
from store.repos.claims import run_serialized
from store.transaction_groups import TransactionGroups

DATABASE = "omnireach_bench_claims"
SALT = "bench-secret-key"
BARE_CLAIM = """
UPDATE call_tasks SET status = 'claimed', claimed_by = %(agent)s, claimed_at = now(), updated_at = now()
WHERE id = (
    SELECT id FROM call_tasks WHERE queue = %(queue)s AND status = 'open'
    ORDER BY priority DESC, due_at LIMIT 1 FOR UPDATE SKIP LOCKED
)
RETURNING id
"""


def claim_latency(agents: int, tasks: int, rounds: int = 2) -> Figure:
    url = fresh_postgres(DATABASE)
    if url is None:
        return Figure("d", "claim latency: PostgreSQL unavailable, not measured", 0, "ms", notes="no PostgreSQL")
    try:
        # Both sides draw their connections from one pool that lives through the run, as the API's does: a
        # connection costs its first claims a statement preparation, which a running API has long paid.
        sessions = open_store(url, pool_size=agents + 5, max_overflow=0)
        engine = sessions.kw["bind"]
        # The API's Database.claim_groups: agents pressing "next task" together share transactions.
        groups = TransactionGroups(partial(run_serialized, sessions))
        sides = {"bare": partial(_bare_claim, engine), "ours": partial(_product_claim, groups)}
        agent_ids = [f"agent-{n}" for n in range(agents)]
        contacts = add_contacts(sessions, 200, consents=[("voice", "service")], places=ANY_HOUR)
        latencies: dict[str, list[float]] = {"bare": [], "ours": []}
        per_round = tasks // (2 * rounds)
        # Warm-up, not measured: a fresh process's first claims pay once for what it keeps (the jurisdiction
        # policy, compiled and prepared statements), and 50 agents starting at once would pay it together.
        # The API process pays it on its first claims after start-up; the figures are about every claim after.
        for side, claim_loop in sides.items():
            _fill(sessions, f"warm-{side}", agent_ids, contacts, 10 * agents)
            _agents(agent_ids, partial(claim_loop, f"warm-{side}"))
        groups_before, calls_before = groups.groups, groups.calls
        for r in range(rounds):
            for side, claim_loop in sides.items():
                _fill(sessions, f"{side}-{r}", agent_ids, contacts, per_round)
                latencies[side] += _agents(agent_ids, partial(claim_loop, f"{side}-{r}"))
        bare, ours = latencies["bare"], latencies["ours"]
        per_group = (groups.calls - calls_before) / max(1, groups.groups - groups_before)
        # One agent alone: the cost of a claim without any queueing for CPU or locks.
        alone = {}
        for side, claim_loop in sides.items():
            _fill(sessions, f"alone-{side}", agent_ids[:1], contacts, 200)
            alone[side] = _agents(agent_ids[:1], partial(claim_loop, f"alone-{side}"))
        bare_alone, ours_alone = alone["bare"], alone["ours"]
        engine.dispose()
        for side, measured in latencies.items():
            if len(measured) != per_round * rounds:
                raise RuntimeError(f"{side}: {len(measured)} claims for {per_round * rounds} tasks")
    finally:
        drop_postgres(DATABASE)
    p50, p99 = percentile(ours, 0.5) * 1000, percentile(ours, 0.99) * 1000
    b50, b99 = percentile(bare, 0.5) * 1000, percentile(bare, 0.99) * 1000
    a_ours, a_bare = percentile(ours_alone, 0.5) * 1000, percentile(bare_alone, 0.5) * 1000
    return Figure(
        "d",
        f"claim latency p99, {agents} agents at once (PostgreSQL)",
        p99,
        "ms",
        b99,
        "bare SKIP LOCKED loop",
        "<= 2.0",
        f"p50 {p50:.1f} ms vs {b50:.1f} ms (ratio {p50 / b50:.2f}); one agent alone: {a_ours:.1f} ms vs "
        f"{a_bare:.1f} ms; {len(ours)} claims per side in {rounds} alternating rounds; ours = claim_next + voice "
        "consent, suppression, DNC and calling-hours check + task log, in transactions shared by the claims "
        f"arriving together ({per_group:.1f} claims per transaction on average, the API's claim groups); agents are "
        "threads of one process (the API's shape), so claims queue for that process's CPU",
        extra={
            "p50_ms": p50,
            "p99_ms": p99,
            "bare_p50_ms": b50,
            "bare_p99_ms": b99,
            "alone_ms": a_ours,
            "bare_alone_ms": a_bare,
            "claims_per_transaction": per_group,
        },
    )


def _fill(sessions: sessionmaker[Session], queue: str, agent_ids: list[str], contacts: list[str], n: int) -> None:
    from store.repos.tasks import create_task, upsert_agent, upsert_queue

    now = datetime.now(UTC)
    with sessions.begin() as session:
        upsert_queue(session, queue, purpose="service")
        session.flush()
        for agent in agent_ids:
            known = {q.queue for q in _agent_queues(session, agent)}
            upsert_agent(session, agent, name=agent, queues=known | {queue})
        for i in range(n):
            create_task(
                session,
                id=str(uuid.uuid4()),
                created_at=now,
                due_at=now + timedelta(hours=1, seconds=i),
                contact_id=contacts[i % len(contacts)],
                queue=queue,
                kind="escalate",
                purpose="service",
                priority=i % 3,
            )


def _agent_queues(session: Session, agent: str) -> list:
    from sqlalchemy import select

    from store.task_models import AgentQueue

    return list(session.scalars(select(AgentQueue).where(AgentQueue.agent_id == agent)))


def _agents(agent_ids: list[str], claim_loop) -> list[float]:
    latencies: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(len(agent_ids))

    errors: list[BaseException] = []

    def run(agent: str) -> None:
        try:
            mine = claim_loop(agent, start)
        except BaseException as exc:
            start.abort()
            errors.append(exc)
            return
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=run, args=(a,)) for a in agent_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} agents failed: {errors[0]!r}") from errors[0]
    return latencies


def _bare_claim(engine: Engine, queue: str, agent: str, start: threading.Barrier) -> list[float]:
    latencies = []
    pooled = engine.raw_connection()
    try:
        conn = pooled.driver_connection
        start.wait()
        while True:
            began = time.perf_counter()
            with conn.transaction():
                row = conn.execute(BARE_CLAIM, {"agent": agent, "queue": queue}).fetchone()
            if row is None:
                return latencies
            latencies.append(time.perf_counter() - began)
    finally:
        pooled.close()


def _product_claim(groups: TransactionGroups, queue: str, agent: str, start: threading.Barrier) -> list[float]:
    from activities.call_checks import vet_candidate
    from store.repos.claims import claim_next

    vet = partial(vet_candidate, salt=SALT, hours=True)
    latencies = []  # the group leaders' connections come from the pool the warm-up round filled
    start.wait()
    while True:
        began = time.perf_counter()
        outcome = groups.run(
            lambda s: claim_next(s, agent_id=agent, queues=[queue], now=datetime.now(UTC), vet=vet, salt=SALT)
        )
        if outcome.task is None:
            if outcome.cancelled or outcome.deferred:
                raise RuntimeError(f"claims were refused: {outcome.cancelled or outcome.deferred}")
            return latencies
        latencies.append(time.perf_counter() - began)
