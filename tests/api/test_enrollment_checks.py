"""The contact checks of concurrent enrollments, made together in one transaction (POST /v1/enrollments groups
them): each gets the answer it would get alone, in its own place, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from api.problems import ProblemError
from api.routes.enrollments import _check_contacts, _ContactCheck
from store.repos import upsert_contact
from store.repos.data_rights import erase_contact
from tests.store.conftest import migrated_database

SALT = "test-secret-key"
DATABASE_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _answer(outcome: str | ProblemError) -> tuple[int, str]:
    return (outcome.status, outcome.detail) if isinstance(outcome, ProblemError) else (201, outcome)


@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_each_check_in_a_group_answers_as_if_alone(kind: str, tmp_path) -> None:
    tag = uuid.uuid4().hex[:8]
    with migrated_database(kind, tmp_path) as db:
        with db.session_factory.begin() as session:
            ana, _ = upsert_contact(session, external_id=f"ana-{tag}", name="Ana", phone="+447911123456")
            budi, _ = upsert_contact(session, external_id=f"budi-{tag}", name="Budi", email=f"budi.{tag}@example.com")
            erased, _ = upsert_contact(session, external_id=f"eka-{tag}", name="Eka", phone="+447911654321")
            twin, _ = upsert_contact(session, external_id=f"eka2-{tag}", name="Eka again", phone="+447911654321")
            session.flush()
            erase_contact(session, erased, salt=SALT, now=datetime.now(UTC), requested_by="test")
            ids = {"ana": ana.id, "budi": budi.id, "erased": erased.id, "twin": twin.id}

        refs = [
            ids["ana"],
            f"ext:budi-{tag}",
            str(uuid.uuid4()),  # nobody's id
            ids["erased"],
            "ext:nobody",
            ids["twin"],  # an older record of the erased person's phone
            f"ext:ana-{tag}",  # Ana again, by her external id
        ]
        with db.session_factory.begin() as session:
            together = [_answer(o) for o in _check_contacts(session, [_ContactCheck(r, SALT) for r in refs])]
        alone = []
        for ref in refs:
            with db.session_factory.begin() as session:
                [outcome] = _check_contacts(session, [_ContactCheck(ref, SALT)])
                alone.append(_answer(outcome))

    assert together == alone
    assert [status for status, _ in together] == [201, 201, 404, 409, 404, 409, 201]
    assert together[0] == together[6] == (201, ids["ana"]) and together[1] == (201, ids["budi"])
    assert "no such contact" in together[2][1] and "ext:<external_id>" in together[2][1]
    assert "this contact was erased on" in together[3][1]
    assert "an external id must exist" in together[4][1]
    assert together[5][1].startswith(f"contact_id {ids['twin']!r}: the phone belongs to a person erased")
