"""A claim reads its task with every fact of the call check in one statement; on PostgreSQL that includes the
phone's suppression, hashed in SQL (store.repos.dnc.phone_blocking). Whatever the statement matched, the
verdict must be the one the check reaches when it looks the suppression up itself (store.repos.dnc
.find_blocking): for plain numbers, salted erasure hashes, unsalted registry digests, every purpose and salts
of any length."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import update

from activities.permission_check import UNREAD, Reachability, check_permission
from core.jurisdiction import permissive_policy
from store.models import Contact
from store.repos.claims import candidate_for
from store.repos.dnc import plain_hash
from store.repos.suppressions import add_suppression, hash_address
from tests.store.conftest import MigratedDatabase, open_call_task

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SALTS = ["s", "a salt of exactly sixty-four bytes, the block size of SHA-256!!!", "ключ " * 20]

# (suppression kind, scope, stored as): what a number can be listed as.
LISTINGS = [
    None,
    ("company_dnc", "phone", "value"),
    ("global", "all", "value"),
    ("erasure", "phone", "salted"),
    ("registry", "phone", "digest"),
    ("registry", "phone", "value"),
    ("company_dnc", "email", "value"),  # another channel's list: does not block a call
]


def _number() -> str:
    return f"+4474{uuid.uuid4().int % 10**8:08d}"


def _listed(session, phone: str, listing, salt: str) -> None:
    if listing is None:
        return
    kind, scope, stored = listing
    value = phone if stored == "value" else None
    value_hash = {"salted": hash_address(phone, salt), "digest": plain_hash(phone)}.get(stored)
    extra = {"list_name": "uk-tps", "country": "GB", "as_of": date(2026, 11, 1)} if kind == "registry" else {}
    add_suppression(session, kind=kind, channel_scope=scope, value=value, value_hash=value_hash, **extra)


def _task_for(session, phone: str, purpose: str):
    return open_call_task(session, phone=phone, purpose=purpose, created_at=NOW)


def _verdicts(session, task, salt: str):
    """The verdict from the candidate's own facts, the one with the check's look-up, and the candidate."""
    candidate = candidate_for(session, task, salt=salt)
    ask = Reachability("voice", task.purpose)
    policy = permissive_policy()
    common = {"salt": salt, "policy": policy, "consent_status": "granted"}
    read = candidate.suppression if candidate.suppression_read else UNREAD
    with_facts = check_permission(session, candidate.callee, ask, NOW, suppression=read, **common)
    looked_up = check_permission(session, candidate.callee, ask, NOW, **common)
    return with_facts, looked_up, candidate


@pytest.mark.parametrize("salt", SALTS, ids=["short", "64-bytes", "long-unicode"])
def test_the_suppression_read_with_the_task_decides_as_the_look_up_does(db: MigratedDatabase, salt: str) -> None:
    cases = 0
    with db.session_factory.begin() as session:
        for listing in LISTINGS:
            for purpose in ("service", "marketing"):
                phone = _number()
                _listed(session, phone, listing, salt)
                task = _task_for(session, phone, purpose)
                with_facts, looked_up, candidate = _verdicts(session, task, salt)
                # PostgreSQL matches in the statement; SQLite has no SHA-256 and leaves it to the check.
                assert candidate.suppression_read is (db.kind == "postgres")
                assert with_facts == looked_up, (listing, purpose)
                blocks = listing is not None and listing[1] != "email"
                blocks = blocks and (listing[0] != "registry" or purpose == "marketing")
                assert (with_facts.outcome == "skip") is blocks, (listing, purpose, with_facts)
                cases += 1
    assert cases == len(LISTINGS) * 2


def test_a_number_not_stored_normalised_is_looked_up_by_the_check(db: MigratedDatabase) -> None:
    """The statement compares the number as stored; one with stray spaces (older data) is left to the check,
    which normalises first, so the listing still blocks."""
    salt = SALTS[0]
    with db.session_factory.begin() as session:
        phone = _number()
        _listed(session, phone, ("erasure", "phone", "salted"), salt)
        task = _task_for(session, phone, "service")
        session.execute(update(Contact).where(Contact.id == task.contact_id).values(phone=f" {phone} "))
        with_facts, looked_up, candidate = _verdicts(session, task, salt)
        assert candidate.suppression_read is False
        assert with_facts == looked_up and with_facts.outcome == "skip" and "erasure" in with_facts.detail
