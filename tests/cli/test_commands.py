"""The operator commands as a user runs them: exit codes, output, and what they change."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from store.db import make_engine, make_session_factory
from store.repos.api_keys import verify_api_key
from store.repos.contacts import upsert_contact
from tests.conftest import REPO

OMNIREACH = str(Path(sys.executable).parent / "omnireach")


def run(args: list[str], folder: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("OMNIREACH_", "TEMPORAL_"))}
    environ.update(OMNIREACH_CADENCES_DIR=str(REPO / "cadences"), OMNIREACH_TEMPLATES_DIR=str(REPO / "templates"))
    environ.update(env)
    return subprocess.run([OMNIREACH, *args], cwd=folder, env=environ, capture_output=True, text=True, timeout=120)


def test_db_upgrade_then_apikey_create_and_revoke(tmp_path):
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    created = run(["apikey", "create", "crm-sync", "--scope", "developer"], tmp_path)
    assert created.returncode == 0, created.stderr
    plaintext = created.stdout.strip()
    sessions = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'var' / 'omnireach.db'}"))
    with sessions() as session:
        key = verify_api_key(session, plaintext)
        assert key is not None and key.scopes == ["developer"]
        prefix = key.prefix
    assert plaintext not in (tmp_path / "var" / "omnireach.db").read_bytes().decode("latin-1")  # hashed at rest

    revoked = run(["apikey", "revoke", prefix], tmp_path)
    assert revoked.returncode == 0, revoked.stderr
    with sessions() as session:
        assert verify_api_key(session, plaintext) is None
    assert run(["apikey", "revoke", prefix], tmp_path).returncode == 1  # nothing left to revoke


def test_apikey_create_refuses_an_unknown_scope(tmp_path):
    result = run(["apikey", "create", "x", "--scope", "root"], tmp_path)
    assert result.returncode == 2
    assert "unknown scope root" in result.stderr


def test_bad_setting_is_named(tmp_path):
    result = run(["db", "upgrade"], tmp_path, OMNIREACH_PUBLIC_URL="example.com")
    assert result.returncode == 2
    assert "OMNIREACH_PUBLIC_URL" in result.stderr


@pytest.mark.e2e
async def test_enroll_exits_with_the_right_code_after_using_temporal(tmp_path, dev_env):
    address = dev_env.client.service_client.config.target_host
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    sessions = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'var' / 'omnireach.db'}"))
    with sessions.begin() as session:
        contact, _ = upsert_contact(session, external_id="cli-1", name="Rina", email="rina@example.id")
        contact_id = contact.id

    ok = run(
        ["enroll", "demo-welcome", "ext:cli-1"],
        tmp_path,
        TEMPORAL_ADDRESS=address,
        OMNIREACH_TASK_QUEUE="cli-test-no-worker",
    )
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"cadence:demo-welcome:{contact_id}\t")
    again = run(
        ["enroll", "demo-welcome", "ext:cli-1"],
        tmp_path,
        TEMPORAL_ADDRESS=address,
        OMNIREACH_TASK_QUEUE="cli-test-no-worker",
    )
    assert again.returncode == 0 and again.stdout.split("\t")[1] == ok.stdout.split("\t")[1]  # same run: idempotent

    missing = run(["enroll", "demo-welcome", "ext:nobody"], tmp_path, TEMPORAL_ADDRESS=address)
    assert missing.returncode == 1 and "not found" in missing.stderr
    unknown = run(["enroll", "no-such-cadence", "ext:cli-1"], tmp_path, TEMPORAL_ADDRESS=address)
    assert unknown.returncode == 1 and "no-such-cadence" in unknown.stderr
    await dev_env.client.get_workflow_handle(f"cadence:demo-welcome:{contact_id}").terminate("test over")
