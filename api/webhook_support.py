"""What the provider webhooks share: signature checks on the raw request, and enrollment signals owed.

Order of work in every webhook: verify the signature on the raw bytes (403, nothing stored, when it fails);
apply the effects in one transaction that also inserts the callback's dedupe key (a duplicate or replay
finds the key and changes nothing); only then signal running enrollments. Signals that Temporal did not
take stay in the receipt (``pending_signals``) and are retried when the provider delivers the callback
again or, at the latest, by ``OwedSignalRelay``; the workflow counts an event id once, so a repeated signal
is harmless.

That harmlessness is also why a receipt is marked signalled lazily: the ids of receipts whose signals
Temporal took are collected and marked by one small transaction every ``MARK_DELAY`` seconds, instead of a
second transaction per request. A mark lost with the process only means a redelivered callback signals
again.

The status webhook, Twilio's busiest, applies the callbacks of concurrent requests together
(``GroupCommit``): one worker-thread hop and one transaction per batch, a little bigger while callbacks keep
coming; each request still answers only after its own effects are committed and its signal sent.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Generic, TypeVar
from urllib.parse import parse_qsl

from fastapi import Request
from sqlalchemy.orm import Session

from api.deps import Database, Services
from api.problems import ProblemError
from api.temporal_gateway import TemporalUnavailable
from core.signatures import TWILIO_SETTINGS_HEADER, TWILIO_SIGNATURE_HEADER, verify_twilio
from store.repos import inbound as inbound_repo
from workflows.contact_cadence import EventSignal

log = logging.getLogger("omnireach.webhooks")
T = TypeVar("T")
R = TypeVar("R")
OWED_SIGNAL_SETTLE = timedelta(seconds=30)  # age at which the relay sends a receipt's owed signals itself
MARK_DELAY = 0.25  # seconds a "signalled" mark may wait, to be written with the others of that moment
MAX_BATCH = 100  # callbacks per group-commit transaction
IN_FLIGHT = 2  # group-commit transactions at once: a slow one does not hold up the callbacks behind it
BATCH_DELAY = 0.02  # seconds a batch waits for more callbacks while they keep coming (GroupCommit)
BUSY_WINDOW = 0.1  # a batch that ended less than this ago means callbacks keep coming


def public_url(request: Request, services: Services) -> str:
    """The URL the provider called, as seen from outside: OMNIREACH_PUBLIC_URL + path + query."""
    query = request.url.query
    return services.settings.public_url + request.url.path + (f"?{query}" if query else "")


async def twilio_params(request: Request, services: Services) -> list[tuple[str, str]]:
    """The form parameters of a Twilio callback whose signature is valid; otherwise 403 (nothing stored)."""
    raw = await request.body()
    try:
        params = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        params = []
    check = verify_twilio(
        services.settings.twilio_auth_token,
        public_url(request, services),
        params,
        request.headers.get(TWILIO_SIGNATURE_HEADER),
        request.headers.get(TWILIO_SETTINGS_HEADER),
    )
    if not check:
        log.warning("event=webhook_refused provider=twilio path=%s reason=%r", request.url.path, check.reason)
        raise ProblemError(403, f"request refused: {check.reason}")
    return params


def signal(workflow_id: str, name: str, step_id: str | None, event_id: str) -> dict[str, str | None]:
    """One owed enrollment signal, as stored in a receipt."""
    return {"workflow_id": workflow_id, "name": name, "step_id": step_id, "event_id": event_id}


async def deliver_signals(services: Services, owed: dict[int, list[dict]]) -> None:
    """Send the signals owed per receipt id; receipts fully sent are marked shortly after (``SignalledMarks``).
    503 when Temporal is down: the effects are stored, and the provider's redelivery or ``OwedSignalRelay``
    retries the signals."""
    done: list[int] = []
    try:
        for receipt_id, signals in owed.items():
            await _signal(services, signals)
            done.append(receipt_id)
    except TemporalUnavailable as exc:
        log.error("event=webhook_signal_failed receipts=%d error=%s", len(owed) - len(done), exc)
        raise ProblemError(
            503, f"recorded, but the running enrollments could not be told yet: {exc}; deliver it again"
        ) from exc
    finally:
        if done:
            state_of(services.db).marks.add(done)


async def _signal(services: Services, signals: list[dict]) -> None:
    """Send one receipt's owed signals (as stored by ``signal``) to their enrollments."""
    for item in signals:
        await services.temporal.signal_event(
            item["workflow_id"], EventSignal(item["name"], item.get("step_id"), item["event_id"])
        )


