"""A contact's timeline: what was sent (with its body), what they did, what was decided, consent changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from store.repos import (
    append_consent,
    claim_outbox,
    contact_timeline,
    mark_outbox_failed,
    mark_outbox_sent,
    record_decision,
    record_event,
)

T = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)


def test_timeline_merges_and_orders_everything(db, contact_id) -> None:
    with db.session_factory() as s:
        # Written out of order on purpose.
        record_event(
            s, contact_id=contact_id, name="email.opened", step_id="invite", occurred_at=T + timedelta(hours=3)
        )
        append_consent(
            s,
            contact_id=contact_id,
            channel="email",
            purpose="marketing",
            status="granted",
            method="web_form",
            occurred_at=T,
        )
        record_decision(
            s,
            contact_id=contact_id,
            decision="sent",
            channel="email",
            step_id="invite",
            decided_at=T + timedelta(hours=1),
        )
        key = f"cadence:c:{contact_id}/invite/1"
        claim_outbox(
            s,
            message_key=key,
            contact_id=contact_id,
            channel="email",
            to_address="siti@example.com",
            subject="Undangan webinar",
            body="Halo Siti, ...",
        )
        mark_outbox_sent(s, key, "console", "c-1", sent_at=T + timedelta(hours=1, seconds=1))
        failed_key = f"cadence:c:{contact_id}/reminder/1"
        claim_outbox(s, message_key=failed_key, contact_id=contact_id, channel="sms", to_address="+628123")
        mark_outbox_failed(s, failed_key, "21211 invalid number")
        record_decision(
            s,
            contact_id=contact_id,
            decision="failed",
            reason="invalid_number",
            channel="sms",
            step_id="reminder",
            decided_at=T + timedelta(hours=4),
        )
        append_consent(
            s,
            contact_id=contact_id,
            channel="email",
            purpose="marketing",
            status="withdrawn",
            method="unsubscribe_link",
            occurred_at=T + timedelta(hours=5),
        )
        s.commit()

        items = contact_timeline(s, contact_id)
    assert [(i.kind, i.at) for i in items] == [
        ("consent", T),
        ("decision", T + timedelta(hours=1)),
        ("message", T + timedelta(hours=1, seconds=1)),
        ("event", T + timedelta(hours=3)),
        ("decision", T + timedelta(hours=4)),
        ("consent", T + timedelta(hours=5)),
    ]
    message = items[2]
    assert message.detail["body"] == "Halo Siti, ..." and message.detail["to"] == "siti@example.com"
    assert "Undangan webinar" in message.summary
    assert items[0].summary == "email/marketing consent granted via web_form"
    assert items[4].summary == "failed sms reminder (invalid_number)"
    assert items[5].detail["status"] == "withdrawn"
    assert all(i.at.tzinfo == UTC for i in items)
