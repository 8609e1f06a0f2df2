"""The agent console in a real browser (Debian's Chromium, driven by Playwright) on the whole stack: the real
Temporal dev server, a worker, the API served over HTTP, SQLite. An engaged contact is escalated; an agent
signs in, takes the next task, sees what the contact was sent and the script, records `qualified`; the
telesales queue then holds the contact. Screenshots are kept under tests/artifacts/."""

from __future__ import annotations

import asyncio
import io
import socket
import uuid
from pathlib import Path

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.temporal_gateway import TemporalGateway
from channels.console import ConsoleChannel
from content.cadences import load_library
from core.model import Window
from core.queues import QueueBook, QueueSpec
from core.settings import Settings
from store.db import make_engine, make_session_factory, upgrade
from store.models import OutboxMessage
from store.repos.api_keys import create_api_key
from store.repos.tasks import upsert_agent, upsert_queue
from store.task_models import CallTask
from worker import build_activities, build_worker

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ADMIN_KEY = "admin-e2e-key-0123456789"
CADENCE = """\
id: console-demo
name: Tax webinar nurture
purpose: marketing
locale: en
facts:
  title: Restaurant Tax 101
  offer: Free 30-minute consultation
score:
  webinar.attended: 10
escalate:
  when: "score >= 10"
  queue: telemarketing
  script: qualify
  sla: 24h
handoff:
  when: "disposition in ['qualified', 'appointment_set']"
  queue: telesales
  script: closing
  sla: 4h
steps:
  - id: invite
    send: email
    message: invite
  - wait: 2d
  - id: last
    send: email
    message: invite
"""
TEMPLATES = {
    "invite/email.subject.j2": "{{ facts.title }}: your seat is waiting, {{ contact.first_name }}",
    "invite/email.txt.j2": "Join {{ facts.title }} and get a {{ facts.offer | lower }}.\n"
    "{{ sender.name }}, {{ sender.address }}\nUnsubscribe: {{ unsubscribe_url }}",
    "scripts/qualify.md.j2": "# Qualify {{ contact.first_name }}\n\nThey were invited to **{{ facts.title }}**.\n\n"
    "Offer: {{ facts.offer }}.",
    "scripts/closing.md.j2": "# Close {{ contact.first_name }}\n\n{{ facts.offer }}",
}
ALWAYS = Window(hours="00:00-24:00")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _eventually(check, timeout: float = 30.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.2)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "cadences").mkdir()
    (tmp_path / "cadences" / "console-demo.yaml").write_text(CADENCE, encoding="utf-8")
    for name, text in TEMPLATES.items():
        path = tmp_path / "templates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


