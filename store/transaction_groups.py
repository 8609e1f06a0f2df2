"""Group commit for threads: the transactions of callers that arrive together run as one.

Fifty agents pressing "next task" at once each pay a transaction's fixed cost: the session, a pooled
connection, BEGIN, and COMMIT's round trip and WAL flush; about a third of a claim's CPU, and every caller in
the process waits behind the others for that CPU. A caller that arrives while ``in_flight``
groups are already running waits for the next group instead, and that group runs its members' functions one
after another in one transaction, so under load the groups grow by themselves. A caller who finds no group
running starts one at once, so an idle process adds no delay and no lock to hold.

Each function sees the effects of the ones before it in its group, just as if they had committed first. If one
raises, the whole group is rolled back and every member is run again alone, each in its own transaction, so one
caller's failure is never visible to another caller; a failure of the database itself fails them all at once.
The API's busiest routes do the same asynchronously (``api.group_commit.GroupCommit``). The functions must only
touch the database through the session they are given: anything else they did would happen twice.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

T = TypeVar("T")
Transact = Callable[[Callable[[Session], Any]], Any]


class _Call(Generic[T]):
    """One caller's function, its outcome, and the event that wakes the caller (when done or asked to lead)."""

    __slots__ = ("done", "error", "fn", "result", "wake")

    def __init__(self, fn: Callable[[Session], T]) -> None:
        self.fn = fn
        self.result: T | None = None
        self.error: BaseException | None = None
        self.done = False
        self.wake = threading.Event()

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        self.result, self.error, self.done = result, error, True
        self.wake.set()

    def outcome(self) -> T:
        if self.error is not None:
            raise self.error
        return self.result  # type: ignore[return-value]


class TransactionGroups:
    """Runs callers' ``fn(session)`` in shared transactions; ``transact(fn)`` runs one transaction.

    ``in_flight`` groups run at once: a group runs its members' statements one after another, so with one
    group the database would sit idle while the leader thread works in Python, and the process's threads
    while the database works. At most ``max_group`` functions share a transaction, which bounds how long a
    member waits for the others and how many rows one transaction keeps locked. The defaults were measured
    with the bench's 50 agents (docs/benchmarks.md, (d)).
    """

    def __init__(self, transact: Transact, *, max_group: int = 16, in_flight: int = 4) -> None:
        if max_group < 1 or in_flight < 1:
            raise ValueError("max_group and in_flight must be at least 1")
        self._transact = transact
        self._max_group, self._in_flight = max_group, in_flight
        self._lock = threading.Lock()
        self._waiting: deque[_Call] = deque()
        self._running = 0
        self.groups = 0  # transactions that ran a group (observability and tests)
        self.calls = 0  # functions that ran in them

    def run(self, fn: Callable[[Session], T]) -> T:
        call: _Call[T] = _Call(fn)
        with self._lock:
            leads = self._running < self._in_flight
            if leads:
                self._running += 1
            else:
                self._waiting.append(call)
        if not leads:
            call.wake.wait()
            if call.done:
                return call.outcome()
            # Not done, but woken: the leader before us handed us the lead (see _lead's finally).
        self._lead(call)
        return call.outcome()

    def _lead(self, first: _Call) -> None:
        with self._lock:
            group = [first]
            while self._waiting and len(group) < self._max_group:
                group.append(self._waiting.popleft())
        try:
            self._run_group(group)
        finally:
            for call in group:
                if not call.done:  # interrupted (KeyboardInterrupt, SystemExit): nobody may wait forever
                    call.finish(error=RuntimeError("the transaction group was interrupted; nothing was committed"))
            with self._lock:
                if self._waiting:  # the next group's first caller leads it (we return to our own caller)
                    self._waiting.popleft().wake.set()
                else:
                    self._running -= 1

    @property
    def waiting(self) -> int:
        """Callers waiting for a group to take them."""
        with self._lock:
            return len(self._waiting)

    def _run_group(self, group: list[_Call]) -> None:
        try:
            results = self._transact(lambda session: [call.fn(session) for call in group])
        except OperationalError as error:
            # The database itself failed (unreachable, or busy past every retry): each member alone would only
            # meet the same failure, one after another.
            for call in group:
                call.finish(error=error)
            return
        except Exception as error:
            if len(group) == 1:
                group[0].finish(error=error)
                return
            for call in group:  # rolled back: each alone, so a failure is only ever its own caller's
                self._run_alone(call)
            return
        with self._lock:
            self.groups += 1
            self.calls += len(group)
        for call, result in zip(group, results, strict=True):
            call.finish(result)

    def _run_alone(self, call: _Call) -> None:
        try:
            result = self._transact(call.fn)
        except Exception as error:
            call.finish(error=error)
        else:
            call.finish(result)
