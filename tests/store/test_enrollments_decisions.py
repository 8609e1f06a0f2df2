"""Enrollments (idempotent start, first end wins) and send decisions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from store.repos import (
    decisions_for_contact,
    enrollment_id,
    get_enrollment,
    mark_enrollment_ended,
    record_decision,
    record_enrollment_started,
    running_enrollments_for_contact,
)


def test_enrollment_start_is_idempotent_and_first_end_wins(db, contact_id) -> None:
    wid = enrollment_id("webinar-nurture", contact_id)
    assert wid == f"cadence:webinar-nurture:{contact_id}"
    with db.session_factory() as s:
        row, created = record_enrollment_started(s, wid, "webinar-nurture", contact_id, "h1")
        s.commit()
        assert created and row.status == "running"
        again, created = record_enrollment_started(s, wid, "webinar-nurture", contact_id, "h2")
        assert not created and again.cadence_snapshot_hash == "h1"
        other, _ = record_enrollment_started(s, enrollment_id("onboarding", contact_id), "onboarding", contact_id, "h3")
        s.commit()
        assert [e.id for e in running_enrollments_for_contact(s, contact_id)] == [wid, other.id]

        ended = mark_enrollment_ended(s, wid, "exited", "replied")
        assert (ended.status, ended.end_reason) == ("exited", "replied")
        assert ended.ended_at.tzinfo == UTC
        assert mark_enrollment_ended(s, wid, "stopped", "operator").end_reason == "replied"
        assert mark_enrollment_ended(s, "cadence:x:nobody", "stopped") is None
        with pytest.raises(ValueError):
            mark_enrollment_ended(s, other.id, "running")
        s.commit()
        assert [e.id for e in running_enrollments_for_contact(s, contact_id)] == [other.id]

        reopened, created = record_enrollment_started(s, wid, "webinar-nurture", contact_id, "h4", reopen=True)
        assert not created
        assert (reopened.status, reopened.ended_at, reopened.cadence_snapshot_hash) == ("running", None, "h4")
        s.commit()
        assert get_enrollment(s, wid).status == "running"


def test_decisions_are_kept_in_order_with_reasons(db, contact_id) -> None:
    t = datetime(2026, 2, 2, 8, tzinfo=UTC)
    with db.session_factory() as s:
        record_decision(
            s,
            contact_id=contact_id,
            decision="sent",
            channel="email",
            step_id="invite",
            decided_at=t + timedelta(days=1),
        )
        record_decision(
            s,
            contact_id=contact_id,
            decision="deferred",
            reason="outside_window",
            channel="email",
            step_id="invite",
            detail="Sunday in Asia/Jakarta",
            decided_at=t,
            until=t + timedelta(days=1),
        )
        s.commit()
        found = decisions_for_contact(s, contact_id)
        assert [(d.decision, d.reason) for d in found] == [("deferred", "outside_window"), ("sent", None)]
        assert found[0].until == t + timedelta(days=1)
        with pytest.raises(ValueError, match="decision"):
            record_decision(s, contact_id=contact_id, decision="maybe")
