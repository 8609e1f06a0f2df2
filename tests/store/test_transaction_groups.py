"""Group commit for threads (store.transaction_groups) on SQLite and PostgreSQL: callers who arrive while a
group runs share the next transaction; each still gets only its own result, and a failure only its own caller.

The agents' claims under load are in test_task_claims (fifty agents, "grouped"); these tests pin down the
grouping itself with a first caller held inside its transaction, so the callers behind it are known to share
the next group.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from functools import partial

import pytest
from sqlalchemy import literal, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from store.repos.claims import run_serialized
from store.repos.tasks import upsert_queue
from store.task_models import CallQueue
from store.transaction_groups import TransactionGroups
from tests.store.conftest import MigratedDatabase

pytestmark = pytest.mark.timeout(60)


class _Floor:
    """Callers in threads, each recording its result or error, and how often its function ran."""

    def __init__(self, groups: TransactionGroups) -> None:
        self.groups = groups
        self.outcomes: dict[str, object] = {}
        self.runs: Counter[str] = Counter()
        self.threads: list[threading.Thread] = []

    def call(self, name: str, fn: Callable[[Session], object]) -> None:
        def counted(session: Session) -> object:
            self.runs[name] += 1
            return fn(session)

        def caller() -> None:
            try:
                self.outcomes[name] = self.groups.run(counted)
            except BaseException as exc:  # recorded, not raised: the test reads it
                self.outcomes[name] = exc

        waiting = self.groups.waiting
        thread = threading.Thread(target=caller)
        self.threads.append(thread)
        thread.start()
        return waiting

    def queue_behind(self, name: str, fn: Callable[[Session], object]) -> None:
        """Start a caller and wait until it waits for the next group (the order of the group is then known)."""
        before = self.call(name, fn)
        _until(lambda: self.groups.waiting > before)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=30)
        assert not any(thread.is_alive() for thread in self.threads), "a caller never got its answer"


def _until(check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def _held_first(floor: _Floor, prefix: str) -> threading.Event:
    """A first caller that writes, then holds its group open until the returned event is set."""
    inside, release = threading.Event(), threading.Event()

    def first(session: Session) -> str:
        upsert_queue(session, f"{prefix}-first")
        inside.set()
        release.wait(timeout=20)
        return "first"

    floor.call("first", first)
    assert inside.wait(timeout=10)
    return release


def _writes(name: str, then_raise: BaseException | None = None) -> Callable[[Session], str]:
    """A caller's function: writes a queue called ``name``, then returns the name (or raises ``then_raise``)."""

    def fn(session: Session) -> str:
        upsert_queue(session, name)
        session.flush()
        if then_raise is not None:
            raise then_raise
        return name

    return fn


def _one_group_at_a_time(db: MigratedDatabase) -> tuple[str, TransactionGroups, _Floor, threading.Event]:
    """Groups of a single transaction at a time, the first held open: callers queued behind it form the next."""
    prefix = f"tg{uuid.uuid4().hex[:8]}"
    groups = TransactionGroups(partial(run_serialized, db.session_factory), in_flight=1)
    floor = _Floor(groups)
    return prefix, groups, floor, _held_first(floor, prefix)


def _queues(db: MigratedDatabase, prefix: str) -> set[str]:
    with db.session_factory() as session:
        return set(session.scalars(select(CallQueue.name).where(CallQueue.name.startswith(prefix))))


def test_callers_behind_a_running_group_share_one_transaction_and_a_failure_stays_its_own(
    db: MigratedDatabase,
) -> None:
    prefix, groups, floor, release = _one_group_at_a_time(db)
    floor.queue_behind("a", _writes(f"{prefix}-a"))
    floor.queue_behind("refused", _writes(f"{prefix}-refused", then_raise=ValueError("this request is refused")))
    floor.queue_behind("b", _writes(f"{prefix}-b"))
    release.set()
    floor.join()

    assert floor.outcomes["first"] == "first"
    assert floor.outcomes["a"] == f"{prefix}-a" and floor.outcomes["b"] == f"{prefix}-b"
    assert isinstance(floor.outcomes["refused"], ValueError)
    # The refused caller's write is gone; everyone else's stands.
    assert _queues(db, prefix) == {f"{prefix}-first", f"{prefix}-a", f"{prefix}-b"}
    # a, refused and b shared a group: a ran, refused raised (b never ran), then each ran again alone.
    assert floor.runs == {"first": 1, "a": 2, "refused": 2, "b": 1}
    assert (groups.groups, groups.calls) == (1, 1)  # only the first group committed as a group


def test_a_failure_of_the_database_fails_the_whole_group_without_running_it_again(db: MigratedDatabase) -> None:
    prefix, _, floor, release = _one_group_at_a_time(db)
    gone = OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))
    floor.queue_behind("a", _writes(f"{prefix}-a"))
    floor.queue_behind("gone", _writes(f"{prefix}-gone", then_raise=gone))
    release.set()
    floor.join()

    assert isinstance(floor.outcomes["a"], OperationalError)
    assert isinstance(floor.outcomes["gone"], OperationalError)
    assert floor.runs == {"first": 1, "a": 1, "gone": 1}
    assert _queues(db, prefix) == {f"{prefix}-first"}


def test_every_caller_gets_its_own_answer_when_many_arrive_at_once(db: MigratedDatabase) -> None:
    groups = TransactionGroups(partial(run_serialized, db.session_factory), max_group=4, in_flight=2)
    floor = _Floor(groups)
    start = threading.Barrier(40)

    def answer(n: int) -> Callable[[Session], int]:
        def fn(session: Session) -> int:
            return session.execute(select(literal(n))).scalar_one()

        return fn

    def caller(n: int) -> None:
        start.wait()
        floor.outcomes[str(n)] = groups.run(answer(n))

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads)
    assert floor.outcomes == {str(n): n for n in range(40)}
    assert groups.calls == 40
    assert 10 <= groups.groups <= 40  # never more than max_group in one transaction
    assert groups.waiting == 0


def test_an_interrupted_group_answers_its_callers_and_the_next_group_still_runs(db: MigratedDatabase) -> None:
    prefix, _, floor, release = _one_group_at_a_time(db)
    # KeyboardInterrupt is not an Exception: the group is not run again, the leader's thread is interrupted.
    floor.queue_behind("x", _writes(f"{prefix}-x", then_raise=KeyboardInterrupt()))
    floor.queue_behind("y", _writes(f"{prefix}-y"))
    release.set()
    floor.join()

    assert isinstance(floor.outcomes["x"], KeyboardInterrupt)  # x led its group: the interruption is its own
    assert isinstance(floor.outcomes["y"], RuntimeError) and "nothing was committed" in str(floor.outcomes["y"])
    assert _queues(db, prefix) == {f"{prefix}-first"}
    floor.call("z", _writes(f"{prefix}-z"))  # the group's slot was given back
    floor.join()
    assert floor.outcomes["z"] == f"{prefix}-z"
    assert _queues(db, prefix) == {f"{prefix}-first", f"{prefix}-z"}
