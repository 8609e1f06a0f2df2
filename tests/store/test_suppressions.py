"""Suppressions match plain addresses and the salted hashes erasure leaves behind, per channel scope."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import insert
from sqlalchemy.exc import IntegrityError

from store.models import Suppression
from store.repos import add_suppression, find_suppression, find_suppressions, hash_address
from store.repos.dnc import find_blocking
from store.repos.suppressions import suppress_once, suppress_whatsapp_block

SALT = "test-salt"


def _phone() -> str:
    return "+6281" + str(uuid.uuid4().int)[:9]


def _email() -> str:
    return f"{uuid.uuid4().hex[:10]}@example.com"


def test_hash_is_salted_and_normalised() -> None:
    assert hash_address("Siti@Example.COM ", SALT) == hash_address("siti@example.com", SALT)
    assert hash_address("whatsapp:+628123", SALT) == hash_address("+628123", SALT)
    assert hash_address("siti@example.com", SALT) != hash_address("siti@example.com", "other-salt")
    assert len(hash_address("+628123", SALT)) == 64
    with pytest.raises(ValueError):
        hash_address("+628123", "")


def test_erased_address_found_by_hash_only(db) -> None:
    phone, email = _phone(), _email()
    with db.session_factory() as s:
        add_suppression(s, kind="erasure", channel_scope="phone", value_hash=hash_address(phone, SALT))
        add_suppression(s, kind="erasure", channel_scope="email", value_hash=hash_address(email, SALT))
        s.commit()
        for channel in ("sms", "whatsapp", "voice"):
            assert find_suppression(s, channel=channel, address=phone, salt=SALT).kind == "erasure"
        assert find_suppression(s, channel="whatsapp", address=f"whatsapp:{phone}", salt=SALT) is not None
        assert find_suppression(s, channel="email", address=email.upper(), salt=SALT).kind == "erasure"
        # A hash made with another salt does not match; neither does the phone hash on email.
        assert find_suppression(s, channel="sms", address=phone, salt="other-salt") is None
        assert find_suppression(s, channel="email", address=phone, salt=SALT) is None


def test_plain_value_and_channel_scope(db) -> None:
    phone, email, both = _phone(), _email(), _phone()
    with db.session_factory() as s:
        row = add_suppression(s, kind="company_dnc", channel_scope="phone", value=phone, reason="do_not_call")
        add_suppression(s, kind="global", channel_scope="email", value=email.upper())
        add_suppression(s, kind="list", list_name="complaints", channel_scope="all", value=both)
        s.commit()
        assert find_suppression(s, channel="voice", address=phone, salt=SALT).id == row.id
        assert find_suppression(s, channel="sms", address=phone, salt=SALT).reason == "do_not_call"
        assert find_suppression(s, channel="email", address=phone, salt=SALT) is None
        assert find_suppression(s, channel="email", address=email, salt=SALT).kind == "global"
        assert find_suppression(s, channel="sms", address=email, salt=SALT) is None
        assert find_suppression(s, channel="whatsapp", address=both, salt=SALT).list_name == "complaints"
        assert find_suppression(s, channel="sms", address=_phone(), salt=SALT) is None


def test_non_registry_entries_come_before_registry_entries(db) -> None:
    """A caller that ignores a stale registry entry must still see the global one."""
    phone = _phone()
    with db.session_factory() as s:
        add_suppression(
            s,
            kind="registry",
            list_name="US-DNC",
            country="us",
            channel_scope="phone",
            value=phone,
            as_of=date(2025, 1, 1),
        )
        add_suppression(
            s,
            kind="registry",
            list_name="US-DNC",
            country="US",
            channel_scope="phone",
            value=phone,
            as_of=date(2026, 1, 1),
        )
        add_suppression(s, kind="global", channel_scope="all", value=phone)
        s.commit()
        found = find_suppressions(s, channel="voice", address=phone, salt=SALT)
        assert [(f.kind, f.as_of) for f in found] == [
            ("global", None),
            ("registry", date(2026, 1, 1)),
            ("registry", date(2025, 1, 1)),
        ]
        assert found[1].country == "US"
        assert find_suppression(s, channel="voice", address=phone, salt=SALT).kind == "global"


def test_bad_suppressions_refused(session) -> None:
    with pytest.raises(ValueError):
        add_suppression(session, kind="global", channel_scope="phone")
    with pytest.raises(ValueError, match="channel_scope"):
        add_suppression(session, kind="global", channel_scope="fax", value="+1555")
    with pytest.raises(ValueError, match="channel"):
        find_suppression(session, channel="fax", address="+1555", salt=SALT)


def test_a_whatsapp_suppression_binds_whatsapp_only_and_is_added_once(db) -> None:
    """Twilio 63014 (the person blocked us on WhatsApp): the number is suppressed there, not for SMS or calls."""
    phone = _phone()
    with db.session_factory() as s:
        first = suppress_whatsapp_block(s, f"whatsapp:{phone}", source="twilio error 63014, message SM1")
        again = suppress_whatsapp_block(s, phone, source="twilio error 63014, message SM2")
        s.commit()
        assert again.id == first.id and first.value == phone
        assert find_suppression(s, channel="whatsapp", address=phone, salt=SALT).id == first.id
        for channel in ("sms", "voice", "email"):
            assert find_suppression(s, channel=channel, address=phone, salt=SALT) is None
        # The look-up the send-time and claim-time checks share: a call to the number is not blocked.
        assert find_blocking(s, channel="voice", address=phone, salt=SALT) is None
        assert find_blocking(s, channel="whatsapp", address=phone, salt=SALT).channel_scope == "whatsapp"


def test_the_database_refuses_what_the_constraints_forbid_after_the_scope_migration(db) -> None:
    """Migration 0010 rebuilt the suppressions table on SQLite to widen one CHECK constraint: the others must
    have come along, and an unknown scope must still be refused by the database itself."""
    rows = [
        {"kind": "global", "channel_scope": "fax", "value": "+15550100"},
        {"kind": "bogus", "channel_scope": "phone", "value": "+15550100"},
        {"kind": "global", "channel_scope": "phone", "value": None, "value_hash": None},
    ]
    for row in rows:
        with db.session_factory() as s, pytest.raises(IntegrityError):
            s.execute(insert(Suppression), [{**row, "created_at": datetime.now(UTC)}])
            s.flush()
    with db.session_factory() as s:
        s.execute(insert(Suppression), [{"kind": "global", "channel_scope": "whatsapp", "value": _phone()}])
        s.rollback()


def test_a_listed_suppression_is_added_once_per_list(session) -> None:
    phone = _phone()

    def listed(list_name: str, reason: str) -> Suppression:
        return suppress_once(
            session, kind="list", list_name=list_name, channel_scope="phone", value=phone, reason=reason
        )

    first, again, other = listed("inbound-stop", "a"), listed("inbound-stop", "b"), listed("trade-show", "c")
    assert again.id == first.id and first.list_name == "inbound-stop"
    assert other.id != first.id and other.list_name == "trade-show"
