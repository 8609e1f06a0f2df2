"""A STOP that arrives while a send is scheduled: nothing is sent after the STOP is recorded.

The workflow (time-skipping server) is waiting, either on a cadence wait or on a legal-hours deferral, when
the person texts STOP to the real Twilio webhook (signed by the official twilio package). The deliver
activity re-checks consent inside its transaction, so the scheduled message is skipped with the reason.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, available_timezones

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment
from twilio.request_validator import RequestValidator

from api.app import create_app
from api.temporal_gateway import TemporalGateway
from content.cadences import Library
from core.jurisdiction import default_policy, parse_policy
from tests.workflows.harness import Harness

PUBLIC_URL = "https://hooks.omnireach.test"
TOKEN = "twilio-token-for-stop-tests"
NUMBER = "+6281234567890"  # what Harness.contact gives every contact
WAIT_THEN_SMS = """
    id: t-stop-wait
    name: STOP while waiting
    purpose: marketing
    facts: {title: Tax 101}
    steps:
      - wait: 1d
      - id: reminder
        send: sms
        message: reminder
"""
SMS_NOW = """
    id: t-stop-deferred
    name: STOP while deferred
    purpose: marketing
    facts: {title: Tax 101}
    steps:
      - id: reminder
        send: sms
        message: reminder
"""


async def send_stop(harness: Harness, client) -> httpx.Response:
    settings = harness.settings.model_copy(update={"public_url": PUBLIC_URL, "twilio_auth_token": TOKEN})
    app = create_app(settings, harness.sessions, TemporalGateway(client, harness.task_queue), Library())
    params = {"MessageSid": "SMstop0001", "From": NUMBER, "To": "+15005550006", "Body": "Stop texting me please"}
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC_URL + "/webhooks/twilio/inbound", params)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test") as http:
        return await http.post(
            "/webhooks/twilio/inbound",
            content=urlencode(params),
            headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
        )


async def test_stop_while_the_workflow_waits_means_no_send(time_skipping_env: WorkflowEnvironment, tmp_path) -> None:
    harness = Harness(time_skipping_env.client, tmp_path, policy=default_policy())
    contact = harness.contact(timezone="Asia/Jakarta", country="ID", consents=(("sms", "marketing"),))
    async with harness.worker:
        handle = await harness.start(harness.cadence(WAIT_THEN_SMS), contact)
        await time_skipping_env.sleep(timedelta(hours=3))
        response = await send_stop(harness, time_skipping_env.client)
        assert response.status_code == 200 and "<Message>" in response.text
        result = await handle.result()

    assert harness.sent(contact) == [] and harness.console.records() == []
    assert result.skipped == {"reminder": "consent_withdrawn"}
    [decision] = [d for d in harness.decisions(contact) if d.step_id == "reminder"]
    assert (decision.decision, decision.reason) == ("skipped", "consent_withdrawn")


def _zone_at(now: datetime, hours: range) -> str:
    """Some zone where the local hour is in ``hours`` right now (offsets span 26 hours, so one exists)."""
    for name in sorted(available_timezones()):
        if name.startswith(("Etc/", "posix/", "right/")) or "/" not in name:
            continue
        if now.astimezone(ZoneInfo(name)).hour in hours:
            return name
    raise LookupError(hours)


async def test_stop_while_deferred_by_legal_hours_means_no_send(
    time_skipping_env: WorkflowEnvironment, tmp_path
) -> None:
    now = await time_skipping_env.get_current_time()
    zone = _zone_at(now, range(2, 18))
    hour = now.astimezone(ZoneInfo(zone)).hour
    # Legal hours that open two hours from now in the contact's zone: the first attempt is deferred.
    policy = parse_policy(
        f'countries: {{US: {{hours: [{{channels: [sms], hours: "{hour + 2:02d}:00-{hour + 4:02d}:00"}}]}}}}',
        "test-policy.yaml",
    )
    harness = Harness(time_skipping_env.client, tmp_path, policy=policy)
    contact = harness.contact(timezone=zone, country="US", consents=(("sms", "marketing"),))
    async with harness.worker:
        handle = await harness.start(harness.cadence(SMS_NOW), contact)
        await time_skipping_env.sleep(timedelta(minutes=30))
        deferred = [d for d in harness.decisions(contact) if d.decision == "deferred"]
        assert [d.reason for d in deferred] == ["outside_legal_hours"]
        assert harness.sent(contact) == []
        response = await send_stop(harness, time_skipping_env.client)
        assert response.status_code == 200
        result = await handle.result()

    assert harness.sent(contact) == [] and harness.console.records() == []
    assert result.skipped == {"reminder": "consent_withdrawn"}
    decisions = [(d.decision, d.reason) for d in harness.decisions(contact)]
    assert decisions == [("deferred", "outside_legal_hours"), ("skipped", "consent_withdrawn")]
    retry_at = harness.decisions(contact)[1].decided_at.astimezone(ZoneInfo(zone))
    assert retry_at.hour == hour + 2  # the retry came at the legal opening, after the STOP


@pytest.mark.parametrize("body", ["hello, who is this?"])
async def test_a_plain_reply_does_not_stop_the_scheduled_send(time_skipping_env: WorkflowEnvironment, tmp_path, body):
    harness = Harness(time_skipping_env.client, tmp_path, policy=default_policy())
    contact = harness.contact(timezone="Asia/Jakarta", country="ID", consents=(("sms", "service"),))
    cadence = harness.cadence(WAIT_THEN_SMS.replace("purpose: marketing", "purpose: service"))
    async with harness.worker:
        handle = await harness.start(cadence, contact)
        await time_skipping_env.sleep(timedelta(hours=3))
        settings = harness.settings.model_copy(update={"public_url": PUBLIC_URL, "twilio_auth_token": TOKEN})
        app = create_app(
            settings, harness.sessions, TemporalGateway(time_skipping_env.client, harness.task_queue), Library()
        )
        params = {"MessageSid": "SMreply001", "From": NUMBER, "To": "+15005550006", "Body": body}
        signature = RequestValidator(TOKEN).compute_signature(PUBLIC_URL + "/webhooks/twilio/inbound", params)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test") as http:
            response = await http.post(
                "/webhooks/twilio/inbound",
                content=urlencode(params),
                headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature},
            )
        assert response.status_code == 200 and "<Message>" not in response.text
        result = await handle.result()

    assert [m.step_id for m in harness.sent(contact)] == ["reminder"]  # the control: without STOP it goes out
    assert result.status == "completed"
