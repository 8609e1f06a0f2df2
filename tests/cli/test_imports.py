"""`omnireach consents import`, `omnireach dnc import` and `omnireach explain`, run as an operator runs them."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from store.db import make_engine, make_session_factory
from store.models import ConsentRecord, Suppression
from store.permission_models import DncImport
from store.repos.contacts import upsert_contact
from store.repos.decisions import record_decision
from tests.conftest import REPO

OMNIREACH = str(Path(sys.executable).parent / "omnireach")


def run(args: list[str], folder: Path) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items() if not key.startswith(("OMNIREACH_", "TEMPORAL_"))}
    environ.update(
        OMNIREACH_CADENCES_DIR=str(REPO / "cadences"),
        OMNIREACH_TEMPLATES_DIR=str(REPO / "templates"),
        OMNIREACH_SECRET_KEY="cli-test-secret",
        COLUMNS="200",
    )
    return subprocess.run([OMNIREACH, *args], cwd=folder, env=environ, capture_output=True, text=True, timeout=120)


@pytest.fixture
def project(tmp_path: Path):
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    sessions = make_session_factory(make_engine(f"sqlite:///{tmp_path / 'var' / 'omnireach.db'}"))
    with sessions.begin() as session:
        upsert_contact(session, external_id="crm-1", name="Ana", email="ana@example.com", phone="+6281234567890")
        upsert_contact(session, external_id="crm-2", name="Budi", email="budi@example.com")
        erased, _ = upsert_contact(session, external_id="crm-gone", email="gone@example.com")
        erased.erased_at = datetime.now(UTC)
    return tmp_path, sessions


CONSENTS = """\
external_id,channel,purpose,status,occurred_at,method,source,notice_text,notice_version,ip,source_timezone
crm-1,email,marketing,granted,2025-03-01T10:00:00+07:00,web_form,https://ex.id/e,"Yes, tips",v3,203.0.113.9,Asia/Jakarta
crm-1,sms,marketing,granted,2025-03-01T10:00:00+07:00,web_form,https://example.id/ebook,"Yes, text me",v3,,
crm-2,email,marketing,granted,2025-03-02T09:00:00Z,,https://example.id/ebook,"Yes",v3,,
crm-2,fax,marketing,granted,2025-03-02T09:00:00Z,web_form,https://example.id,"Yes",v3,,
crm-9,email,marketing,granted,2025-03-02T09:00:00Z,web_form,https://example.id,"Yes",v3,,
crm-2,sms,marketing,granted,2025-03-02T09:00:00Z,web_form,https://example.id,"Yes",v3,,
crm-2,email,sales,withdrawn,2025-03-05,,,,,,
crm-2,email,sales,withdrawn,2025-03-05T08:00:00Z,,,,,,Mars/Base
crm-gone,email,marketing,granted,2025-03-02T09:00:00Z,web_form,https://example.id,"Yes",v3,,
crm-2,email,sales,withdrawn,2025-03-06T08:00:00Z,,,,,,
crm-1,email,marketing,granted,2025-03-01T10:00:00+07:00,web_form,https://ex.id/e,"Yes, send me tips
over two lines",v3,not-an-ip,
"""


def test_consents_import_keeps_good_rows_and_reports_each_bad_row_by_line_and_field(project) -> None:
    folder, sessions = project
    (folder / "consents.csv").write_text(CONSENTS, encoding="utf-8")
    result = run(["consents", "import", "consents.csv"], folder)

    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("consents.csv:")]
    assert any(e.startswith("consents.csv:4: method: is required for a grant") for e in errors), errors
    assert any(e.startswith("consents.csv:5: channel:") and "email" in e for e in errors), errors
    assert any(e.startswith("consents.csv:6: contact:") and "crm-9" in e for e in errors), errors
    assert any(e.startswith("consents.csv:7: channel: the contact has no sms address") for e in errors), errors
    assert any(e.startswith("consents.csv:8: occurred_at: must be an ISO 8601") for e in errors), errors
    assert any(e.startswith("consents.csv:9: source_timezone:") and "Mars/Base" in e for e in errors), errors
    assert any(e.startswith("consents.csv:10: contact:") and "erased" in e for e in errors), errors
    assert any(e.startswith("consents.csv:12: ip:") for e in errors), errors  # the record starting on line 12
    assert "imported 3 consent record(s)" in result.stderr and "8 row(s) refused" in result.stderr

    with sessions() as session:
        rows = session.scalars(select(ConsentRecord).order_by(ConsentRecord.id)).all()
        assert [(r.channel, r.purpose, r.status) for r in rows] == [
            ("email", "marketing", "granted"),
            ("sms", "marketing", "granted"),
            ("email", "sales", "withdrawn"),
        ]
        first = rows[0]
        assert first.ip == "203.0.113.9" and first.notice_text == "Yes, tips" and first.notice_version == "v3"
        assert first.occurred_at == datetime(2025, 3, 1, 3, 0, tzinfo=UTC) and first.address == "ana@example.com"
        assert first.evidence["line"] == 2 and first.source_timezone == "Asia/Jakarta"

    again = run(["consents", "import", "consents.csv"], folder)
    assert "imported 0 consent record(s); 3 already recorded" in again.stderr


def test_consents_import_refuses_unknown_columns_before_importing_anything(project) -> None:
    folder, _ = project
    (folder / "bad.csv").write_text("external_id,channel,purpose,status,occurred_at,notice\n", encoding="utf-8")
    result = run(["consents", "import", "bad.csv"], folder)
    assert result.returncode == 2
    assert "bad.csv:1: unknown column(s) notice" in result.stderr


def test_dnc_registry_import_with_national_numbers_and_bad_lines(project) -> None:
    folder, sessions = project
    fresh = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    (folder / "us.txt").write_text(
        "phone\n# national DNC extract\n(212) 555-0147\n+1 212 555 0148\n212-555-0147\nnot a number\n12\n",
        encoding="utf-8",
    )
    result = run(["dnc", "import", "us.txt", "--list", "us-national", "--country", "US", "--as-of", fresh], folder)
    assert result.returncode == 1, result.stderr
    assert "us.txt:6:" in result.stderr and "us.txt:7:" in result.stderr
    assert "imported 2 entries into us-national (registry US as of" in result.stderr
    assert "1 duplicate(s)" in result.stderr and "fresh for 28 more day(s)" in result.stderr
    with sessions() as session:
        values = session.scalars(select(Suppression.value).where(Suppression.list_name == "us-national")).all()
        assert sorted(values) == ["+12125550147", "+12125550148"]
        job = session.scalars(select(DncImport)).one()
        assert (job.kind, job.country, job.as_of.isoformat(), job.entries, job.refused) == (
            "registry",
            "US",
            fresh,
            2,
            2,
        )

    # A newer snapshot replaces the old one; an older one is refused.
    newer = datetime.now(UTC).date().isoformat()
    digest = hashlib.sha256(b"+12125550149").hexdigest()
    (folder / "us2.txt").write_text(digest + "\n", encoding="utf-8")
    replaced = run(
        ["dnc", "import", "us2.txt", "--list", "us-national", "--country", "US", "--as-of", newer, "--hashed"], folder
    )
    assert replaced.returncode == 0, replaced.stderr
    with sessions() as session:
        rows = session.scalars(select(Suppression).where(Suppression.list_name == "us-national")).all()
        assert [(r.value, r.value_hash) for r in rows] == [(None, digest)]
    older = run(["dnc", "import", "us.txt", "--list", "us-national", "--country", "US", "--as-of", fresh], folder)
    assert older.returncode == 2 and "older copy" in older.stderr


def test_dnc_import_warns_when_the_copy_is_already_stale_and_checks_options(project) -> None:
    folder, _ = project
    (folder / "sg.txt").write_text("+65 9123 4567\n", encoding="utf-8")
    old = (date.today() - timedelta(days=30)).isoformat()
    stale = run(["dnc", "import", "sg.txt", "--list", "sg-dnc", "--country", "SG", "--as-of", old], folder)
    assert stale.returncode == 0 and "calls to SG stay blocked" in stale.stderr
    future = (date.today() + timedelta(days=3)).isoformat()
    assert run(["dnc", "import", "sg.txt", "--list", "sg-dnc", "--country", "SG", "--as-of", future], folder).returncode
    no_country = run(["dnc", "import", "sg.txt", "--list", "sg-dnc", "--as-of", old], folder)
    assert no_country.returncode == 2 and "--country" in no_country.stderr
    company = run(["dnc", "import", "sg.txt", "--list", "complaints"], folder)
    assert company.returncode == 0 and "(list list)" in company.stderr
    bad_hash = run(["dnc", "import", "sg.txt", "--list", "hashed", "--hashed"], folder)
    assert bad_hash.returncode == 1 and "sg.txt:1: " in bad_hash.stderr and "SHA-256" in bad_hash.stderr


def test_explain_lists_every_decision_with_its_reason(project) -> None:
    folder, sessions = project
    with sessions.begin() as session:
        contact, _ = upsert_contact(
            session, external_id="crm-explain", email="eva@example.com", country="ID", timezone="Asia/Makassar"
        )
        session.flush()
        record_decision(
            session,
            contact_id=contact.id,
            decision="deferred",
            reason="outside_legal_hours",
            detail="outside the legal hours (OJK)",
            channel="email",
            step_id="invite",
            until=datetime(2026, 7, 16, 0, 0, tzinfo=UTC),
        )
        record_decision(
            session, contact_id=contact.id, decision="skipped", reason="no_consent", channel="sms", step_id="nudge"
        )
    result = run(["explain", "ext:crm-explain"], folder)
    assert result.returncode == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "deferred until 2026-07-16 08:00 WITA because of outside_legal_hours" in out
    assert "skipped because of no_consent" in out
    assert "(WITA)" in out and "no_consent" in out
    assert "eva@example.com" not in result.stdout  # masked
    missing = run(["explain", "ext:nobody"], folder)
    assert missing.returncode == 1 and "no contact" in missing.stderr


def test_contacts_import_refuses_the_phone_or_email_of_an_erased_person(project) -> None:
    from store.models import Contact
    from store.repos.data_rights import erase_contact

    folder, sessions = project
    with sessions.begin() as session:
        ana = session.scalars(select(Contact).where(Contact.external_id == "crm-1")).one()
        erase_contact(session, ana, salt="cli-test-secret", now=datetime.now(UTC), requested_by="test")
    (folder / "contacts.csv").write_text(
        "external_id,name,email,phone\n"
        "crm-new-1,Ana again,,+6281234567890\n"
        "crm-new-2,Ana by mail,ANA@example.com,\n"
        "crm-new-3,Someone else,someone@example.com,\n",
        encoding="utf-8",
    )
    result = run(["contacts", "import", "contacts.csv"], folder)
    assert result.returncode == 1, result.stdout + result.stderr
    text = " ".join((result.stdout + result.stderr).split())
    assert "contacts.csv:2" in text and "contacts.csv:3" in text and "erased at their request" in text
    with sessions() as session:
        names = session.scalars(select(Contact.external_id).where(Contact.external_id.like("crm-new-%"))).all()
    assert names == ["crm-new-3"]
