"""POST /v1/enrollments:bulk against the real Temporal dev server with a worker running.

10,000 JSONL rows, 2% of them bad: every good row is enrolled exactly once (one workflow execution per
contact, counted in Temporal itself), each bad row is reported by its line, and a rerun starts nothing.
The cadence begins with a long wait, so the worker records each enrollment and then sleeps.

Time: the dev server on 2 cores accepts about 80 workflow starts/s whatever the client's concurrency
(measured with a bare temporalio client: 79/s at 16 in flight, 80/s at 64); this path runs at the same
rate, so the 9,800 real starts take about two minutes. That is Temporal's ceiling here, not ours.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.temporal_gateway import TemporalGateway
from channels.console import ConsoleChannel
from content.cadences import load_library
from core.settings import Settings
from store.db import make_engine, make_session_factory, upgrade
from store.models import Contact
from store.repos.contacts import upsert_contact
from store.types import utcnow
from tests.api.conftest import ADMIN_KEY, problem_of
from worker import build_activities, build_worker

pytestmark = pytest.mark.timeout(300)
CADENCE = """\
id: bulk-wait
name: Bulk test cadence
purpose: marketing
steps:
  - wait: 30d
  - id: hello
    send: email
    message: hello
"""
OTHER = CADENCE.replace("id: bulk-wait", "id: bulk-other").replace("Bulk test", "Other test")
TEMPLATES = {
    "hello/email.subject.j2": "Hello {{ contact.name }}",
    "hello/email.txt.j2": "Hi.\n{{ sender.name }}, {{ sender.address }}\nUnsubscribe: {{ unsubscribe_url }}\n",
}
ROWS, BAD_EVERY = 10_000, 50  # every 50th row is bad: 200 bad rows, 2%


@dataclass
class Bulk:
    http: httpx.AsyncClient
    client: Client
    sessions: sessionmaker[Session]
    task_queue: str
    run: str


@pytest.fixture(scope="module")
async def bulk(dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bulk]:
    root = tmp_path_factory.mktemp("bulk")
    (root / "cadences").mkdir()
    (root / "cadences" / "bulk-wait.yaml").write_text(CADENCE, encoding="utf-8")
    (root / "cadences" / "bulk-other.yaml").write_text(OTHER, encoding="utf-8")
    for name, text in TEMPLATES.items():
        (root / "templates" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "templates" / name).write_text(text, encoding="utf-8")
    library = load_library([root / "cadences"], root / "templates")
    assert not library.errors, [str(e) for e in library.errors]
    engine = make_engine(f"sqlite:///{root / 'omnireach.db'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    settings = Settings(
        database_url=f"sqlite:///{root / 'omnireach.db'}",
        admin_api_key=ADMIN_KEY,
        task_queue=f"bulk-{uuid.uuid4().hex[:8]}",
        secret_key="test-secret",
        var_dir=root,
    )
    console = ConsoleChannel(root / "console.jsonl", out=io.StringIO())
    assert library.catalog is not None
    activities = build_activities(settings, sessions, library.catalog, channels={"email": console})
    app = create_app(settings, sessions, TemporalGateway(dev_env.client, settings.task_queue), library)
    async with build_worker(dev_env.client, settings, activities):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test", timeout=300) as http:
            yield Bulk(http, dev_env.client, sessions, settings.task_queue, uuid.uuid4().hex[:6])
    engine.dispose()


def make_contacts(sessions: sessionmaker[Session], run: str, count: int) -> list[str]:
    """``count`` contacts inserted in one statement (the import path is tested elsewhere)."""
    now = utcnow()
    rows = [
        {"id": str(uuid.uuid4()), "external_id": f"{run}-{i}", "attributes": {}, "created_at": now, "updated_at": now}
        for i in range(count)
    ]
    with sessions.begin() as session:
        session.execute(insert(Contact), rows)
    return [r["external_id"] for r in rows]


def jsonl(external_ids: list[str]) -> tuple[bytes, dict[int, str], set[str]]:
    """The upload, the bad lines with the field each must be reported on, and the good external ids."""
    lines, bad, good = [], {}, set()
    kinds = ["json", "unknown", "cadence", "missing", "extra"]
    for i, external in enumerate(external_ids, start=1):
        if i % BAD_EVERY:
            lines.append(json.dumps({"contact_id": f"ext:{external}"}))
            good.add(external)
            continue
        kind = kinds[(i // BAD_EVERY) % len(kinds)]
        lines.append(
            {
                "json": '{"contact_id": "ext:' + external + '"',
                "unknown": json.dumps({"contact_id": f"ext:nobody-{external}"}),
                "cadence": json.dumps({"external_id": external, "cadence_id": "no-such-cadence"}),
                "missing": json.dumps({"cadence_id": "bulk-wait"}),
                "extra": json.dumps({"contact_id": f"ext:{external}", "colour": "blue"}),
            }[kind]
        )
        bad[i] = {"json": "line", "unknown": "contact_id", "cadence": "cadence_id", "missing": "contact_id"}.get(
            kind, "colour"
        )
    return ("\n".join(lines) + "\n").encode(), bad, good


async def count_runs(client: Client, task_queue: str, expected: int, timeout: float = 60) -> int:
    """Executions of contact-cadence on this task queue, as Temporal's visibility counts them."""
    query = f"WorkflowType = 'contact-cadence' AND TaskQueue = '{task_queue}'"
    deadline = time.monotonic() + timeout
    while True:
        count = (await client.count_workflows(query)).count
        if count >= expected or time.monotonic() > deadline:
            return count
        await asyncio.sleep(0.5)


