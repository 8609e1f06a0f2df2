"""(a) enrollments through the API, (b) sends per worker process, (c) provider webhooks turned into signals,
(e) worker memory with 10,000 enrollments in flight: each beside the same work done by Temporal alone.

Both sides of a ratio run on the same dev server in the same run, with the same concurrency; halves are
interleaved (raw, ours, raw, ours) so drift over the run hits both sides alike.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from twilio.request_validator import RequestValidator

from bench.baseline import NOOP_ACTIVITIES
from bench.handled import fetch_histories, last_taken
from bench.results import Figure, run_limited, steady_rate, until_quiet
from bench.stack import (
    ADMIN_KEY,
    TWILIO_SID,
    TWILIO_TOKEN,
    Product,
    cpu_seconds,
    log_size,
    rss_mib,
    stop_process,
    wait_for_worker,
)
from bench.world import ANY_HOUR, add_contacts
from core.model import Cadence
from workflows.contact_cadence import WORKFLOW_TYPE, EnrollmentInput, EventSignal, enrollment_id

IDLE_QUEUE = "bench-idle"  # nobody polls it: raw starts measure the start alone, like the API's
BASELINE_QUEUE = "bench-baseline"
SMS_ONLY = [("sms", "marketing")]
# (a) runs in rounds, and which side goes first alternates (raw-API, API-raw, ...): the dev server gets slower
# over a run (raw starts in four rounds of one run: 317, 293, 290, 226 /s), so the side that always went second
# paid for it; alternating cancels a steady slowdown (docs/benchmarks.md, (a)).
ENROLL_ROUNDS = 4
RAW_SIGNAL = "bench.raw"  # the event name of (c)'s raw signals


@dataclass
class Flow:
    client: Client
    product: Product
    provider: object  # tests.e2e.fake_provider.FakeProvider
    sessions: sessionmaker[Session]
    cadence: Cadence  # bench-send
    hold: Cadence  # bench-hold
    concurrency: int = 32
    worker: subprocess.Popen | None = None  # the worker on the product's queue, from (c) on
    enrolled: set[str] = field(default_factory=set)  # enrollments (workflow ids) on the product's queue
    api_pid: int = 0  # the `omnireach api` process

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_KEY}"}

    def sent(self) -> list:
        return self.provider.accepted("message")


# -- (a) ----------------------------------------------------------------------------------------------------------
async def enrollment_throughput(flow: Flow, n: int) -> Figure:
    contacts = add_contacts(flow.sessions, n, prefix=f"a{uuid.uuid4().hex[:4]}", consents=SMS_ONLY, places=ANY_HOUR)
    tag = uuid.uuid4().hex[:6]
    seconds = {"api": 0.0, "raw": 0.0}
    async with _KeptAliveClient(flow.product.api_url, flow.concurrency) as http:

        async def raw(part: list[str]) -> float:
            jobs = [
                lambda c=c: flow.client.start_workflow("bench-empty", id=f"empty-{tag}-{c}", task_queue=IDLE_QUEUE)
                for c in part
            ]
            return (await run_limited(flow.concurrency, jobs))[0]

        async def api(part: list[str]) -> float:
            elapsed, answers = await run_limited(flow.concurrency, [lambda c=c: _enroll(http, flow, c) for c in part])
            bad = [a for a in answers if a != 201]
            if bad:
                raise RuntimeError(f"{len(bad)} enrollments failed through the API: {sorted(set(bad))}")
            return elapsed

        sides = {"raw": raw, "api": api}
        for number in range(ENROLL_ROUNDS):
            part = contacts[number * n // ENROLL_ROUNDS : (number + 1) * n // ENROLL_ROUNDS]
            for side in ("raw", "api") if number % 2 == 0 else ("api", "raw"):  # ABBA: see ENROLL_ROUNDS
                seconds[side] += await sides[side](part)
    flow.enrolled |= {enrollment_id(flow.cadence.id, c) for c in contacts}
    return Figure(
        "a",
        "enrollments started through the API (POST /v1/enrollments)",
        n / seconds["api"],
        "/s",
        n / seconds["raw"],
        "start_workflow of an empty workflow",
        ">= 0.7",
        f"{n} each, {flow.concurrency} concurrent (requests over kept-alive HTTP/1.1 connections), in "
        f"{ENROLL_ROUNDS} rounds whose first side alternates; no worker polling during the starts (the start "
        "path alone)",
    )


async def _enroll(http: _KeptAliveClient, flow: Flow, contact_id: str) -> int:
    document = {"cadence_id": flow.cadence.id, "contact_id": contact_id}
    return await http.post_json(f"{flow.product.api_url}/v1/enrollments", document, flow.headers())


# -- (b) ----------------------------------------------------------------------------------------------------------
async def sends_per_worker(flow: Flow, var: Path, baseline_round: int) -> Figure:
    """The enrollments (a) queued are drained by one fresh `omnireach worker` process, one SMS each through the
    fake provider. Temporal alone: ``baseline_round`` workflows of three no-op activities queued and drained by
    a fresh worker process with the same options, once before and once after (bracketing any drift)."""
    base = [0.0, 0.0]  # items, seconds (steady part)
    _add(base, await _baseline_round(flow, var, baseline_round, f"before-{uuid.uuid4().hex[:4]}"), baseline_round)
    await start_product_worker(flow, var)
    ours = steady_rate(r.at for r in _sent_for(flow, flow.enrolled))
    _add(base, await _baseline_round(flow, var, baseline_round, f"after-{uuid.uuid4().hex[:4]}"), baseline_round)
    return Figure(
        "b",
        "SMS sent per second by one worker process (fake Twilio)",
        ours,
        "/s",
        base[0] / base[1],
        f"workflows of {NOOP_ACTIVITIES} no-op activities",
        ">= 0.5",
        f"{len(flow.enrolled)} queued enrollments drained by one fresh `omnireach worker` process, vs "
        f"{baseline_round} queued no-op workflows drained by a fresh baseline worker before and after; steady rate "
        "between the 10th and 90th percentile. An enrollment runs load-profile, record-enrollment and deliver "
        "(consent, suppression, legal hours, caps, render, outbox row, Twilio SDK call) on PostgreSQL",
    )


async def _baseline_round(flow: Flow, var: Path, n: int, tag: str) -> float:
    queue = f"bench-noop-{tag}"
    await run_limited(
        flow.concurrency,
        [
            lambda i=i: flow.client.start_workflow("bench-noop", id=f"noop-{tag}-{i}", task_queue=queue)
            for i in range(n)
        ],
    )
    marks = var / f"marks-{tag}.txt"
    baseline = subprocess.Popen(
        [sys.executable, "-m", "bench.baseline", "--address", flow.product.temporal_address, "--task-queue", queue],
        env={**os.environ, "BENCH_MARKS": str(marks)},
        stdout=(var / "baseline.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        await _until(lambda: _count_lines(marks) >= n, 900, f"the baseline worker to run {n} workflows")
    finally:
        stop_process(baseline)
    return steady_rate(float(line) for line in marks.read_text().split())


def _add(total: list[float], rate: float, n: int) -> None:
    steady = 0.8 * n
    total[0] += steady
    total[1] += steady / rate


async def _start_enrollment(flow: Flow, contact_id: str, task_queue: str, cadence: Cadence) -> None:
    """What POST /v1/enrollments asks of Temporal (the same id and input), without the HTTP hop."""
    await flow.client.start_workflow(
        WORKFLOW_TYPE,
        EnrollmentInput(_snapshot(cadence), contact_id),
        id=enrollment_id(cadence.id, contact_id),
        task_queue=task_queue,
    )


_SNAPSHOTS: dict[str, dict] = {}


def _snapshot(cadence: Cadence) -> dict:
    if cadence.id not in _SNAPSHOTS:
        _SNAPSHOTS[cadence.id] = cadence.snapshot()
    return _SNAPSHOTS[cadence.id]


def _sent_for(flow: Flow, workflow_ids: set[str]) -> list:
    return [r for r in flow.sent() if _workflow_of(flow, r) in workflow_ids]


# -- (c) ----------------------------------------------------------------------------------------------------------
async def start_product_worker(flow: Flow, var: Path) -> float:
    """The worker on the product's queue drains the enrollments queued so far; seconds it took."""
    log = var / "worker.log"
    since = log_size(log)
    began = time.monotonic()
    flow.worker = flow.product.worker()
    await asyncio.to_thread(wait_for_worker, flow.worker, log, since)
    await _until(lambda: len(_sent_for(flow, flow.enrolled)) >= len(flow.enrolled), 900, "(a)'s enrollments to send")
    return time.monotonic() - began


