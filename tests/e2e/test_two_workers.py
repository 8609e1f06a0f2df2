"""Two `omnireach worker` processes on one task queue share the enrollments, and nothing is sent twice.

Production runs several workers against one Temporal cluster and one PostgreSQL (docs/runbook.md): Temporal
hands each workflow and activity task to one of them, and the outbox's unique message key guards the sends.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from bench.chaos_provider import message_key
from bench.content import TEMPLATES, chaos_cadence
from bench.stack import (
    Product,
    drop_postgres,
    free_port,
    fresh_postgres,
    stop_process,
    wait_for_worker,
    write_content,
)
from bench.world import ANY_HOUR, add_contacts, open_store
from content.cadences import load_library
from store.models import OutboxMessage
from tests.e2e.fake_provider import FakeProvider
from tests.store.conftest import require_postgres
from workflows.contact_cadence import WORKFLOW_TYPE, EnrollmentInput, enrollment_id

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
ENROLLMENTS = 40


async def test_two_worker_processes_share_the_work_without_duplicates(dev_env: WorkflowEnvironment, tmp_path):
    require_postgres()
    database = f"omnireach_two_workers_{uuid.uuid4().hex[:8]}"
    url = fresh_postgres(database)
    assert url is not None
    cadences, templates = write_content(tmp_path / "content", {"chaos": chaos_cadence(spacing_seconds=1)}, TEMPLATES)
    provider = FakeProvider().start()
    address = dev_env.client.service_client.config.target_host
    queue = f"two-workers-{uuid.uuid4().hex[:6]}"
    product = Product(tmp_path, url, address, cadences, templates, task_queue=queue, provider_url=provider.url)
    workers = []
    try:
        sessions = open_store(url)
        contacts = add_contacts(sessions, ENROLLMENTS, consents=[("sms", "marketing")], places=ANY_HOUR)
        metrics_address = f"127.0.0.1:{free_port()}"  # worker 1 also serves Prometheus metrics (runbook)
        workers = [
            product.worker("worker-1", OMNIREACH_METRICS_ADDRESS=metrics_address),
            product.worker("worker-2"),
        ]
        for n, worker in enumerate(workers, start=1):
            await asyncio.to_thread(wait_for_worker, worker, tmp_path / f"worker-{n}.log")
        cadence = load_library([cadences], templates).get("chaos")
        handles = [
            await dev_env.client.start_workflow(
                WORKFLOW_TYPE,
                EnrollmentInput(cadence.snapshot(), contact),
                id=enrollment_id(cadence.id, contact),
                task_queue=queue,
            )
            for contact in contacts
        ]
        deadline = time.monotonic() + 90
        statuses: list = []
        while time.monotonic() < deadline:
            statuses = [(await h.describe()).status for h in handles]
            if all(s != WorkflowExecutionStatus.RUNNING for s in statuses):
                break
            await asyncio.sleep(1)
        sent = provider.accepted("message")
        exposed = httpx.get(f"http://{metrics_address}/metrics", timeout=5).text
        with sessions() as session:
            rows, keys = session.execute(
                select(func.count(), func.count(func.distinct(OutboxMessage.message_key)))
            ).one()
    finally:
        for worker in workers:
            stop_process(worker)
        provider.stop()
        drop_postgres(database)

    assert Counter(statuses) == {WorkflowExecutionStatus.COMPLETED: ENROLLMENTS}
    per_key = Counter(message_key(r) for r in sent)
    assert len(per_key) == 3 * ENROLLMENTS, "every step of every enrollment reaches the provider"
    assert max(per_key.values()) == 1, "no message reaches the provider twice"
    assert (rows, keys) == (3 * ENROLLMENTS, 3 * ENROLLMENTS)
    shares = [(tmp_path / f"worker-{n}.log").read_text().count("event=sent ") for n in (1, 2)]
    assert sum(shares) == 3 * ENROLLMENTS
    assert min(shares) > 0, f"both workers should have sent some of the messages: {shares}"
    assert _counter(exposed, "omnireach_sends") == shares[0], "worker 1 counts exactly the sends it made"
    assert "temporal_workflow_completed" in exposed, "the SDK's own metrics share the endpoint"


def _counter(exposition: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in exposition.splitlines() if line.startswith(name + "{"))
