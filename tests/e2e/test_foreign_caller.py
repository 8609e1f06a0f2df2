"""A foreign caller drives an enrollment through Temporal alone (docs/temporal-contract.md).

The caller below uses only ``temporalio.client.Client`` with plain JSON values: no omnireach import,
exactly what a Go, Java or TypeScript service would send. Our worker runs the other side.
"""

from __future__ import annotations

import asyncio
import io
import json
import uuid
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from channels.console import ConsoleChannel
from content.cadences import load_library
from core.settings import Settings
from store.db import make_engine, make_session_factory, upgrade
from store.models import Enrollment
from store.repos.contacts import upsert_contact
from worker import build_activities, build_worker

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]
CADENCE = """\
id: foreign-test
name: Foreign caller test
purpose: marketing
score:
  webinar.attended: 10
exit_on: [purchased]
steps:
  - wait: 30d
  - id: hello
    send: email
    message: hello
"""
TEMPLATES = {
    "hello/email.subject.j2": "Hello",
    "hello/email.txt.j2": "Hi.\n{{ sender.address }}\n{{ unsubscribe_url }}\n",
}


async def foreign_caller(target: str, task_queue: str, snapshot: dict, contact_id: str) -> None:
    """What another system does: signal-with-start, then signals and a query, by name, with JSON."""
    client = await Client.connect(target, namespace="default")
    workflow_id = f"cadence:{snapshot['id']}:{contact_id}"
    first = await client.start_workflow(
        "contact-cadence",
        {"cadence": snapshot, "contact_id": contact_id},
        id=workflow_id,
        task_queue=task_queue,
        start_signal="event",
        start_signal_args=[{"name": "webinar.attended", "event_id": "webinar-42/attendee-7"}],
    )
    # The same call again (a retry, or the next event): the running enrollment gets the signal, no new run.
    again = await client.start_workflow(
        "contact-cadence",
        {"cadence": snapshot, "contact_id": contact_id},
        id=workflow_id,
        task_queue=task_queue,
        start_signal="event",
        start_signal_args=[{"name": "webinar.attended", "event_id": "webinar-42/attendee-7"}],
    )
    assert again.result_run_id == first.result_run_id
    state = await _state_when(client, workflow_id, lambda s: s["score"] == 10)
    assert state["status"] == "running" and state["cadence_id"] == snapshot["id"]
    assert state["waiting"] is not None  # in the 30 day wait

    handle = client.get_workflow_handle(workflow_id)
    await handle.signal("event", {"name": "purchased", "event_id": "order-991"})
    result = await handle.result()
    assert result["status"] == "exited" and result["reason"] == "exit_on:purchased"
    assert result["score"] == 10  # the repeated event id counted once


async def _state_when(client: Client, workflow_id: str, ok, timeout: float = 20) -> dict:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        state = await client.get_workflow_handle(workflow_id).query("state")
        if ok(state) or asyncio.get_running_loop().time() > deadline:
            return state
        await asyncio.sleep(0.2)


async def test_foreign_caller_signal_with_start_with_the_temporal_client_alone(
    dev_env: WorkflowEnvironment, tmp_path: Path
) -> None:
    (tmp_path / "cadences").mkdir()
    (tmp_path / "cadences" / "foreign-test.yaml").write_text(CADENCE, encoding="utf-8")
    for name, text in TEMPLATES.items():
        (tmp_path / "templates" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "templates" / name).write_text(text, encoding="utf-8")
    library = load_library([tmp_path / "cadences"], tmp_path / "templates")
    assert not library.errors and library.catalog is not None
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        contact, _ = upsert_contact(session, external_id=f"crm-{uuid.uuid4().hex[:8]}", name="Rina")
        contact_id = contact.id
    settings = Settings(secret_key="s", var_dir=tmp_path, task_queue=f"foreign-{uuid.uuid4().hex[:8]}")
    console = ConsoleChannel(tmp_path / "console.jsonl", out=io.StringIO())
    activities = build_activities(settings, sessions, library.catalog, channels={"email": console})
    # The snapshot as GET /v1/cadences/{id} serves it: plain JSON.
    snapshot = json.loads(json.dumps(library.cadences["foreign-test"].snapshot()))

    async with build_worker(dev_env.client, settings, activities):
        target = dev_env.client.service_client.config.target_host
        await foreign_caller(target, settings.task_queue, snapshot, contact_id)

    with sessions() as session:
        row = session.get(Enrollment, f"cadence:foreign-test:{contact_id}")
        assert row is not None and row.status == "exited" and row.end_reason == "exit_on:purchased"
    engine.dispose()
