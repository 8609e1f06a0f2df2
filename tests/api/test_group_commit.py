"""The group commit without HTTP or a database: batches form while one runs, a failing batch is applied again
one item at a time, and a batch waits for more only while items keep coming and only when asked to."""

from __future__ import annotations

import asyncio

import pytest

from api import group_commit
from api.group_commit import IN_FLIGHT, GroupCommit


class FakeDb:
    """``Database.run`` stand-in: calls the function with a fake session; the first ``hold`` calls wait."""

    def __init__(self, hold: int = 0):
        self.calls: list[object] = []
        self.gate = asyncio.Event()
        self.hold = hold

    async def run(self, fn):
        if len(self.calls) < self.hold:
            self.calls.append(None)
            await self.gate.wait()
        else:
            self.calls.append(None)
        await asyncio.sleep(0)
        return fn("session")


class Recorder:
    """An ``apply`` that records its batches and answers item * 10; a batch holding ``bad`` raises."""

    def __init__(self, bad: int | None = None):
        self.batches: list[list[int]] = []
        self.bad = bad

    def __call__(self, session, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        if self.bad in items:
            raise RuntimeError("bad callback")
        return [item * 10 for item in items]


async def _five_arrive_while_batches_run(apply: Recorder) -> list:
    """As many items as batches may run, each in its own (held) batch; five more arrive meanwhile; then the
    held batches end. The outcomes in order (an exception for an item that failed)."""
    db = FakeDb(hold=IN_FLIGHT)
    commit = GroupCommit(db, apply)
    first = []
    for i in range(IN_FLIGHT):  # each arriving once the one before is in its batch
        first.append(asyncio.create_task(commit.submit(i)))
        await asyncio.sleep(0.01)
    later = [asyncio.create_task(commit.submit(i)) for i in range(10, 15)]
    await asyncio.sleep(0.01)
    db.gate.set()
    return await asyncio.gather(*first, *later, return_exceptions=True)


async def test_callbacks_arriving_while_batches_run_form_the_next_batch() -> None:
    apply = Recorder()
    assert await _five_arrive_while_batches_run(apply) == [i * 10 for i in [*range(IN_FLIGHT), *range(10, 15)]]
    assert apply.batches[:IN_FLIGHT] == [[i] for i in range(IN_FLIGHT)]
    assert apply.batches[IN_FLIGHT:] == [[10, 11, 12, 13, 14]]


async def test_a_failing_batch_is_applied_one_by_one_and_only_the_bad_item_fails() -> None:
    apply = Recorder(bad=13)
    results = await _five_arrive_while_batches_run(apply)
    assert results[:IN_FLIGHT] == [i * 10 for i in range(IN_FLIGHT)]
    tail = results[IN_FLIGHT:]
    assert tail[:3] == [100, 110, 120] and tail[4] == 140
    assert isinstance(tail[3], RuntimeError)
    assert [10, 11, 12, 13, 14] in apply.batches and all(len(b) == 1 for b in apply.batches[IN_FLIGHT + 1 :])


async def test_a_callback_to_an_idle_api_or_after_a_pause_is_applied_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(group_commit, "BUSY_WINDOW", 0.05)
    # A 30 s delay would time the waits below out.
    commit = GroupCommit(FakeDb(), Recorder(), batch_delay=30.0)
    assert await asyncio.wait_for(commit.submit(1), 5) == 10
    await asyncio.sleep(0.1)  # longer than BUSY_WINDOW: a pause
    assert await asyncio.wait_for(commit.submit(2), 5) == 20


async def test_while_callbacks_keep_coming_a_batch_waits_for_more(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(group_commit, "BUSY_WINDOW", 60.0)
    apply = Recorder()
    commit = GroupCommit(FakeDb(), apply, batch_delay=1.0)
    assert await commit.submit(0) == 0  # idle: at once; the batch it ended makes the API busy
    first = asyncio.create_task(commit.submit(1))
    await asyncio.sleep(0.05)
    rest = [asyncio.create_task(commit.submit(i)) for i in range(2, 6)]
    assert await asyncio.gather(first, *rest) == [10, 20, 30, 40, 50]
    assert apply.batches == [[0], [1, 2, 3, 4, 5]]


async def test_without_a_batch_delay_a_busy_group_commit_does_not_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(group_commit, "BUSY_WINDOW", 60.0)  # always busy
    apply = Recorder()
    commit = GroupCommit(FakeDb(), apply)  # no batch_delay: enrollments' contact checks, someone waits on them
    assert await commit.submit(0) == 0
    first = asyncio.create_task(commit.submit(1))
    await asyncio.sleep(0.05)
    rest = [asyncio.create_task(commit.submit(i)) for i in range(2, 6)]
    assert await asyncio.gather(first, *rest) == [10, 20, 30, 40, 50]
    assert apply.batches == [[0], [1], [2, 3, 4, 5]]