async def post(bulk: Bulk, body: bytes, media: str = "application/x-ndjson", query: str = "?cadence_id=bulk-wait"):
    return await bulk.http.post(
        f"/v1/enrollments:bulk{query}",
        content=body,
        headers={"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": media},
    )


async def test_ten_thousand_rows_two_percent_bad_each_good_row_enrolled_once_and_rerun_starts_nothing(
    bulk: Bulk, capsys: pytest.CaptureFixture[str]
) -> None:
    externals = make_contacts(bulk.sessions, bulk.run, ROWS)
    body, bad, good = jsonl(externals)
    assert len(bad) == ROWS * 2 // 100 and len(good) == ROWS - len(bad)

    started_at = time.perf_counter()
    response = await post(bulk, body)
    first_seconds = time.perf_counter() - started_at
    assert response.status_code == 200, response.text
    first = response.json()
    assert first["rows"] == ROWS
    assert first["started"] == len(good), first | {"errors": first["errors"][:5]}
    assert first["already_running"] == first["already_enrolled"] == first["duplicates"] == 0
    assert first["failed"] == len(bad) and not first["errors_truncated"]
    reported = {e["line"]: e["field"] for e in first["errors"]}
    assert reported == bad  # every bad row, by its line, naming the field at fault

    runs = await count_runs(bulk.client, bulk.task_queue, len(good))
    assert runs == len(good)  # one execution per good row: nobody twice, nobody missing

    started_at = time.perf_counter()
    again = (await post(bulk, body)).json()
    rerun_seconds = time.perf_counter() - started_at
    assert again["started"] == 0
    assert again["already_running"] + again["already_enrolled"] == len(good)
    assert {e["line"]: e["field"] for e in again["errors"]} == bad
    assert await count_runs(bulk.client, bulk.task_queue, len(good) + 1, timeout=2) == len(good)
    with capsys.disabled():
        print(
            f"\nbulk: {ROWS} rows, first run {first_seconds:.1f}s ({len(good) / first_seconds:.0f} starts/s), "
            f"rerun {rerun_seconds:.1f}s"
        )


async def test_csv_duplicates_and_erased_contacts(bulk: Bulk) -> None:
    externals = make_contacts(bulk.sessions, f"{bulk.run}-csv", 3)
    with bulk.sessions.begin() as session:
        upsert_contact(session, external_id=externals[2], erased_at=utcnow())
    body = (
        "external_id,cadence_id\n"
        f"{externals[0]},bulk-other\n"
        f"{externals[1]},\n"
        f"{externals[0]},bulk-other\n"  # the same enrollment again: counted as a duplicate, started once
        f"{externals[2]},\n"
        '"unclosed,\n'
    ).encode()
    result = (await post(bulk, body, "text/csv; charset=utf-8")).json()
    assert (result["rows"], result["started"], result["duplicates"], result["failed"]) == (5, 2, 1, 2)
    assert [(e["line"], e["field"]) for e in result["errors"]] == [(5, "contact_id"), (6, "line")]
    assert "erased" in result["errors"][0]["message"]


async def test_bad_uploads_are_refused_whole(bulk: Bulk) -> None:
    problem_of(await post(bulk, b'{"contact_id": "x"}\n', "application/json"), 415)
    problem_of(await post(bulk, b"name\nAna\n", "text/csv"), 422)  # no contact column
    body = problem_of(await post(bulk, b"{}\n", query="?cadence_id=nope"), 422)
    assert body["errors"][0]["field"] == "cadence_id"
    response = await bulk.http.post(
        "/v1/enrollments:bulk",
        content=b"{}\n",
        headers={"Content-Type": "application/x-ndjson", "Authorization": "Bearer wrong"},
    )
    problem_of(response, 401)