class OwedSignalRelay:
    """Sends the signals receipts still owe once they are ``settle`` old, so an event reaches its enrollment
    even when nobody delivers the callback again.

    A callback that finds Temporal down is stored and answered 503, and SendGrid retries it; Twilio does not
    retry a status callback, and a process killed between its commit and its signal leaves the receipt
    owing too. Runs inside every API process (``create_app``'s lifespan). Sending twice is harmless: the
    enrollment counts an event id once, which is also why several API processes may sweep side by side.
    ``settle`` leaves the live requests, and their lazy "signalled" marks, well alone.
    """

    def __init__(self, services: Services, *, settle: timedelta | None = None, batch: int = 200):
        self.services, self.batch = services, batch
        self.settle = OWED_SIGNAL_SETTLE if settle is None else settle

    async def sweep(self) -> int:
        """One pass; the number of receipts whose signals were all sent."""
        before = datetime.now(UTC) - self.settle
        owed = await self.services.db.run(
            lambda s: inbound_repo.owed_signals(s, received_before=before, limit=self.batch)
        )
        done: list[int] = []
        try:
            for receipt_id, signals in owed.items():
                try:
                    await _signal(self.services, signals)
                    done.append(receipt_id)
                except TemporalUnavailable:
                    raise  # the rest would fail the same way: next sweep
                except Exception as exc:  # one malformed receipt must not hold up the others behind it
                    log.error("event=owed_signal_failed receipt=%d error=%s: %s", receipt_id, type(exc).__name__, exc)
        finally:
            if done:
                await self.services.db.run(lambda s: inbound_repo.mark_signalled(s, done))
                log.info("event=owed_signals_sent receipts=%d", len(done))
        return len(done)

    async def run(self, interval: float = 10.0) -> None:
        """Sweep forever; a failed sweep (database or Temporal down) is logged and tried again."""
        while True:
            try:
                while await self.sweep() == self.batch:  # a backlog (Temporal was down a while): keep going
                    pass
            except Exception as exc:  # the API must outlive an outage; the next sweep retries
                log.warning("event=owed_signals_failed error=%s: %s", type(exc).__name__, exc)
            await asyncio.sleep(interval)


class SignalledMarks:
    """Receipt ids whose signals Temporal took, marked signalled together by one small transaction at most
    every ``MARK_DELAY`` seconds (see the module docstring)."""

    def __init__(self, db: Database):
        self._db = db
        self._ids: set[int] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task] = set()

    def add(self, ids: Iterable[int]) -> None:
        self._ids.update(ids)
        loop = asyncio.get_running_loop()
        if self._ids and (self._timer is None or self._loop is not loop):  # an app may outlive an event loop
            self._loop, self._timer = loop, loop.call_later(MARK_DELAY, self._flush_soon)

    def _flush_soon(self) -> None:
        self._timer = None
        task = asyncio.get_running_loop().create_task(self.flush())
        self._tasks.add(task)  # a task nobody references may be collected before it ran
        task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        ids = sorted(self._ids)  # sorted: two flushes lock rows in the same order
        self._ids.clear()
        if not ids:
            return
        try:
            await self._db.run(lambda s: inbound_repo.mark_signalled(s, ids))
        except Exception as exc:  # best effort: an unmarked receipt only re-signals on redelivery
            log.warning("event=webhook_mark_failed receipts=%d error=%s", len(ids), exc)


class GroupCommit(Generic[T, R]):
    """Applies items (callbacks) of concurrent requests together: ``apply(session, items)`` runs in one
    transaction and returns one result per item, as if each had been applied alone in arrival order.

    A request that arrives while ``IN_FLIGHT`` batches run waits for the next one, so under load the batches
    grow by themselves. While callbacks keep coming (a batch ended less than ``BUSY_WINDOW`` ago), a new batch
    first waits ``BATCH_DELAY`` for more, as PostgreSQL's ``commit_delay`` does: a transaction's fixed cost
    (the thread hop, BEGIN, the row lock, COMMIT's WAL flush) is most of a small batch's, and in the bench
    the batches grew from about 3 callbacks to 6 or 7 (docs/benchmarks.md, (c)). A callback to an idle API, or
    after a pause, is applied at once; Twilio does not wait on a status callback's answer, so the delay under
    load costs nobody anything. A batch that fails is applied again one item per transaction, so a bad callback
    fails its own request only (with that transaction's 409 or 503 problem), never its neighbours'.
    """

    def __init__(self, db: Database, apply: Callable[[Session, list[T]], list[R]]):
        self._db = db
        self._apply = apply
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
            if loop.time() - self._last_end < BUSY_WINDOW and len(self._queue) < MAX_BATCH:
                await asyncio.sleep(BATCH_DELAY)  # callbacks keep coming: let more join this batch
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
            log.warning("event=webhook_batch_failed size=%d error=%s; applying one by one", len(batch), exc)
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


@dataclass
class WebhookState:
    """Per database (one per app): the marks waiting to be written and the group commits by name."""

    marks: SignalledMarks
    batches: dict[str, GroupCommit] = field(default_factory=dict)


_STATES: weakref.WeakKeyDictionary[Database, WebhookState] = weakref.WeakKeyDictionary()


def state_of(db: Database) -> WebhookState:
    state = _STATES.get(db)
    if state is None:
        state = _STATES[db] = WebhookState(SignalledMarks(db))
    return state


def group_commit(services: Services, name: str, apply: Callable[[Session, list[T]], list[R]]) -> GroupCommit[T, R]:
    """The app's group commit called ``name`` (created on first use)."""
    state = state_of(services.db)
    batch = state.batches.get(name)
    if batch is None:
        batch = state.batches[name] = GroupCommit(services.db, apply)
    return batch
