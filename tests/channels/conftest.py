"""Channel test fixtures: Prism serving the vendors' own OpenAPI specs, our fake provider, a real SMTP server.

Prism comes from npm (package.json, `make node_modules`); it is started by its own binary so the process we
stop is the one we started. The specs live in the shared folder beside the repository (``../shared``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from tests.e2e.fake_provider import FakeProvider

REPO = Path(__file__).resolve().parents[2]
PRISM = REPO / "node_modules" / ".bin" / "prism"
ACCOUNT_SID = "AC" + "a" * 32
AUTH_TOKEN = "fake-auth-token"


def vendor_specs() -> Path:
    """../shared/vendor-specs relative to the repository root (CI and developer machines alike)."""
    path = Path(os.environ.get("OMNIREACH_VENDOR_SPECS", REPO.parent / "shared" / "vendor-specs"))
    if not path.is_dir():
        pytest.fail(f"vendor specs not found at {path}: the shared folder belongs beside the repository", pytrace=False)
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, process: subprocess.Popen, log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"prism exited with {process.returncode}:\n{log.read_text()[-2000:]}", pytrace=False)
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"prism did not open port {port} within {seconds}s:\n{log.read_text()[-2000:]}", pytrace=False)


@dataclass
class PrismServer:
    url: str
    log: Path
    process: subprocess.Popen = field(repr=False)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


def _start_prism(spec: str, tmp: Path) -> PrismServer:
    if not PRISM.exists():
        pytest.fail("Prism is not installed: run `make node_modules` (npm ci) at the repository root", pytrace=False)
    port = free_port()
    log = tmp / f"prism-{spec}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(PRISM), "mock", str(vendor_specs() / spec), "-h", "127.0.0.1", "-p", str(port), "-v", "warn"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
    _wait_for_port(port, process, log)
    return PrismServer(f"http://127.0.0.1:{port}", log, process)


def _stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture(scope="session")
def prism_twilio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismServer]:
    server = _start_prism("twilio_api_v2010.json", tmp_path_factory.mktemp("prism"))
    try:
        yield server
    finally:
        _stop(server.process)


@pytest.fixture(scope="session")
def prism_sendgrid(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrismServer]:
    server = _start_prism("tsg_mail_v3.json", tmp_path_factory.mktemp("prism"))
    try:
        yield server
    finally:
        _stop(server.process)


@pytest.fixture(scope="session")
def fake_provider_server() -> Iterator[FakeProvider]:
    fake = FakeProvider(auth_token=AUTH_TOKEN).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def fake_provider(fake_provider_server: FakeProvider) -> FakeProvider:
    """The session's fake provider, emptied for this test."""
    fake_provider_server.reset()
    fake_provider_server.callbacks = False
    return fake_provider_server


class Inbox:
    """An aiosmtpd handler that keeps every message; ``refuse`` makes RCPT TO answer 550 for an address."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.refuse: set[str] = set()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such user here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 Message accepted for delivery"


@dataclass
class SmtpServer:
    url: str
    inbox: Inbox


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd) on loopback."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(f"smtp+plain://127.0.0.1:{port}", inbox)
    finally:
        controller.stop()