async def test_an_agent_qualifies_a_contact_in_the_console_and_telesales_gets_it(
    dev_env: WorkflowEnvironment, project: Path
) -> None:
    if not CHROMIUM.exists():
        pytest.fail("Chromium missing: apt-get install -y chromium (.ci/run does it)", pytrace=False)
    from playwright.async_api import async_playwright, expect

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    library = load_library([project / "cadences"], project / "templates")
    assert not library.errors, [str(e) for e in library.errors]
    url = f"sqlite:///{project / 'var' / 'omnireach.db'}"
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    port = _free_port()
    settings = Settings(
        database_url=url,
        admin_api_key=ADMIN_KEY,
        task_queue=f"e2e-console-{uuid.uuid4().hex[:8]}",
        secret_key="e2e-secret",
        var_dir=project / "var",
        public_url=f"http://127.0.0.1:{port}",
        sender_name="Pajak Pintar",
    )
    queues = QueueBook(
        queues={
            "telemarketing": QueueSpec(calling_hours=ALWAYS),
            "telesales": QueueSpec(sla="4h", calling_hours=ALWAYS),
        }
    )
    with sessions.begin() as session:
        for name, spec in queues.queues.items():
            upsert_queue(
                session, name, calling_hours=spec.calling_hours.model_dump(mode="json"), sla_seconds=spec.sla_seconds
            )
        upsert_agent(session, "ani", name="Ani Wulandari", queues=["telemarketing"])
        upsert_agent(session, "sari", name="Sari", queues=["telesales"])
        _, ani_key = create_api_key(session, "agent ani", ["agent"], agent_id="ani")
        _, sari_key = create_api_key(session, "agent sari", ["agent"], agent_id="sari")
    console = ConsoleChannel(project / "var" / "console-outbox.jsonl", out=io.StringIO())
    activities = build_activities(
        settings,
        sessions,
        library.catalog,
        channels=dict.fromkeys(("email", "sms", "whatsapp", "voice"), console),
        queues=queues,
    )
    app = create_app(settings, sessions, TemporalGateway(dev_env.client, settings.task_queue), library)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    base = f"http://127.0.0.1:{port}"
    async with build_worker(dev_env.client, settings, activities):
        serving = asyncio.create_task(server.serve())
        try:
            await _eventually(lambda: server.started, timeout=10)
            async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as http:
                contact_id = await _engaged_contact(http)
                await _eventually(lambda: _sent(sessions, contact_id))  # the invite went out first
                event = {"contact_id": contact_id, "name": "webinar.attended", "idempotency_key": uuid.uuid4().hex}
                assert (await http.post("/v1/events", json=event)).status_code == 201
            task = await _eventually(lambda: _tasks(sessions, contact_id, "telemarketing"))

            async with async_playwright() as p:
                browser = await p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
                page = await browser.new_page(viewport={"width": 1366, "height": 900})
                await page.goto(f"{base}/console")
                await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
                await page.fill("#api_key", "or_not-a-real-key")
                await page.click("button[type=submit]")
                await expect(page.get_by_role("alert")).to_contain_text("unknown or revoked")
                await page.fill("#api_key", ani_key)
                await page.click("button[type=submit]")
                await expect(page.locator(".count[data-queue=telemarketing] b")).to_have_text("1")
                await page.screenshot(path=str(ARTIFACTS / "console-1-queues.png"), full_page=True)

                await page.click("#next-task")
                await expect(page).to_have_url(f"{base}/console/tasks/{task[0].id}")
                await expect(page.locator("#contact-name")).to_have_text("Dewi Lestari")
                await expect(page.locator("#messages")).to_contain_text(
                    "Restaurant Tax 101: your seat is waiting, Dewi"
                )
                await expect(page.locator("#messages")).to_contain_text("free 30-minute consultation")
                await expect(page.locator("#script h1")).to_have_text("Qualify Dewi")
                await expect(page.locator("#script")).to_contain_text("Offer: Free 30-minute consultation.")
                await expect(page.locator("#score")).to_have_text("10")
                await expect(page.locator("#consent")).to_contain_text("granted")
                await page.screenshot(path=str(ARTIFACTS / "console-2-task.png"), full_page=True)

                await page.select_option("#disposition", "callback")
                await expect(page.locator("#callback_at")).to_be_visible()  # the picker shows for callbacks only
                await page.select_option("#disposition", "qualified")
                await expect(page.locator("#callback_at")).to_be_hidden()
                await page.fill("#note", "Owns 3 restaurants; wants the consultation next week")
                await page.click("#record")
                await expect(page.get_by_role("status")).to_contain_text("Recorded 'qualified'")
                await page.screenshot(path=str(ARTIFACTS / "console-3-recorded.png"), full_page=True)
                await browser.close()

            handoff = await _eventually(lambda: _tasks(sessions, contact_id, "telesales"))
            assert (handoff[0].kind, handoff[0].status, handoff[0].script) == ("handoff", "open", "closing")
            async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {sari_key}"}) as http:
                listed = (await http.get("/v1/tasks", params={"queue": "telesales"})).json()
            assert [t["contact_id"] for t in listed] == [contact_id]
            with sessions() as session:
                first = session.get(CallTask, task[0].id)
                assert (first.status, first.claimed_by) == ("disposed", "ani")
            enrollment = dev_env.client.get_workflow_handle(f"cadence:console-demo:{contact_id}")
            await enrollment.signal("stop", {"reason": "test over"})
            await asyncio.wait_for(enrollment.result(), timeout=30)
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, timeout=10)
    engine.dispose()


async def _engaged_contact(http: httpx.AsyncClient) -> str:
    """A contact with email and voice consent, enrolled, sent the invite, then engaged (score 10)."""
    created = await http.post(
        "/v1/contacts",
        json={
            "external_id": f"crm-{uuid.uuid4().hex[:10]}",
            "name": "Dewi Lestari",
            "email": "dewi@example.com",
            "phone": "+4915112345678",
            "country": "DE",
            "timezone": "Europe/Berlin",
            "locale": "en",
        },
    )
    assert created.status_code == 201, created.text
    contact_id = created.json()["id"]
    for channel in ("email", "voice"):
        granted = await http.post(
            f"/v1/contacts/{contact_id}/consents",
            json={
                "channel": channel,
                "purpose": "marketing",
                "status": "granted",
                "method": "web_form",
                "source": "https://example.com/ebook",
                "notice_text": "You may email and call me about the tax webinar.",
            },
        )
        assert granted.status_code == 201, granted.text
    enrolled = await http.post("/v1/enrollments", json={"contact_id": contact_id, "cadence_id": "console-demo"})
    assert enrolled.status_code == 201, enrolled.text
    return contact_id


def _sent(sessions, contact_id: str) -> list[OutboxMessage]:
    with sessions() as session:
        rows = session.scalars(
            select(OutboxMessage).where(OutboxMessage.contact_id == contact_id, OutboxMessage.status == "sent")
        ).all()
        session.expunge_all()
    return list(rows)


def _tasks(sessions, contact_id: str, queue: str) -> list[CallTask]:
    with sessions() as session:
        rows = session.scalars(select(CallTask).where(CallTask.contact_id == contact_id, CallTask.queue == queue)).all()
        session.expunge_all()
    return list(rows)
