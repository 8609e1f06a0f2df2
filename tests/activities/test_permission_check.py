"""The shared permission check: which country's rules, which zone, which registry, which count."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from activities.permission_check import Reachability, check_permission, count_contacts
from core.jurisdiction import default_policy
from store.db import make_engine, make_session_factory, upgrade
from store.repos import dnc as dnc_repo
from store.repos.consent import append_consent
from store.repos.contacts import upsert_contact
from store.repos.outbox import claim_outbox, mark_outbox_sent

SALT = "check-secret"


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory):
    folder: Path = tmp_path_factory.mktemp("check")
    engine = make_engine(f"sqlite:///{folder / 'omnireach.db'}")
    upgrade(engine)
    return make_session_factory(engine)


def contact(sessions, **fields):
    with sessions.begin() as session:
        row, _ = upsert_contact(session, external_id=uuid.uuid4().hex, **fields)
        session.flush()
        for channel in ("sms", "voice", "email"):
            append_consent(
                session,
                contact_id=row.id,
                channel=channel,
                purpose="marketing",
                status="granted",
                occurred_at=datetime(2020, 1, 1, tzinfo=UTC),
            )
        return row.id


def verdict(sessions, contact_id: str, channel: str, now: datetime, **ask):
    from store.models import Contact

    with sessions() as session:
        row = session.get(Contact, contact_id)
        return check_permission(
            session, row, Reachability(channel, "marketing", **ask), now, salt=SALT, policy=default_policy()
        )


def test_indonesian_region_decides_the_legal_hours_zone(sessions) -> None:
    bali = contact(sessions, phone="+6281234567891", country="ID", attributes={"region": "Bali"})
    java = contact(sessions, phone="+6281234567892", country="ID", attributes={"province": "Jawa Barat"})
    unknown = contact(sessions, phone="+6281234567893", country="ID")
    at = datetime(2026, 7, 15, 10, 30, tzinfo=UTC)  # 17:30 WIB, 18:30 WITA
    assert verdict(sessions, java, "sms", at).allowed
    late = verdict(sessions, bali, "sms", at)
    assert late.reason == "outside_legal_hours" and "+08:00" in late.detail
    assert verdict(sessions, unknown, "sms", at).reason == "no_timezone"


def test_registry_follows_the_phone_number_country(sessions) -> None:
    now = datetime(2026, 7, 15, 15, 0, tzinfo=UTC)  # 11:00 in New York
    traveller = contact(sessions, phone="+12125550123", country="ID", timezone="America/New_York")
    missing = verdict(sessions, traveller, "voice", now)
    assert (missing.outcome, missing.reason) == ("defer", "registry_missing")
    assert verdict(sessions, traveller, "sms", now).allowed  # the US registry rule covers calls only
    with sessions.begin() as session:
        dnc_repo.start_import(
            session, list_name="us-dnc", country="US", as_of=date(2026, 6, 1), hashed=False, source_name="t"
        )
    assert verdict(sessions, traveller, "voice", now).reason == "registry_stale"
    with sessions.begin() as session:
        dnc_repo.start_import(
            session, list_name="us-dnc", country="US", as_of=date(2026, 7, 10), hashed=False, source_name="t"
        )
    assert verdict(sessions, traveller, "voice", now).allowed


def test_caps_count_every_send_to_the_contact(sessions) -> None:
    contact_id = contact(sessions, email="cap@example.com", country="SG", timezone="Asia/Singapore")
    now = datetime(2026, 7, 15, 4, 0, tzinfo=UTC)
    with sessions.begin() as session:
        for i in range(2):
            key = f"cap/{contact_id}/{i}"
            claim_outbox(session, message_key=key, contact_id=contact_id, channel="email", to_address="x@example.com")
            mark_outbox_sent(
                session, key, provider="console", provider_message_id=key, sent_at=now - timedelta(hours=i)
            )
    with sessions() as session:
        assert count_contacts(session, contact_id, now - timedelta(days=1), now + timedelta(seconds=1)) == 2
    capped = verdict(sessions, contact_id, "email", now, per_day=2)
    assert capped.reason == "cap_per_day"
    assert verdict(sessions, contact_id, "email", now, per_day=3).allowed