async def webhook_signals(flow: Flow, m: int) -> Figure:
    """Twilio 'delivered' callbacks (signed) for m messages of running enrollments, versus m raw signals to the
    same enrollments. The worker is running during both, handling the signals it is sent.

    Each side is timed from its first request until its enrollments have taken its signals, by the histories'
    own times (``bench.handled``): a signal call returns before the workflow task that hands it over has run,
    and a side timed by its calls alone would leave out most of the work its signals cause. How fast the calls
    themselves were accepted is reported beside it."""
    messages = _sent_for(flow, flow.enrolled)[:m]
    if len(messages) < m:
        raise RuntimeError(f"only {len(messages)} messages of running enrollments to call back about; {m} wanted")
    validator = RequestValidator(TWILIO_TOKEN)
    halves = [messages[: m // 2], messages[m // 2 :]]
    windows: list[tuple[str, int, datetime]] = []  # (side, half, start), in the order the sides ran
    accepted = {"raw": 0.0, "ours": 0.0}  # seconds until the last call of each side returned
    async with _KeptAliveClient(flow.product.api_url, flow.concurrency) as http:
        # Not timed: the API's first request to a router builds FastAPI's route tables (up to a second on a busy
        # machine); a refused (unsigned) callback does that, stores nothing and sends no signal.
        if await http.post_form(messages[0].params["StatusCallback"], {"MessageSid": "SMwarmup"}, "") != 403:
            raise RuntimeError("an unsigned status callback was not refused")
        api_cpu = client_cpu = 0.0
        for k, half in enumerate(halves):
            # The first side alternates (raw-ours, ours-raw), as in (a): a side that always went second would signal
            # enrollments whose histories the other had just grown.
            for side in ("raw", "ours") if k % 2 == 0 else ("ours", "raw"):
                # Each side starts on a quiet machine, so it does not share the CPUs with the work the other left.
                await until_quiet()
                windows.append((side, k, datetime.now(UTC)))
                if side == "raw":
                    started_cpu = time.process_time()
                    elapsed, _ = await run_limited(
                        flow.concurrency, [lambda r=r, i=i: _raw_signal(flow, r, i) for i, r in enumerate(half)]
                    )
                    client_cpu += time.process_time() - started_cpu
                else:
                    started_cpu = cpu_seconds(flow.api_pid)
                    elapsed, codes = await run_limited(
                        flow.concurrency, [lambda r=r: _status_callback(http, validator, r) for r in half]
                    )
                    api_cpu += cpu_seconds(flow.api_pid) - started_cpu
                    bad = [c for c in codes if c != 204]
                    if bad:
                        raise RuntimeError(f"{len(bad)} status callbacks refused: {sorted(set(bad))}")
                accepted[side] += elapsed
        await until_quiet()
    taken = await _signals_taken(flow, halves, windows)
    scored = await _scored(flow, messages[:20])
    return Figure(
        "c",
        "Twilio status callbacks turned into enrollment signals, until the enrollments took them",
        m / taken["ours"],
        "/s",
        m / taken["raw"],
        "raw signals to the same enrollments",
        ">= 0.8",
        f"{m} each, {flow.concurrency} concurrent (callbacks over kept-alive HTTP/1.1 connections, after one untimed "
        "refused request); each callback: signature check, dedupe receipt, outbox status, event row (applied with "
        "the callbacks arriving meanwhile), signal; each side starts on a quiet machine and ends when the workflow "
        "task that took its last signal completed (history times); "
        f"the calls alone were accepted at {m / accepted['ours']:.0f} vs {m / accepted['raw']:.0f} /s, ratio "
        f"{accepted['raw'] / accepted['ours']:.2f}; CPU per callback in the API {1000 * api_cpu / m:.2f} ms, per raw "
        f"signal in the bench's client {1000 * client_cpu / m:.2f} ms; "
        f"{scored}/20 sampled enrollments show the delivery in their score",
        extra={"taken_s": taken, "accepted_s": accepted, "accepted_ratio": accepted["raw"] / accepted["ours"]},
    )


async def _signals_taken(flow: Flow, halves: list[list], windows: list[tuple[str, int, datetime]]) -> dict[str, float]:
    """Seconds from each side's start until its enrollments had taken its signals, summed over the halves; a
    side's window ends where the next one began."""
    histories = await fetch_histories(flow.client, (_workflow_of(flow, r) for half in halves for r in half))
    taken = {"raw": 0.0, "ours": 0.0}
    ends = [start for _, _, start in windows[1:]] + [None]
    for (side, k, since), until in zip(windows, ends, strict=True):
        of_half = [histories[w] for w in {_workflow_of(flow, r) for r in halves[k]}]
        last = last_taken(of_half, _SIDE_OF_EVENT[side], since, until, len(halves[k]))
        taken[side] += (last - since).total_seconds()
    return taken


_SIDE_OF_EVENT = {"raw": lambda name: name == RAW_SIGNAL, "ours": lambda name: name != RAW_SIGNAL}


async def _raw_signal(flow: Flow, received, i: int) -> None:
    workflow_id = _workflow_of(flow, received)
    await flow.client.get_workflow_handle(workflow_id).signal("event", EventSignal(RAW_SIGNAL, None, f"raw-{i}"))


def _workflow_of(flow: Flow, received) -> str:
    key = _message_key(received)
    return key.rsplit("/", 2)[0]


def _message_key(received) -> str:
    from urllib.parse import parse_qs, urlsplit

    return parse_qs(urlsplit(received.params["StatusCallback"]).query)["key"][0]


async def _status_callback(http: _KeptAliveClient, validator: RequestValidator, received) -> int:
    url = received.params["StatusCallback"]
    params = {
        "MessageSid": received.sid,
        "SmsSid": received.sid,
        "MessageStatus": "delivered",
        "AccountSid": TWILIO_SID,
        "To": received.params.get("To", ""),
    }
    return await http.post_form(url, params, validator.compute_signature(url, params))


class _KeptAliveClient:
    """Posts requests over ``size`` kept-alive HTTP/1.1 connections, as a CRM's or Twilio's senders would.

    Not httpx: the load generator shares the machine's two cores with the API, Temporal and the worker, and
    httpx spends 2 to 3 ms of CPU per request (the raw side's gRPC call about 0.3 to 0.5 ms), which the API's
    side of the ratio would pay for. A real request all the same: TCP to the API process, the body the API
    parses (a signed form, a JSON document), the status line read back, the body read off so the connection
    can carry the next request.
    """

    def __init__(self, base_url: str, size: int, timeout: float = 60):
        from urllib.parse import urlsplit

        parts = urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname or "127.0.0.1", parts.port or 80, timeout
        self.size = size
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def __aenter__(self) -> _KeptAliveClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()

    async def post_form(self, url: str, params: dict[str, str], signature: str) -> int:
        """A Twilio callback: a form body, signed unless ``signature`` is empty."""
        from urllib.parse import urlencode

        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if signature:
            headers["X-Twilio-Signature"] = signature
        return await self.post(url, urlencode(params).encode(), headers)

    async def post_json(self, url: str, document: object, headers: dict[str, str]) -> int:
        return await self.post(url, json.dumps(document).encode(), {"Content-Type": "application/json", **headers})

    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        return await asyncio.wait_for(self._post(url, body, headers), self.timeout)

    async def _post(self, url: str, body: bytes, headers: dict[str, str]) -> int:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        head = f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n{lines}Content-Length: {len(body)}\r\n\r\n"
        request = head.encode() + body
        reused = bool(self.idle)
        reader, writer = self.idle.pop() if reused else await asyncio.open_connection(self.host, self.port)
        writer.write(request)
        status_line = await reader.readline()
        if not status_line and reused:  # the server closed it while idle (keep-alive timeout): once more, anew
            writer.close()
            reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(request)
            status_line = await reader.readline()
        status = int(status_line.split()[1])
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() in ("connection", "transfer-encoding") and value.strip().lower() in ("close", "chunked"):
                close = True  # a chunked body is not read: the connection is not reused instead
        if not close:
            await reader.readexactly(length)
        if close or len(self.idle) >= self.size:
            writer.close()
        else:
            self.idle.append((reader, writer))
        return status


async def _scored(flow: Flow, messages: list) -> int:
    scored = 0
    for received in messages:
        state = await flow.client.get_workflow_handle(_workflow_of(flow, received)).query("state")
        scored += int(state["score"] >= 1)
    return scored


# -- (e) ----------------------------------------------------------------------------------------------------------
async def memory_in_flight(flow: Flow, total: int) -> Figure:
    """Top up to ``total`` running enrollments on the product worker's queue and sample that one process's
    resident memory all along. The top-up uses `bench-hold` (an hour's wait before its SMS): each enrollment
    loads its profile, records itself and waits, which is where most enrollments of a real cadence are, and
    it keeps the run inside its time budget (a send per enrollment would add minutes without changing what
    the worker holds in memory)."""
    assert flow.worker is not None
    more = total - len(flow.enrolled)
    contacts = await asyncio.to_thread(
        add_contacts, flow.sessions, more, prefix=f"e{uuid.uuid4().hex[:4]}", consents=SMS_ONLY, places=ANY_HOUR
    )
    samples: list[tuple[int, float]] = []
    before = rss_mib(flow.worker.pid)[0]
    started = time.perf_counter()
    flow.enrolled |= {enrollment_id(flow.hold.id, c) for c in contacts}

    async def sample() -> None:
        while True:
            recorded = await asyncio.to_thread(_recorded, flow)
            samples.append((recorded, rss_mib(flow.worker.pid)[0]))
            if recorded >= total:
                return
            await asyncio.sleep(2)

    sampler = asyncio.create_task(sample())
    try:
        await run_limited(
            flow.concurrency,
            [lambda c=c: _start_enrollment(flow, c, flow.product.task_queue, flow.hold) for c in contacts],
        )
        await asyncio.wait_for(sampler, 1800)
    finally:
        sampler.cancel()
    elapsed = time.perf_counter() - started
    await asyncio.sleep(2)  # the last workflow tasks (timers started) complete
    rss, peak = rss_mib(flow.worker.pid)
    query = f"WorkflowType='{WORKFLOW_TYPE}' AND ExecutionStatus='Running' AND TaskQueue='{flow.product.task_queue}'"
    running = (await flow.client.count_workflows(query)).count
    curve = ", ".join(f"{n}:{mib:.0f}" for n, mib in samples[:: max(1, len(samples) // 8)])
    return Figure(
        "e",
        f"worker resident memory, {running:,} enrollments in flight",
        rss,
        "MiB",
        notes=f"{before:.0f} MiB with {total - more:,} in flight, {rss:.0f} MiB with {running:,} (peak {peak:.0f}); "
        f"the SDK caches at most 1,000 workflow runs (its default), so memory levels off; {more:,} more started "
        f"and brought to their first wait in {elapsed:.0f}s ({more / elapsed:.1f}/s); in flight:MiB along the "
        f"way {curve}",
        extra={"rss_mib": rss, "peak_mib": peak, "samples": samples, "in_flight": running},
    )


def _recorded(flow: Flow) -> int:
    """Enrollments whose record-enrollment activity ran (the last step before their first wait)."""
    from sqlalchemy import func, select

    from store.models import Enrollment

    with flow.sessions() as session:
        return session.scalar(select(func.count()).select_from(Enrollment)) or 0


async def _until(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout:.0f}s for {what}")
        await asyncio.sleep(0.2)


def _count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return sum(1 for _ in handle)
