"""`omnireach contacts import`, `omnireach enroll --file` and `omnireach report`, run as a user runs them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from sqlalchemy import func, select
from temporalio.testing import WorkflowEnvironment

from store.db import make_engine, make_session_factory
from store.models import Contact
from store.repos.webhooks import record_business_event
from tests.cli.test_commands import run

CSV = """external_id,name,email,phone,country,timezone,attributes.plan
crm-1,Ana,ana@example.com,0812 3456 7890,ID,Asia/Jakarta,pro
crm-2,Budi,budi@example,+628111,ID,Asia/Jakarta,
crm-3,Citra,,,,Mars/Base,
,Dewi,dewi@example.com,,,,
crm-5,Eka,eka@example.com,,,,basic
"""


def db(folder: Path):
    return make_session_factory(make_engine(f"sqlite:///{folder / 'var' / 'omnireach.db'}"))


def test_contacts_import_reports_bad_rows_by_line_keeps_good_ones_and_reruns_safely(tmp_path: Path) -> None:
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    (tmp_path / "contacts.csv").write_text(CSV, encoding="utf-8")
    first = run(["contacts", "import", "contacts.csv"], tmp_path)
    assert first.returncode == 1, first.stderr  # some rows failed; the good ones are in
    lines = first.stdout.splitlines()
    assert any(line.startswith("contacts.csv:3: email:") for line in lines), lines
    assert any(line.startswith("contacts.csv:4: timezone:") and "Mars/Base" in line for line in lines), lines
    assert any(line.startswith("contacts.csv:5: external_id:") for line in lines), lines
    assert not any(line.startswith(("contacts.csv:2:", "contacts.csv:6:")) for line in lines)
    with db(tmp_path)() as session:
        ana = session.scalars(select(Contact).where(Contact.external_id == "crm-1")).one()
        assert (ana.phone, ana.attributes) == ("+6281234567890", {"plan": "pro"})  # national number read with ID
        assert session.scalar(select(func.count()).select_from(Contact)) == 2

    again = run(["contacts", "import", "contacts.csv"], tmp_path)
    assert again.returncode == 1 and "created" in again.stderr
    with db(tmp_path)() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 2  # nobody twice
    assert run(["contacts", "import", "contacts.txt"], tmp_path).returncode == 2  # no such file


async def test_enroll_from_a_file_then_report(dev_env: WorkflowEnvironment, tmp_path: Path) -> None:
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    rows = "\n".join(json.dumps({"external_id": f"crm-{i}", "name": f"P{i}"}) for i in range(20))
    (tmp_path / "people.jsonl").write_text(rows + "\n", encoding="utf-8")
    assert run(["contacts", "import", "people.jsonl"], tmp_path).returncode == 0
    enroll = "external_id\n" + "".join(f"crm-{i}\n" for i in range(20)) + "crm-404\n"
    (tmp_path / "enroll.csv").write_text(enroll, encoding="utf-8")
    env = {
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "OMNIREACH_TASK_QUEUE": f"cli-{uuid.uuid4().hex[:6]}",
    }
    first = run(["enroll", "webinar-nurture", "--file", "enroll.csv"], tmp_path, **env)
    assert first.returncode == 1, first.stderr
    assert first.stdout.strip() == "enroll.csv:22: contact_id: 'ext:crm-404': no such contact; import it first"
    assert "started" in first.stderr and "20" in first.stderr
    again = run(["enroll", "webinar-nurture", "--file", "enroll.csv"], tmp_path, **env)
    assert "already running" in again.stderr
    count = await dev_env.client.count_workflows(f"TaskQueue = '{env['OMNIREACH_TASK_QUEUE']}'")
    assert count.count == 20

    with db(tmp_path).begin() as session:
        record_business_event(session, kind="mql.created", key="x", cadence_id="webinar-nurture", contact_id="none")
    report = run(["report", "--json"], tmp_path)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["funnel"] == []  # the workflows never ran: nothing recorded yet
    tables = run(["report"], tmp_path)
    assert tables.returncode == 0 and "nothing to report" in tables.stderr
