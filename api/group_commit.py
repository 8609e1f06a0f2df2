"""Group commit on the event loop: the database work of concurrent requests, done together.

Each ``Database.run`` pays a fixed cost whatever it does: a worker-thread hop, a pooled connection, BEGIN and
COMMIT's round trip (and WAL flush when it wrote). Under load that cost is most of a small request's database
work, and the worker threads fight the event loop for the interpreter. ``GroupCommit`` hands the items of the
requests that arrive together to one function in one transaction on one thread, and gives each request its
own result. The busiest routes use it: Twilio's status callbacks (writes, ``api.webhook_support``) and the
contact checks of POST /v1/enrollments (reads). The worker-thread counterpart, for code that already runs on
a thread, is ``store.transaction_groups``.

A request that arrives while ``IN_FLIGHT`` batches run waits for the next one, so under load the batches grow
by themselves, and a request to an idle API runs at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Generic, TypeVar

from sqlalchemy.orm import Session

from api.problems import ProblemError

if TYPE_CHECKING:
    from api.deps import Database

log = logging.getLogger("omnireach.api")
T = TypeVar("T")
R = TypeVar("R")
MAX_BATCH = 100  # items per transaction
IN_FLIGHT = 2  # transactions at once: a slow one does not hold up the items behind it
BUSY_WINDOW = 0.1  # seconds: a batch that ended less than this ago means items keep coming


class GroupCommit(Generic[T, R]):
    """Applies the items of concurrent requests together: ``apply(session, items)`` runs in one transaction and
    returns one result per item, as if each had been applied alone in arrival order.

    ``batch_delay``: while items keep coming (a batch ended less than ``BUSY_WINDOW`` ago), a new batch first
    waits this long for more, as PostgreSQL's ``commit_delay`` does. Worth it only where nobody waits on the
    answer (a provider's status callback); an item to an idle API, or after a pause, is applied at once either
    way. A batch that fails is applied again one item per transaction, so a bad item fails its own request
    only (with that transaction's 409 or 503 problem), never its neighbours'.
    """

    def __init__(self, db: Database, apply: Callable[[Session, list[T]], list[R]], *, batch_delay: float = 0.0):
        self._db = db
        self._apply = apply
        self._batch_delay = batch_delay
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._drainers: list[asyncio.Task] = []
        self._last_end = float("-inf")  # the event loop's time when the last batch ended

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._queue.append((item, future))
        self._drainers = [task for task in self._drainers if not task.done()]
        if len(self._drainers) < IN_FLIGHT:
            self._drainers.append(loop.create_task(self._drain()))
        return await future

    async def _drain(self) -> None:
        batch: list[tuple[T, asyncio.Future[R]]] = []
        loop = asyncio.get_running_loop()
        try:
            busy = loop.time() - self._last_end < BUSY_WINDOW
            if self._batch_delay and busy and len(self._queue) < MAX_BATCH:
                await asyncio.sleep(self._batch_delay)  # items keep coming: let more join this batch
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                await self._run(batch)
                batch = []
        except BaseException as exc:  # cancelled with the loop: no request may wait forever
            failure = exc if isinstance(exc, Exception) else ProblemError(503, "the API is shutting down; retry")
            for _, future in batch:
                _settle(future, exc=failure)
            raise

    async def _run(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        items = [item for item, _ in batch]
        try:
            results = await self._db.run(lambda s: self._apply(s, items))
        except Exception as exc:
            self._last_end = asyncio.get_running_loop().time()
            if len(batch) == 1:
                _settle(batch[0][1], exc=exc)
                return
            log.warning("event=group_commit_failed size=%d error=%s; applying one by one", len(batch), exc)
            await asyncio.gather(*(self._one(item, future) for item, future in batch))
            return
        self._last_end = asyncio.get_running_loop().time()
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result)

    async def _one(self, item: T, future: asyncio.Future[R]) -> None:
        try:
            [result] = await self._db.run(lambda s: self._apply(s, [item]))
        except Exception as exc:
            _settle(future, exc=exc)
        else:
            _settle(future, result)


def _settle(future: asyncio.Future, result: object = None, *, exc: BaseException | None = None) -> None:
    if future.done():  # the request went away (client disconnect); its effects stand, as they would alone
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def group_commit(
    db: Database, name: str, apply: Callable[[Session, list[T]], list[R]], *, batch_delay: float = 0.0
) -> GroupCommit[T, R]:
    """The database's group commit called ``name`` (created on first use, with this ``apply``)."""
    key = f"group-commit:{name}"
    group = db.batchers.get(key)
    if group is None:
        group = db.batchers[key] = GroupCommit(db, apply, batch_delay=batch_delay)
    return group
