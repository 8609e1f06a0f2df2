"""Chaos run: N contacts through a three-SMS cadence while everything that can go wrong does.

    .venv/bin/python -m bench.chaos --contacts 1000

- the `omnireach worker` process is SIGKILLed and restarted every few seconds while sends are going out;
- the fake Twilio fails 20% of sends: 429 (Retry-After), 500, and timeouts after accepting the message;
- the Temporal dev server (file database) is stopped and started again once, mid-run;
- every status callback (sent, delivered) arrives twice, in random order, signed as Twilio signs them;
- 10% of contacts text STOP right after their first message, while the rest of their cadence is in flight.

It reports duplicates (a message key or a cadence step reaching the provider more than once, outbox rows per
key), lost enrollments (accepted by the API but not completed) and sends after opt-out (a message reaching
the provider after the STOP was recorded, other than one already on its way: decided before the opt-out and
arriving within a second of it). Exit code 1 when any of the three is not zero.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import func, select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from bench.chaos_provider import FlakyProvider, TwilioCallbacks, enrollment_of, message_key, step_of
from bench.content import TEMPLATES, chaos_cadence
from bench.stack import (
    ADMIN_KEY,
    Product,
    TemporalDev,
    drop_postgres,
    fresh_postgres,
    log_size,
    stop_process,
    wait_for_worker,
    write_content,
)
from bench.world import ANY_HOUR, add_contacts, open_store

STEPS = ("first", "second", "third")
IN_FLIGHT_GRACE = 1.0  # seconds: a request decided before the STOP may still be arriving


@dataclass
class ChaosConfig:
    contacts: int = 1000
    fail_rate: float = 0.2
    stop_share: float = 0.1
    kill_every: tuple[float, float] = (6.0, 15.0)  # seconds between worker SIGKILLs, drawn at random
    max_kills: int = 1000
    restart_server_at: float = 0.3  # share of the expected sends after which the dev server restarts
    server_down: float = 5.0  # seconds the dev server stays stopped: requests meanwhile get 503 and are retried
    chaos_until: float = 0.8  # kills stop once this share of the expected sends reached the provider
    spacing: int = 4  # seconds between the cadence's SMS
    deadline: float = 1500  # seconds for every enrollment to finish
    concurrency: int = 16
    seed: int = 8
    database: str = field(default_factory=lambda: f"omnireach_chaos_{uuid.uuid4().hex[:8]}")  # dropped at the end


@dataclass
class ChaosReport:
    contacts: int
    enrolled: int = 0
    completed: int = 0
    lost: list[str] = field(default_factory=list)
    duplicate_keys: int = 0  # message keys the provider received more than once
    duplicate_steps: int = 0  # (enrollment, step) pairs the provider received more than once
    duplicate_outbox: int = 0  # outbox rows beyond one per message key
    sends_after_optout: int = 0
    in_flight_at_stop: int = 0
    missing_sends: int = 0  # steps of contacts who never opted out that never reached the provider
    stops: int = 0
    kills: int = 0
    worker_crashes: int = 0
    server_restarts: int = 0
    server_down_seconds: float = 0.0
    faults: dict[str, int] = field(default_factory=dict)
    provider_requests: int = 0
    provider_accepted: int = 0
    callbacks_posted: int = 0
    callbacks_retried: int = 0
    enrollments_retried: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return (
            not self.lost
            and not (self.duplicate_keys or self.duplicate_steps or self.duplicate_outbox)
            and (self.sends_after_optout == 0)
        )

    def summary(self) -> str:
        return (
            f"{self.enrolled} enrolled, {self.completed} completed; duplicates: {self.duplicate_keys} keys / "
            f"{self.duplicate_steps} steps / {self.duplicate_outbox} outbox rows; lost: {len(self.lost)}; "
            f"sends after opt-out: {self.sends_after_optout} (in flight at the STOP: {self.in_flight_at_stop}); "
            f"missing sends: {self.missing_sends}; {self.stops} STOPs, {self.kills} worker kills "
            f"({self.worker_crashes} crashes), {self.server_restarts} server restart(s) "
            f"({self.server_down_seconds:.1f}s down), faults {dict(self.faults)}, "
            f"{self.provider_requests} provider requests ({self.provider_accepted} accepted), "
            f"{self.callbacks_posted} callbacks ({self.callbacks_retried} redelivered), "
            f"{self.enrollments_retried} enrollment requests retried; {self.elapsed:.0f}s"
        )


class Chaos:
    def __init__(self, config: ChaosConfig, var: Path):
        self.config = config
        self.var = var
        self.rng = random.Random(config.seed)
        self.report = ChaosReport(config.contacts)
        self.expected = config.contacts * len(STEPS)
        self.accepted: set[str] = set()  # enrollment ids the API accepted
        self.stop_times: dict[str, float] = {}  # contact id -> epoch seconds when the API confirmed the STOP
        self.done = asyncio.Event()
        self.chaos_over = asyncio.Event()
        self.worker_lock = asyncio.Lock()  # one kill or restart at a time: never two workers by accident

    # -- the run ------------------------------------------------------------------------------------------------
    async def run(self) -> ChaosReport:
        began = time.monotonic()
        config = self.config
        self.temporal = TemporalDev(self.var / "temporal").start()
        database = fresh_postgres(config.database) or f"sqlite:///{self.var / 'omnireach.db'}"
        cadences, templates = write_content(self.var / "content", {"chaos": chaos_cadence(config.spacing)}, TEMPLATES)
        self.provider = FlakyProvider(fail_rate=config.fail_rate, seed=config.seed).start()
        self.product = Product(
            self.var, database, self.temporal.address, cadences, templates, provider_url=self.provider.url
        )
        self.worker = None
        try:
            self.sessions = open_store(database)
            contacts = add_contacts(self.sessions, config.contacts, consents=[("sms", "marketing")], places=ANY_HOUR)
            self.phones = self._phones(contacts)
            stopping = set(self.rng.sample(contacts, round(config.contacts * config.stop_share)))
            with self.product.api():
                self._start_worker()
                async with httpx.AsyncClient(timeout=30) as http:
                    self.callbacks = TwilioCallbacks(http, self.product.api_url)
                    tasks = [
                        asyncio.create_task(self._enroll_all(http, contacts)),
                        asyncio.create_task(self._kill_workers()),
                        asyncio.create_task(self._restart_server_once()),
                        asyncio.create_task(self._deliver_callbacks()),
                        asyncio.create_task(self._stop_some(stopping)),
                    ]
                    try:
                        await self._wait_for_the_end(tasks)
                    finally:
                        self.done.set()
                        self.chaos_over.set()
                        await asyncio.gather(*tasks, return_exceptions=True)
                    await self._analyse(contacts, stopping)
        finally:
            if self.worker is not None:
                stop_process(self.worker)
            self.provider.stop()
            self.temporal.stop()
            if database.startswith("postgresql"):
                drop_postgres(config.database)
        self.report.elapsed = time.monotonic() - began
        return self.report

    def _phones(self, contacts: list[str]) -> dict[str, str]:
        from store.models import Contact

        with self.sessions() as session:
            rows = session.execute(select(Contact.id, Contact.phone).where(Contact.id.in_(contacts))).all()
        return {contact_id: phone for contact_id, phone in rows}

    def _sent(self) -> list:
        return self.provider.accepted("message")

    # -- the worker, killed and restarted -------------------------------------------------------------------------
    def _start_worker(self) -> None:
        log = self.var / "worker.log"
        since = log_size(log)
        self.worker = self.product.worker()
        wait_for_worker(self.worker, log, since)

    async def _kill_workers(self) -> None:
        config = self.config
        while not self.chaos_over.is_set():
            try:
                await asyncio.wait_for(self.chaos_over.wait(), self.rng.uniform(*config.kill_every))
                return
            except TimeoutError:
                pass
            if self.report.kills >= config.max_kills or len(self._sent()) >= config.chaos_until * self.expected:
                self.chaos_over.set()
                return
            async with self.worker_lock:
                if self.worker is not None and self.worker.poll() is None:
                    os.killpg(self.worker.pid, signal.SIGKILL)
                    self.worker.wait()
                    self.report.kills += 1
                await asyncio.to_thread(self._start_worker)

    async def _keep_worker_alive(self) -> None:
        async with self.worker_lock:
            if self.worker is not None and self.worker.poll() is not None:
                self.report.worker_crashes += 1  # it exited by itself (not one of our kills)
                await asyncio.to_thread(self._start_worker)

    # -- the dev server, restarted once ----------------------------------------------------------------------------
    async def _restart_server_once(self) -> None:
        while len(self._sent()) < self.config.restart_server_at * self.expected:
            if self.done.is_set():
                return
            await asyncio.sleep(0.2)
        self.report.server_down_seconds = await asyncio.to_thread(self.temporal.restart, self.config.server_down)
        self.report.server_restarts += 1

    # -- enrollments through the API ------------------------------------------------------------------------------
    async def _enroll_all(self, http: httpx.AsyncClient, contacts: list[str]) -> None:
        gate = asyncio.Semaphore(self.config.concurrency)

        async def one(contact_id: str) -> None:
            async with gate:
                while not self.done.is_set():
                    try:
                        answer = await http.post(
                            f"{self.product.api_url}/v1/enrollments",
                            json={"cadence_id": "chaos", "contact_id": contact_id},
                            headers={"Authorization": f"Bearer {ADMIN_KEY}"},
                        )
                    except httpx.HTTPError:
                        answer = None
                    if answer is not None and answer.status_code in (200, 201):
                        self.accepted.add(answer.json()["id"])
                        return
                    self.report.enrollments_retried += 1
                    await asyncio.sleep(0.5)  # 503 while Temporal restarts: retry the same request

        await asyncio.gather(*(one(c) for c in contacts))

    # -- provider callbacks: each twice, out of order -------------------------------------------------------------
    async def _deliver_callbacks(self) -> None:
        seen = 0
        pending: list[tuple] = []
        while not (self.done.is_set() and not pending):
            sent = self._sent()
            for received in sent[seen:]:
                pending += [(received, status) for status in ("sent", "delivered", "sent", "delivered")]
            seen = len(sent)
            self.rng.shuffle(pending)
            batch, pending = pending[:200], pending[200:]
            if batch:
                results = await asyncio.gather(*(self.callbacks.status(r, s) for r, s in batch))
                for item, ok in zip(batch, results, strict=True):
                    if ok:
                        self.report.callbacks_posted += 1
                    else:
                        self.report.callbacks_retried += 1
                        pending.append(item)
            await self._keep_worker_alive()
            await asyncio.sleep(0.5 if not batch else 0.05)
            if self.done.is_set() and self.report.callbacks_retried > 50 * self.expected:
                return  # the API refuses for good; the report's figures say enough

    # -- STOPs mid-flight -----------------------------------------------------------------------------------------
    async def _stop_some(self, stopping: set[str]) -> None:
        waiting = set(stopping)
        by_phone = {self.phones[c]: c for c in stopping}
        sids = {c: "SM" + uuid.uuid4().hex for c in stopping}
        while waiting and not self.done.is_set():
            firsts = {by_phone.get(r.params.get("To")) for r in self._sent() if step_of(r) == "first"}
            for contact_id in sorted(waiting & firsts):
                if await self.callbacks.stop(self.phones[contact_id], sids[contact_id]):
                    self.stop_times[contact_id] = time.time()
                    waiting.discard(contact_id)
                    self.report.stops += 1
            await asyncio.sleep(0.2)

    # -- the end --------------------------------------------------------------------------------------------------
    async def _wait_for_the_end(self, tasks: list[asyncio.Task]) -> None:
        deadline = time.monotonic() + self.config.deadline
        client = None
        while time.monotonic() < deadline:
            for task in tasks:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if tasks[0].done() and len(self.accepted) == self.config.contacts:
                try:
                    client = client or await Client.connect(self.temporal.address)
                    running = await client.count_workflows(
                        "WorkflowType='contact-cadence' AND ExecutionStatus='Running'"
                    )
                    if running.count == 0:
                        return
                except (RuntimeError, RPCError):
                    client = None  # the server is restarting
            await asyncio.sleep(1)
        print(f"deadline of {self.config.deadline:.0f}s reached; reporting what is there", file=sys.stderr)

    async def _analyse(self, contacts: list[str], stopping: set[str]) -> None:
        from store.models import ConsentRecord, OutboxMessage

        report = self.report
        report.enrolled = len(self.accepted)
        report.faults = dict(self.provider.injected)
        report.provider_requests = len(self.provider.all("message"))
        sent = self._sent()
        report.provider_accepted = len(sent)
        client = await Client.connect(self.temporal.address)
        for workflow_id in sorted(self.accepted):
            try:
                description = await client.get_workflow_handle(workflow_id).describe()
                status = description.status
            except Exception:
                status = None
            if status == WorkflowExecutionStatus.COMPLETED:
                report.completed += 1
            else:
                report.lost.append(f"{workflow_id}: {status.name if status else 'not found'}")
        not_accepted = len(contacts) - len(self.accepted)
        report.lost += [f"enrollment request never accepted ({not_accepted})"] if not_accepted else []

        by_key = Counter(message_key(r) for r in sent)
        by_step = Counter((enrollment_of(r), step_of(r)) for r in sent)
        report.duplicate_keys = sum(1 for n in by_key.values() if n > 1)
        report.duplicate_steps = sum(1 for n in by_step.values() if n > 1)
        with self.sessions() as session:
            rows, keys = session.execute(
                select(func.count(), func.count(func.distinct(OutboxMessage.message_key)))
            ).one()
            report.duplicate_outbox = rows - keys
            withdrawn = dict(
                session.execute(
                    select(ConsentRecord.contact_id, func.min(ConsentRecord.occurred_at))
                    .where(ConsentRecord.status == "withdrawn", ConsentRecord.channel == "sms")
                    .group_by(ConsentRecord.contact_id)
                ).all()
            )
            created = dict(session.execute(select(OutboxMessage.message_key, OutboxMessage.created_at)).all())
        contact_of = {self.phones[c]: c for c in contacts}
        for received in sent:
            contact_id = contact_of.get(received.params.get("To"))
            opted_out = withdrawn.get(contact_id)
            if opted_out is None:
                continue
            at_stop = _epoch(opted_out)
            if received.at <= at_stop:
                continue
            decided = created.get(message_key(received))
            if decided is not None and _epoch(decided) < at_stop and received.at - at_stop <= IN_FLIGHT_GRACE:
                report.in_flight_at_stop += 1
            else:
                report.sends_after_optout += 1
        reached = defaultdict(set)
        for enrollment, step in by_step:
            reached[enrollment].add(step)
        for contact_id in contacts:
            if contact_id not in stopping:
                report.missing_sends += len(STEPS) - len(reached[f"cadence:chaos:{contact_id}"])


def _epoch(value: datetime) -> float:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


async def run_chaos(config: ChaosConfig, var: Path | None = None) -> ChaosReport:
    """One chaos run in ``var`` (a fresh temporary folder by default, removed afterwards)."""
    own = var is None
    folder = var or Path(tempfile.mkdtemp(prefix="omnireach-chaos-"))
    try:
        return await Chaos(config, folder).run()
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--fail-rate", type=float, default=0.2, help="share of sends the provider fails")
    parser.add_argument("--stop-share", type=float, default=0.1, help="share of contacts who text STOP")
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--deadline", type=float, default=1500, help="seconds for all enrollments to finish")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (logs, databases)")
    parser.add_argument("--json", type=Path, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    config = ChaosConfig(
        contacts=args.contacts,
        fail_rate=args.fail_rate,
        stop_share=args.stop_share,
        seed=args.seed,
        deadline=args.deadline,
    )
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    report = asyncio.run(run_chaos(config, args.keep))
    print(report.summary())
    for line in report.lost[:20]:
        print(f"  lost: {line}")
    if args.json:
        args.json.write_text(json.dumps({**asdict(report), "ok": report.ok}, indent=2, default=str) + "\n")
    raise SystemExit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
