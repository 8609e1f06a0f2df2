"""Per-sender throughput across processes: two `omnireach worker` processes, one SMS sender limited to
5 segments/s, 100 enrollments on the real Temporal dev server. The fake provider's receive times must never
show more than 5 messages in any one-second window, and every contact gets exactly one message.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client

from core.cadence_loader import check_content, parse_cadence
from core.messages import MessageCatalog
from store.db import make_engine, make_session_factory, upgrade
from store.repos.consent import append_consent
from store.repos.contacts import upsert_contact
from tests.e2e.fake_provider import FakeProvider
from workflows.contact_cadence import WORKFLOW_TYPE, EnrollmentInput, EnrollmentResult, enrollment_id

pytestmark = pytest.mark.e2e

SENDS = 100
RATE = 5
CADENCE = """\
id: burst
name: One SMS to everyone at once
purpose: service
locale: en
steps:
  - id: ping
    send: sms
    message: ping
"""
TEMPLATES = {"ping/sms.j2": "Hi {{ contact.name }}, your order has shipped."}


def max_in_any_second(times: list[float]) -> int:
    """The most arrivals inside any window [t, t + 1s) that starts at an arrival."""
    times = sorted(times)
    best, j = 0, 0
    for i, start in enumerate(times):
        while j < len(times) and times[j] < start + 1.0:
            j += 1
        best = max(best, j - i)
    return best


def test_window_counter():
    assert max_in_any_second([0, 0.2, 0.4, 0.6, 0.8, 1.0]) == 5
    assert max_in_any_second([0, 0.1, 0.2, 0.3, 0.4, 0.99]) == 6


def _world(tmp_path: Path) -> tuple[str, list[str]]:
    (tmp_path / "cadences").mkdir()
    (tmp_path / "cadences" / "burst.yaml").write_text(CADENCE, encoding="utf-8")
    (tmp_path / "templates" / "ping").mkdir(parents=True)
    (tmp_path / "templates" / "ping" / "sms.j2").write_text(TEMPLATES["ping/sms.j2"], encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'omnireach.db'}"
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    ids = []
    with sessions.begin() as session:
        for n in range(SENDS):
            contact, _ = upsert_contact(
                session,
                external_id=f"burst-{n}",
                name=f"Customer {n}",
                phone=f"+316123456{n:02d}",
                country="NL",
                timezone="Europe/Amsterdam",
                locale="en",
            )
            session.flush()
            append_consent(
                session,
                contact_id=contact.id,
                channel="sms",
                purpose="service",
                status="granted",
                method="web_form",
                source="https://shop.example.nl/checkout",
                notice_text="Send me shipping updates by SMS",
                notice_version="v1",
                lawful_basis="contract",
            )
            ids.append(contact.id)
    engine.dispose()
    return url, ids


def _start_worker(tmp_path: Path, n: int, env: dict[str, str]) -> subprocess.Popen:
    log = (tmp_path / f"worker-{n}.log").open("wb")
    return subprocess.Popen(
        [str(Path(sys.executable).parent / "omnireach"), "worker"],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def test_two_workers_share_one_senders_rate_limit(dev_env, tmp_path: Path):
    fake = FakeProvider(auth_token="burst-token").start()
    url, contact_ids = _world(tmp_path)
    task_queue = f"burst-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMNIREACH_", "TWILIO_", "SENDGRID_", "TEMPORAL_"))}
    env.update(
        {
            "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "OMNIREACH_TASK_QUEUE": task_queue,
            "OMNIREACH_DATABASE_URL": url,
            "OMNIREACH_CADENCES_DIR": str(tmp_path / "cadences"),
            "OMNIREACH_TEMPLATES_DIR": str(tmp_path / "templates"),
            "OMNIREACH_VAR_DIR": str(tmp_path / "var"),
            "OMNIREACH_SECRET_KEY": "burst-secret",
            "TWILIO_ACCOUNT_SID": "AC" + "e" * 32,
            "TWILIO_AUTH_TOKEN": "burst-token",
            "TWILIO_FROM_NUMBER": "+14155238886",
            "OMNIREACH_TWILIO_BASE_URL": fake.url,
            "OMNIREACH_SMS_RATE": str(RATE),
        }
    )
    workers = [_start_worker(tmp_path, n, env) for n in (1, 2)]
    try:
        load = parse_cadence(CADENCE, "burst.yaml")
        check_content(load, MessageCatalog(TEMPLATES), queues=set())
        assert load.cadence is not None, [str(e) for e in load.errors]
        client: Client = dev_env.client
        handles = [
            await client.start_workflow(
                WORKFLOW_TYPE,
                EnrollmentInput(load.cadence.snapshot(), contact_id),
                id=enrollment_id("burst", contact_id) + f"-{task_queue}",
                task_queue=task_queue,
                result_type=EnrollmentResult,
            )
            for contact_id in contact_ids
        ]
        started = time.monotonic()
        for handle in handles:  # one at a time (DESIGN.md pitfalls)
            result = await handle.result(rpc_timeout=None)
            assert result.status == "completed" and result.sent == {"ping": "sms"}, result
        elapsed = time.monotonic() - started
        for worker in workers:
            assert worker.poll() is None, (tmp_path / "worker-1.log").read_text()[-3000:]
        logs = "".join((tmp_path / f"worker-{n}.log").read_text(errors="replace") for n in (1, 2))
        assert "channel=sms provider=twilio" in logs
    finally:
        for worker in workers:
            os.killpg(worker.pid, signal.SIGTERM)
        for worker in workers:
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.pid, signal.SIGKILL)
        fake.stop()
    accepted = fake.accepted("message")
    assert sorted(r.params["To"] for r in accepted) == sorted(f"+316123456{n:02d}" for n in range(SENDS))
    assert len(fake.all("message")) == SENDS  # nothing refused, nothing sent twice
    times = [r.at for r in accepted]
    ordered = sorted(times)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(ordered)]
    assert max_in_any_second(times) <= RATE, gaps
    assert elapsed >= (SENDS - RATE) / RATE * 0.9  # it really was paced, not just lucky
    both = {w for w in (1, 2) if "event=sent " in (tmp_path / f"worker-{w}.log").read_text()}
    assert both == {1, 2}, "both workers must have sent (the limit is shared, not per process)"
