"""schemathesis against the OpenAPI the API serves: no server error, no undocumented status or shape.

The app runs for real under uvicorn on 127.0.0.1 (its own thread and event loop, its own Temporal
client to the dev server, a migrated SQLite database with a little data) and schemathesis generates
requests for every operation from /openapi.json, with and without valid input. The run is bounded
(a few examples per operation) so it takes seconds.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode, checks
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from api.temporal_gateway import TemporalGateway
from content.cadences import load_library
from core.settings import Settings
from store.db import make_engine, make_session_factory, upgrade
from store.repos.contacts import upsert_contact
from tests.api.conftest import CADENCE, TEMPLATES

ADMIN = "schemathesis-admin-key-0123456789"
EXAMPLES = 15
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.response_headers_conformance,
    checks.negative_data_rejection,
    checks.ignored_auth,
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(dev_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("schemathesis")
    (root / "cadences").mkdir()
    (root / "cadences" / "api-test.yaml").write_text(CADENCE, encoding="utf-8")
    for name, text in TEMPLATES.items():
        (root / "templates" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "templates" / name).write_text(text, encoding="utf-8")
    library = load_library([root / "cadences"], root / "templates")
    url = f"sqlite:///{root / 'omnireach.db'}"
    engine = make_engine(url)
    upgrade(engine)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        upsert_contact(session, external_id="crm-000123", name="Ana", email="ana@example.com", country="ID")
    settings_ = Settings(
        database_url=url,
        admin_api_key=ADMIN,
        secret_key="test-secret",
        task_queue=f"schemathesis-{uuid.uuid4().hex[:6]}",
        var_dir=root,
        costs_file=Path(__file__).resolve().parents[2] / "costs.yaml",
    )
    target = dev_env.client.service_client.config.target_host
    port = _free_port()
    holder: dict[str, uvicorn.Server] = {}

    def serve() -> None:
        async def main() -> None:
            client = await Client.connect(target)
            app = create_app(settings_, sessions, TemporalGateway(client, settings_.task_queue), library)
            server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
            holder["server"] = server
            await server.serve()

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while "server" not in holder or not holder["server"].started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    holder["server"].should_exit = True
    thread.join(timeout=10)
    engine.dispose()


@pytest.mark.timeout(180)
def test_every_operation_answers_as_documented(served: str) -> None:
    """Positive and negative examples for every operation; all failures are collected, then reported."""
    api = schemathesis.openapi.from_url(f"{served}/openapi.json")
    auth = {"Authorization": f"Bearer {ADMIN}"}
    failures: list[str] = []
    operations = 0
    for result in api.get_all_operations():
        operation = result.ok()
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @given(case=operation.as_strategy(generation_mode=mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=list(HealthCheck),
                phases=[Phase.explicit, Phase.generate],
            )
            def run(case) -> None:
                case.call_and_validate(base_url=served, headers=auth, checks=CHECKS)

            try:
                run()
            except Unsatisfiable:
                continue  # e.g. no parameters to break: no negative examples exist
            except (Exception, BaseExceptionGroup) as exc:  # one operation's failure must not hide the others'
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {exc}")
    assert operations >= 20
    assert not failures, "\n\n".join(failures)
