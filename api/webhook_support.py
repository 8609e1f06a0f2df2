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
(``api.group_commit``): one worker-thread hop and one transaction per batch, a little bigger while callbacks
keep coming; each request still answers only after its own effects are committed and its signal sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

from fastapi import Request

from api.deps import Database, Services
from api.problems import ProblemError
from api.temporal_gateway import TemporalUnavailable
from core.signatures import TWILIO_SETTINGS_HEADER, TWILIO_SIGNATURE_HEADER, verify_twilio
from store.repos import inbound as inbound_repo
from workflows.contact_cadence import EventSignal

log = logging.getLogger("omnireach.webhooks")
OWED_SIGNAL_SETTLE = timedelta(seconds=30)  # age at which the relay sends a receipt's owed signals itself
MARK_DELAY = 0.25  # seconds a "signalled" mark may wait, to be written with the others of that moment


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
            marks_of(services.db).add(done)


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


def marks_of(db: Database) -> SignalledMarks:
    """The database's "signalled" marks waiting to be written (one per app)."""
    marks = db.batchers.get("signalled-marks")
    if marks is None:
        marks = db.batchers["signalled-marks"] = SignalledMarks(db)
    return marks
