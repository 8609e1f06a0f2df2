"""`omnireach up` on a fresh folder: the whole stack starts, the demo's messages go out, the HTTP API
enrolls a new contact end to end, and Ctrl-C stops everything cleanly."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Output:
    """Collects a process's output in a thread so the test can wait for lines without blocking."""

    def __init__(self, stream):
        self.text = ""
        self._lock = threading.Lock()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in iter(stream.readline, ""):
            with self._lock:
                self.text += line

    def wait_for(self, pattern: str, timeout: float, count: int = 1) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                found = re.findall(pattern, self.text)
            if len(found) >= count:
                return found
            time.sleep(0.2)
        raise AssertionError(f"no {count}x {pattern!r} within {timeout}s; output so far:\n{self.text[-4000:]}")


@pytest.fixture
def stack(tmp_path: Path):
    api_port, temporal_port, ui_port = free_port(), free_port(), free_port()
    env = {
        **os.environ,
        "OMNIREACH_CADENCES_DIR": str(REPO / "cadences"),
        "OMNIREACH_TEMPLATES_DIR": str(REPO / "templates"),
        "OMNIREACH_TASK_QUEUE": "e2e-up",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("TEMPORAL_ADDRESS", "OMNIREACH_DATABASE_URL", "OMNIREACH_ADMIN_API_KEY"):
        env.pop(name, None)
    command = [
        str(Path(sys.executable).parent / "omnireach"),
        "up",
        "--api-port",
        str(api_port),
        "--temporal-port",
        str(temporal_port),
        "--ui-port",
        str(ui_port),
    ]
    process = subprocess.Popen(
        command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
    )
    output = Output(process.stdout)
    try:
        yield process, output, f"http://127.0.0.1:{api_port}", temporal_port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def test_up_runs_the_demo_serves_the_api_and_stops_cleanly(stack, tmp_path):
    process, output, base, temporal_port = stack
    output.wait_for(r"omnireach is up", timeout=90)
    [admin_key] = output.wait_for(r"admin API key\s+(\S+)", timeout=5)

    # The demo: both contacts get the welcome email and the WhatsApp/SMS nudge within a minute.
    output.wait_for(r"\[console email\]", timeout=60, count=2)
    output.wait_for(r"\[console (?:whatsapp|sms)\]", timeout=60, count=2)
    assert "siti@example.id" not in output.text and "+6281234567890" not in output.text  # masked in output

    # The demo's console agent can work the queues with the key `up` printed.
    [agent_key] = output.wait_for(r"console agent key\s+(\S+)", timeout=10)
    tasks = httpx.get(f"{base}/v1/tasks", headers={"Authorization": f"Bearer {agent_key}"}, timeout=30)
    assert tasks.status_code == 200, tasks.text

    # The API, end to end: create a contact, record consent, enroll, see the message, end it with an event.
    headers = {"Authorization": f"Bearer {admin_key}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as api:
        contact = api.post(
            "/v1/contacts",
            json={
                "external_id": "e2e-1",
                "name": "Budi Santoso",
                "email": "budi@example.id",
                "phone": "0812 3456 7891",
                "whatsapp": "+62 812-3456-7891",
                "country": "ID",
                "timezone": "Asia/Jakarta",
                "locale": "id",
            },
        )
        assert contact.status_code == 201, contact.text
        contact_id = contact.json()["id"]
        assert contact.json()["phone"] == "+6281234567891"
        for channel in ("email", "sms", "whatsapp"):
            consent = api.post(
                f"/v1/contacts/{contact_id}/consents",
                json={
                    "channel": channel,
                    "purpose": "service",
                    "status": "granted",
                    "method": "web_form",
                    "source": "https://example.id/daftar",
                    "notice_text": "Saya setuju dihubungi.",
                    "notice_version": "2026-11",
                    "lawful_basis": "consent",
                    "ip": "203.0.113.7",
                },
            )
            assert consent.status_code == 201, consent.text
        enrolled = api.post("/v1/enrollments", json={"contact_id": contact_id, "cadence_id": "demo-welcome"})
        assert enrolled.status_code == 201, enrolled.text
        assert enrolled.json()["id"] == f"cadence:demo-welcome:{contact_id}"

        timeline = _wait_for_timeline(api, contact_id, lambda items: any(i["kind"] == "message" for i in items))
        message = next(i for i in timeline if i["kind"] == "message")
        assert "Budi" in str(message), message

        event = api.post(
            "/v1/events",
            json={
                "contact_id": contact_id,
                "name": "email.unsubscribed",
                "step_id": "welcome",
                "idempotency_key": "e2e-unsub-1",
            },
        )
        assert event.status_code == 201, event.text
        enrollment = f"cadence:demo-welcome:{contact_id}"
        _wait_for_timeline(
            api, contact_id, lambda items: any(i["kind"] == "event" and "unsubscribed" in i["summary"] for i in items)
        )
        assert _enrollment_status(tmp_path, enrollment, want="exited") == "exited"

    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0, output.text[-3000:]
    output.wait_for(r"stopped\.", timeout=5)
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", temporal_port)) != 0  # the dev server is gone too


def _wait_for_timeline(api: httpx.Client, contact_id: str, ready, timeout: float = 45) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.get(f"/v1/contacts/{contact_id}/timeline")
        assert response.status_code == 200, response.text
        body = response.json()
        items = body["items"] if isinstance(body, dict) else body
        if ready(items):
            return items
        time.sleep(0.5)
    raise AssertionError(f"timeline never became ready: {items}")


def _enrollment_status(folder: Path, enrollment_id: str, want: str, timeout: float = 30) -> str | None:
    import sqlite3

    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        with sqlite3.connect(folder / "var" / "omnireach.db") as db:
            row = db.execute("SELECT status FROM enrollments WHERE id = ?", (enrollment_id,)).fetchone()
        status = row[0] if row else None
        if status == want:
            return status
        time.sleep(0.5)
    return status
