"""POST /webhooks/twilio/inbound and /status: signed, deduplicated, and acting on what the person said."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from activities.permission_check import Reachability, check_permission
from core.settings import Settings
from store.models import Contact, Enrollment, Event, OutboxMessage
from store.permission_models import InboundMessage, WebhookReceipt
from store.repos.outbox import claim_outbox, mark_outbox_sent
from store.repos.suppressions import find_suppressions
from tests.api.conftest import Api, eventually, problem_of
from tests.api.webhook_helpers import (
    consent_in_force,
    consent_rows,
    contact_row,
    counts,
    grant,
    inbound,
    phone,
    sid,
    twilio_post,
    webhook_settings,
    write_project,
)

INBOUND = "/webhooks/twilio/inbound"
STATUS = "/webhooks/twilio/status"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("twilio"))


@pytest.fixture(scope="module")
def settings(project: Path) -> Settings:
    return webhook_settings(project)


async def sms_contact(api: Api, *, purposes=("marketing", "sales"), **fields) -> tuple[str, str]:
    number = phone()
    contact = await api.new_contact(phone=number, whatsapp=number, **fields)
    for purpose in purposes:
        await grant(api, contact["id"], "sms", purpose)
        await grant(api, contact["id"], "whatsapp", purpose)
    return contact["id"], number


def current(api: Api, contact_id: str, channel: str) -> dict[str, str]:
    return consent_in_force(api, contact_id, channel)


async def test_stop_withdraws_that_channel_for_every_purpose_with_the_message_as_evidence(api: Api) -> None:
    contact_id, number = await sms_contact(api)
    params = inbound(number, "  Stop! ")
    response = await twilio_post(api, INBOUND, params)

    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/xml")
    assert response.text.count("<Message>") == 1 and "unsubscribed" in response.text and "Acme Tax" in response.text
    assert current(api, contact_id, "sms") == {"marketing": "withdrawn", "sales": "withdrawn", "service": "withdrawn"}
    assert current(api, contact_id, "whatsapp") == {"marketing": "granted", "sales": "granted"}
    withdrawal = consent_rows(api, contact_id, "sms")[-1]
    assert withdrawal.method == "keyword" and params["MessageSid"] in (withdrawal.source or "")
    assert withdrawal.evidence["body"] == "  Stop! " and withdrawal.evidence["keyword"] == "stop"
    assert withdrawal.address == number
    assert contact_row(api, contact_id).last_inbound_at is not None


async def test_the_same_message_twice_has_one_effect_and_one_confirmation(api: Api) -> None:
    contact_id, number = await sms_contact(api)
    params = inbound(number, "STOP")
    first = await twilio_post(api, INBOUND, params)
    before = counts(api)
    second = await twilio_post(api, INBOUND, params)

    assert first.status_code == second.status_code == 200
    assert "<Message>" in first.text and "<Message>" not in second.text  # at most one confirmation
    assert counts(api) == before
    assert len([r for r in consent_rows(api, contact_id, "sms") if r.status == "withdrawn"]) == 3


@pytest.mark.parametrize(
    "tamper",
    ["body", "token", "missing", "url"],
)
async def test_bad_signatures_are_refused_with_403_and_nothing_stored(api: Api, tamper: str) -> None:
    contact_id, number = await sms_contact(api)
    params = inbound(number, "STOP")
    before = counts(api)
    if tamper == "body":
        from twilio.request_validator import RequestValidator

        from tests.api.webhook_helpers import PUBLIC_URL, TWILIO_TOKEN

        signature = RequestValidator(TWILIO_TOKEN).compute_signature(PUBLIC_URL + INBOUND, {**params, "Body": "hi"})
        response = await twilio_post(api, INBOUND, params, signature=signature)
    elif tamper == "token":
        response = await twilio_post(api, INBOUND, params, token="someone-elses-token")
    elif tamper == "missing":
        response = await twilio_post(api, INBOUND, params, signature="")
    else:
        from twilio.request_validator import RequestValidator

        from tests.api.webhook_helpers import TWILIO_TOKEN

        signature = RequestValidator(TWILIO_TOKEN).compute_signature("http://api.test" + INBOUND, params)
        response = await twilio_post(api, INBOUND, params, signature=signature)  # not the public URL

    body = problem_of(response, 403)
    assert "refused" in body["detail"]
    assert counts(api) == before
    assert current(api, contact_id, "sms") == {"marketing": "granted", "sales": "granted"}
    assert contact_row(api, contact_id).last_inbound_at is None


async def test_start_regrants_what_stop_withdrew_and_yes_only_when_opted_out(api: Api) -> None:
    contact_id, number = await sms_contact(api, purposes=("marketing",))
    assert (await twilio_post(api, INBOUND, inbound(number, "STOP"))).status_code == 200
    response = await twilio_post(api, INBOUND, inbound(number, "start"))
    assert "subscribed again" in response.text
    assert current(api, contact_id, "sms") == {"marketing": "granted", "sales": "withdrawn", "service": "withdrawn"}
    regrant = consent_rows(api, contact_id, "sms")[-1]
    assert (regrant.status, regrant.method, regrant.lawful_basis) == ("granted", "keyword", "consent")
    assert regrant.evidence["body"] == "start" and "subscribed again" in (regrant.notice_text or "")

    # Subscribed now: a bare "Yes" is a reply, not a consent change.
    rows = len(consent_rows(api, contact_id))
    yes = await twilio_post(api, INBOUND, inbound(number, "Yes"))
    assert "<Message>" not in yes.text and len(consent_rows(api, contact_id)) == rows
    await twilio_post(api, INBOUND, inbound(number, "unsubscribe"))
    yes_again = await twilio_post(api, INBOUND, inbound(number, "YES"))
    assert "subscribed again" in yes_again.text
    assert current(api, contact_id, "sms")["marketing"] == "granted"


async def test_help_answers_with_the_help_text_and_changes_nothing(api: Api) -> None:
    contact_id, number = await sms_contact(api)
    rows = len(consent_rows(api, contact_id))
    response = await twilio_post(api, INBOUND, inbound(number, "help"))
    assert "Acme Tax" in response.text and "rates may apply" in response.text and "STOP" in response.text
    assert len(consent_rows(api, contact_id)) == rows
    with api.sessions() as session:
        row = session.scalars(select(InboundMessage).where(InboundMessage.from_address == number)).one()
        assert (row.intent, row.keyword) == ("help", "help") and "Acme Tax" in (row.reply or "")


async def test_indonesian_opt_out_free_text_and_berhenti(api: Api) -> None:
    contact_id, number = await sms_contact(api, country="ID", timezone="Asia/Jakarta", locale="id")
    response = await twilio_post(api, INBOUND, inbound(number, "Jangan hubungi saya lagi ya"))
    assert "berhenti berlangganan" in response.text
    assert set(current(api, contact_id, "sms").values()) == {"withdrawn"}
    assert consent_rows(api, contact_id, "sms")[-1].method == "free_text_opt_out"

    other_id, other = await sms_contact(api)
    await twilio_post(api, INBOUND, inbound(other, "BERHENTI."))
    assert set(current(api, other_id, "sms").values()) == {"withdrawn"}


async def test_whatsapp_stop_withdraws_whatsapp_only(api: Api) -> None:
    contact_id, number = await sms_contact(api)
    response = await twilio_post(api, INBOUND, inbound(f"whatsapp:{number}", "STOP", to="whatsapp:+15005550006"))
    assert response.status_code == 200
    assert set(current(api, contact_id, "whatsapp").values()) == {"withdrawn"}
    assert current(api, contact_id, "sms") == {"marketing": "granted", "sales": "granted"}


async def test_a_reply_is_signalled_to_running_enrollments_and_opens_the_whatsapp_window(api: Api) -> None:
    contact_id, number = await sms_contact(api)
    started = await api.post("/v1/enrollments", {"contact_id": contact_id, "cadence_id": "sms-nurture"})
    assert started.status_code == 201, started.text
    workflow_id = started.json()["id"]

    def sent():
        with api.sessions() as session:
            return session.scalars(select(OutboxMessage).where(OutboxMessage.contact_id == contact_id)).first()

    await eventually(sent)
    await eventually(lambda: _enrollment_status(api, workflow_id) == "running")
    response = await twilio_post(api, INBOUND, inbound(number, "Sounds good, what time exactly?"))
    assert response.status_code == 200 and "<Message>" not in response.text

    result = await api.temporal.get_workflow_handle(workflow_id).result()
    assert (result["status"], result["reason"]) == ("exited", "exit_on:sms.replied")
    with api.sessions() as session:
        event = session.scalars(select(Event).where(Event.contact_id == contact_id, Event.name == "sms.replied")).one()
        assert event.step_id == "hello" and event.enrollment_id == workflow_id
    assert contact_row(api, contact_id).last_inbound_at is not None
    assert set(current(api, contact_id, "sms").values()) == {"granted"}


def _enrollment_status(api: Api, workflow_id: str) -> str | None:
    with api.sessions() as session:
        row = session.get(Enrollment, workflow_id)
        return row.status if row else None


async def test_stop_from_an_unknown_number_blocks_a_later_contact_with_it(api: Api) -> None:
    number = phone()
    response = await twilio_post(api, INBOUND, inbound(number, "STOP"))
    assert response.status_code == 200 and "unsubscribed" in response.text
    contact_id, _ = await _contact_with(api, number)
    with api.sessions() as session:
        contact = session.get(Contact, contact_id)
        verdict = check_permission(session, contact, Reachability("sms", "marketing"), _now(), salt="test-secret")
    assert (verdict.outcome, verdict.reason) == ("skip", "suppressed")

    await twilio_post(api, INBOUND, inbound(number, "START"))  # they changed their mind
    with api.sessions() as session:
        contact = session.get(Contact, contact_id)
        verdict = check_permission(session, contact, Reachability("sms", "marketing"), _now(), salt="test-secret")
    assert verdict.allowed, verdict


async def _contact_with(api: Api, number: str) -> tuple[str, str]:
    contact = await api.new_contact(phone=number)
    await grant(api, contact["id"], "sms")
    return contact["id"], number


def _now():
    from datetime import UTC, datetime

    return datetime.now(UTC)


async def test_malformed_but_signed_requests_are_422(api: Api) -> None:
    params = inbound(phone(), "hi")
    del params["MessageSid"]
    problem_of(await twilio_post(api, INBOUND, params), 422)
    problem_of(await twilio_post(api, INBOUND, inbound("whatsapp:not-a-number", "hi")), 422)


# ---- status callbacks -----------------------------------------------------------------------------------
def _sent_message(api: Api, contact_id: str, number: str, channel: str = "sms") -> tuple[str, str]:
    message_sid = sid()
    key = f"test/{message_sid}"
    with api.sessions.begin() as session:
        claim_outbox(
            session,
            message_key=key,
            contact_id=contact_id,
            channel=channel,
            purpose="marketing",
            to_address=number,
            body="hello",
        )
        mark_outbox_sent(session, key, provider="twilio", provider_message_id=message_sid)
    return key, message_sid


def _status_of(api: Api, key: str) -> str:
    with api.sessions() as session:
        return session.scalars(select(OutboxMessage.status).where(OutboxMessage.message_key == key)).one()


async def test_status_never_moves_backwards_and_repeats_count_once(api: Api) -> None:
    contact_id, number = await sms_contact(api)
    key, message_sid = _sent_message(api, contact_id, number)
    delivered = {"MessageSid": message_sid, "MessageStatus": "delivered", "To": number}
    assert (await twilio_post(api, STATUS, delivered)).status_code == 204
    late_sent = {"MessageSid": message_sid, "MessageStatus": "sent", "To": number}
    assert (await twilio_post(api, STATUS, late_sent)).status_code == 204
    assert _status_of(api, key) == "delivered"
    assert (await twilio_post(api, STATUS, delivered)).status_code == 204
    with api.sessions() as session:
        events = session.scalars(select(Event).where(Event.message_key == key)).all()
        assert [e.name for e in events] == ["sms.delivered"]


async def test_status_21610_withdraws_consent_and_21211_marks_the_number_unusable(api: Api) -> None:
    contact_id, number = await sms_contact(api)
    _, message_sid = _sent_message(api, contact_id, number)
    params = {"MessageSid": message_sid, "MessageStatus": "failed", "ErrorCode": "21610", "To": number}
    assert (await twilio_post(api, STATUS, params)).status_code == 204
    assert set(current(api, contact_id, "sms").values()) == {"withdrawn"}
    assert consent_rows(api, contact_id, "sms")[-1].method == "provider_opt_out"

    other_id, other = await sms_contact(api)
    _, other_sid = _sent_message(api, other_id, other)
    bad = {"MessageSid": other_sid, "MessageStatus": "undelivered", "ErrorCode": "21211", "To": other}
    assert (await twilio_post(api, STATUS, bad)).status_code == 204
    assert "21211" in (contact_row(api, other_id).phone_unusable_reason or "")


async def test_status_63014_suppresses_the_number_on_whatsapp_and_leaves_sms_alone(api: Api) -> None:
    contact_id, number = await sms_contact(api)
    for _ in range(2):  # two messages refused: one suppression
        _, message_sid = _sent_message(api, contact_id, number, channel="whatsapp")
        params = {"MessageSid": message_sid, "MessageStatus": "undelivered", "ErrorCode": "63014", "To": number}
        assert (await twilio_post(api, STATUS, params)).status_code == 204
    with api.sessions() as session:
        [blocked] = find_suppressions(session, channel="whatsapp", address=number, salt="test-secret")
        assert (blocked.kind, blocked.channel_scope) == ("global", "whatsapp") and "63014" in blocked.reason
        contact = session.get(Contact, contact_id)
        whatsapp = check_permission(session, contact, Reachability("whatsapp", "marketing"), _now(), salt="test-secret")
        sms = check_permission(session, contact, Reachability("sms", "marketing"), _now(), salt="test-secret")
    assert (whatsapp.outcome, whatsapp.reason) == ("skip", "suppressed")
    assert sms.allowed, sms
    assert set(current(api, contact_id, "whatsapp").values()) == {"granted"}  # not a consent statement of theirs


async def test_status_callback_with_a_bad_signature_changes_nothing(api: Api) -> None:
    contact_id, number = await sms_contact(api)
    key, message_sid = _sent_message(api, contact_id, number)
    params = {"MessageSid": message_sid, "MessageStatus": "delivered"}
    problem_of(await twilio_post(api, STATUS, params, token="wrong"), 403)
    assert _status_of(api, key) == "sent"


# ---- status callbacks of concurrent requests (applied together, each as if alone) ------------------------
def _receipt(api: Api, message_sid: str, status: str) -> WebhookReceipt:
    with api.sessions() as session:
        row = session.scalars(
            select(WebhookReceipt).where(WebhookReceipt.dedupe_key == f"status:{message_sid}:{status}")
        ).one()
        session.expunge(row)
        return row


def _enrolled_message(api: Api, contact_id: str, number: str, workflow_id: str) -> tuple[str, str]:
    """A sent message of an enrollment (no such workflow runs: Temporal answers "not found", a signal done)."""
    key, message_sid = _sent_message(api, contact_id, number)
    with api.sessions.begin() as session:
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.message_key == key)).one()
        row.enrollment_id, row.step_id = workflow_id, "hello"
    return key, message_sid


async def test_concurrent_status_callbacks_apply_once_each_and_in_order(api: Api) -> None:
    contact_id, number = await sms_contact(api)
    messages = [_enrolled_message(api, contact_id, number, f"cadence:gone:{sid()}") for _ in range(6)]
    calls = []
    for _, message_sid in messages:
        for status in ("delivered", "read", "delivered"):  # the repeat lands in the same batch or a later one
            calls.append({"MessageSid": message_sid, "MessageStatus": status, "To": number})
    answers = await asyncio.gather(*(twilio_post(api, STATUS, params) for params in calls))
    assert [a.status_code for a in answers] == [204] * len(calls), [a.text for a in answers if a.status_code != 204]
    for key, message_sid in messages:
        assert _status_of(api, key) == "opened"
        with api.sessions() as session:
            events = session.scalars(select(Event).where(Event.message_key == key)).all()
            assert sorted(e.name for e in events) == ["sms.delivered", "sms.opened"]
            assert all(e.idempotency_key.startswith(f"twilio:{message_sid}:") for e in events)
        # each (MessageSid, status) has one receipt; its signals reach Temporal and it is marked shortly after
        for status in ("delivered", "read"):
            await eventually(lambda s=status, m=message_sid: _receipt(api, m, s).signalled_at is not None)


async def test_a_status_callback_that_fails_fails_alone(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    from api.routes import twilio_webhooks

    contact_id, number = await sms_contact(api)
    good = [_sent_message(api, contact_id, number) for _ in range(4)]
    bad_key, bad_sid = _sent_message(api, contact_id, number)
    real = twilio_webhooks._provider_error

    def failing(session, row, message_sid, error):
        if message_sid == bad_sid:
            raise RuntimeError("boom")
        return real(session, row, message_sid, error)

    monkeypatch.setattr(twilio_webhooks, "_provider_error", failing)
    calls = [{"MessageSid": s, "MessageStatus": "delivered", "To": number} for _, s in good]
    calls.insert(2, {"MessageSid": bad_sid, "MessageStatus": "failed", "ErrorCode": "30003", "To": number})
    answers = await asyncio.gather(*(twilio_post(api, STATUS, params) for params in calls))
    assert [a.status_code for a in answers] == [204, 204, 500, 204, 204]
    assert [_status_of(api, key) for key, _ in good] == ["delivered"] * 4
    assert _status_of(api, bad_key) == "sent"  # a failed request changes nothing
    with api.sessions() as session:
        assert session.scalars(select(WebhookReceipt).where(WebhookReceipt.dedupe_key.contains(bad_sid))).all() == []


async def test_temporal_down_is_503_with_the_effects_kept_and_a_redelivery_signals(
    api: Api, dead_api: httpx.AsyncClient
) -> None:
    contact_id, number = await sms_contact(api)
    workflow_id = f"cadence:gone:{sid()}"
    key, message_sid = _enrolled_message(api, contact_id, number, workflow_id)
    delivered = {"MessageSid": message_sid, "MessageStatus": "delivered", "To": number}
    problem_of(await twilio_post(dataclasses.replace(api, http=dead_api), STATUS, delivered), 503)
    assert _status_of(api, key) == "delivered"  # stored: the provider's redelivery must not apply it twice
    owed = _receipt(api, message_sid, "delivered")
    assert owed.signalled_at is None
    assert owed.pending_signals == [
        {
            "workflow_id": workflow_id,
            "name": "sms.delivered",
            "step_id": "hello",
            "event_id": f"twilio:{message_sid}:delivered",
        }
    ]
    assert (await twilio_post(api, STATUS, delivered)).status_code == 204  # Twilio again, Temporal back
    await eventually(lambda: _receipt(api, message_sid, "delivered").signalled_at is not None)
    with api.sessions() as session:
        assert len(session.scalars(select(Event).where(Event.message_key == key)).all()) == 1


async def test_signals_owed_while_temporal_was_down_reach_the_enrollment_without_a_redelivery(
    api: Api, dead_api: httpx.AsyncClient, library, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Twilio does not deliver a status callback again after a 503: the API's relay sends what is owed."""
    from api import webhook_support
    from api.app import create_app
    from api.temporal_gateway import TemporalGateway

    contact_id, number = await sms_contact(api)
    enrolled = await api.post("/v1/enrollments", {"contact_id": contact_id, "cadence_id": "sms-nurture"})
    assert enrolled.status_code == 201, enrolled.text
    workflow_id = enrolled.json()["id"]
    _, message_sid = _enrolled_message(api, contact_id, number, workflow_id)
    delivered = {"MessageSid": message_sid, "MessageStatus": "delivered", "To": number}
    problem_of(await twilio_post(dataclasses.replace(api, http=dead_api), STATUS, delivered), 503)

    app = create_app(api.settings, api.sessions, TemporalGateway(api.temporal, api.settings.task_queue), library)
    relay = webhook_support.OwedSignalRelay(app.state.services)
    await relay.sweep()  # a receipt younger than the settle time is left to its own request
    assert _receipt(api, message_sid, "delivered").signalled_at is None

    monkeypatch.setattr(webhook_support, "OWED_SIGNAL_SETTLE", timedelta(0))
    async with app.router.lifespan_context(app):  # as `omnireach api` runs it: the relay beside the routes
        await eventually(lambda: _receipt(api, message_sid, "delivered").signalled_at is not None)

    history = await api.temporal.get_workflow_handle(workflow_id).fetch_history()
    signalled = [
        e.workflow_execution_signaled_event_attributes
        for e in history.events
        if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    event_id = f"twilio:{message_sid}:delivered"
    assert [s.signal_name for s in signalled if event_id.encode() in s.input.payloads[0].data] == ["event"]
