"""Each provider error class, end to end through the deliver activity, the official SDKs and our fake provider.

Real parts: a migrated SQLite store, the twilio and sendgrid SDKs speaking HTTP to tests/e2e/fake_provider.py
(which injects the failures), the activity's own code. Temporal's retry is played by calling the activity
again, exactly as Temporal would after the ApplicationError it raised.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError

from activities.delivery import IN_FLIGHT, NOT_SENT_CANCELLED, DeliveryActivities, Sender
from activities.types import DeliverRequest, DeliverResult
from channels.sendgrid_email import SendGridEmailChannel
from channels.twilio_common import make_client
from channels.twilio_sms import TwilioSmsChannel
from channels.twilio_voice import TwilioVoiceChannel
from channels.twilio_whatsapp import TwilioWhatsAppChannel
from core.messages import MessageCatalog
from store.models import ConsentRecord, Contact, SendDecision
from store.repos.consent import append_consent, current_consent
from store.repos.contacts import upsert_contact
from store.repos.outbox import get_outbox
from store.repos.suppressions import find_suppressions
from tests.channels.conftest import ACCOUNT_SID, AUTH_TOKEN
from tests.e2e.fake_provider import FakeProvider
from tests.store.conftest import migrated_database

BASE = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # Tuesday 10:00 in Jakarta
FROM = "+14155238886"
CONTENT_SID = "HX" + "d" * 32
PHONE = "+6281234567890"
TEMPLATES = {
    "remind/sms.j2": "Hi {{ contact.name }}, {{ facts.title }} starts soon. Reply STOP to opt out",
    "remind/whatsapp.j2": "Hi {{ contact.name }}, {{ facts.title }} starts soon.",
    "remind/whatsapp.yaml": f"content_sid: {CONTENT_SID}\ncategory: MARKETING\nvariables:\n  '1': contact.name\n",
    "remind/email.subject.j2": "{{ facts.title }} starts soon",
    "remind/email.txt.j2": "Hi {{ contact.name }}. Unsubscribe: {{ unsubscribe_url }} {{ sender.address }}",
    "remind/voice.j2": "Hello {{ contact.name }}, this is a reminder about {{ facts.title }}.",
}


@dataclass
class World:
    sessions: sessionmaker[Session]
    delivery: DeliveryActivities
    fake: FakeProvider
    contact_id: str

    def request(self, channel: str, *, step: str | None = None, purpose: str = "marketing") -> DeliverRequest:
        step = step or f"s-{uuid.uuid4().hex[:6]}"
        wid = f"cadence:remind:{self.contact_id}"
        return DeliverRequest(
            enrollment_id=wid,
            message_key=f"{wid}/{step}/1",
            cadence_id="remind",
            cadence_name="Reminders",
            purpose=purpose,
            contact_id=self.contact_id,
            step_id=step,
            channel=channel,
            message="remind",
            locale="en",
            facts={"title": "Tax webinar"},
        )

    async def deliver(self, request: DeliverRequest) -> DeliverResult:
        return await self.delivery.deliver(request)

    async def refused(self, request: DeliverRequest) -> ApplicationError:
        with pytest.raises(ApplicationError) as raised:
            await self.deliver(request)
        return raised.value

    def outbox(self, key: str):
        with self.sessions() as session:
            row = get_outbox(session, key)
            session.expunge_all()
            return row

    def contact(self) -> Contact:
        with self.sessions() as session:
            contact = session.get(Contact, self.contact_id)
            session.expunge_all()
            return contact

    def consent(self, channel: str, purpose: str = "marketing"):
        with self.sessions() as session:
            return current_consent(session, self.contact_id, channel, purpose)

    def decisions(self) -> list[SendDecision]:
        with self.sessions() as session:
            rows = session.query(SendDecision).filter_by(contact_id=self.contact_id).order_by(SendDecision.id).all()
            session.expunge_all()
            return rows

    def set_inbound(self, at: datetime | None) -> None:
        with self.sessions.begin() as session:
            session.get(Contact, self.contact_id).last_inbound_at = at


def _contact(sessions: sessionmaker[Session]) -> str:
    with sessions.begin() as session:
        contact, _ = upsert_contact(
            session,
            external_id=f"ext-{uuid.uuid4().hex[:8]}",
            name="Dewi",
            email="dewi@example.id",
            phone=PHONE,
            whatsapp=PHONE,
            country="ID",
            timezone="Asia/Jakarta",
            locale="en",
        )
        session.flush()
        for channel in ("email", "sms", "whatsapp", "voice"):
            for purpose in ("marketing", "service"):
                append_consent(
                    session,
                    contact_id=contact.id,
                    channel=channel,
                    purpose=purpose,
                    status="granted",
                    method="web_form",
                    source="https://example.id/signup",
                    notice_text="You may contact me",
                    notice_version="v1",
                    lawful_basis="consent",
                    occurred_at=datetime(2020, 1, 1, tzinfo=UTC),
                )
        return contact.id


def build_world(tmp_path: Path, fake: FakeProvider, *, sms_rate: float = 0.0, timeout: float = 1.0) -> Iterator[World]:
    with migrated_database("sqlite", tmp_path) as db:
        start = time.monotonic()

        def clock() -> datetime:
            return BASE + timedelta(seconds=time.monotonic() - start)

        def twilio():
            return make_client(ACCOUNT_SID, AUTH_TOKEN, fake.url, timeout=timeout)

        public = "https://omnireach.example.com"
        channels = {
            "sms": TwilioSmsChannel(twilio(), from_number=FROM, public_url=public, rate=sms_rate, segment_price=0.01),
            "whatsapp": TwilioWhatsAppChannel(twilio(), from_number=FROM, public_url=public, rate=0),
            "voice": TwilioVoiceChannel(twilio(), from_number=FROM, public_url=public, rate=0),
            "email": SendGridEmailChannel(
                "SG.key",
                from_email="news@acme.example.com",
                sender_name="Acme",
                sender_address="Jl. Sudirman 52, Jakarta",
                host=fake.url,
                timeout=timeout,
            ),
        }
        sender = Sender("Acme", "Jl. Sudirman 52, Jakarta", public, "test-secret")
        delivery = DeliveryActivities(db.session_factory, channels, MessageCatalog(TEMPLATES), sender, clock=clock)
        yield World(db.session_factory, delivery, fake, _contact(db.session_factory))


@pytest.fixture
def world(tmp_path: Path, fake_provider: FakeProvider) -> Iterator[World]:
    yield from build_world(tmp_path, fake_provider)


async def test_sms_is_sent_with_segments_cost_and_status_callback(world: World):
    request = world.request("sms")
    result = await world.deliver(request)
    assert (result.outcome, result.reason) == ("sent", "allowed")
    assert "1 segment(s) GSM-7" in result.detail and "est. USD 0.0100" in result.detail
    [sent] = world.fake.accepted("message")
    assert sent.params["To"] == PHONE and sent.params["From"] == FROM
    assert sent.params["Body"].startswith("Hi Dewi, Tax webinar starts soon")
    assert sent.params["StatusCallback"].startswith("https://omnireach.example.com/webhooks/twilio/status?key=")
    row = world.outbox(request.message_key)
    assert (row.status, row.provider_message_id, row.segments, row.encoding) == ("sent", sent.sid, 1, "GSM-7")
    again = await world.deliver(request)  # a retried activity after success: nothing new is sent
    assert again.reason == "already_sent" and len(world.fake.all("message")) == 1


async def test_21610_withdraws_consent_in_our_ledger_and_is_never_retried(world: World):
    world.fake.inject("21610")
    request = world.request("sms")
    error = await world.refused(request)
    assert error.non_retryable and error.type == "recipient_opted_out"
    for purpose in ("marketing", "service"):
        assert world.consent("sms", purpose).status == "withdrawn"
    assert world.consent("whatsapp").status == "granted"  # only the refusing channel
    with world.sessions() as session:
        withdrawal = session.query(ConsentRecord).filter_by(contact_id=world.contact_id, status="withdrawn").first()
        assert withdrawal.method == "provider_opt_out" and withdrawal.evidence["provider_error_code"] == 21610
        assert withdrawal.evidence["message_key"] == request.message_key
    assert world.outbox(request.message_key).status == "failed"
    later = await world.deliver(world.request("sms"))  # any cadence, any sender: our ledger now says no
    assert (later.outcome, later.reason) == ("skipped", "consent_withdrawn")
    assert len(world.fake.all("message")) == 1


@pytest.mark.parametrize("code", ["21211", "21614"])
async def test_invalid_or_landline_number_marks_the_address_unusable(world: World, code: str):
    world.fake.inject(code)
    error = await world.refused(world.request("sms"))
    assert error.non_retryable and error.type == "address_unusable"
    assert code in world.contact().phone_unusable_reason
    later = await world.deliver(world.request("sms"))
    assert later.outcome == "skipped" and len(world.fake.all("message")) == 1


async def test_63016_outside_the_window_sends_the_approved_template(world: World):
    world.set_inbound(BASE - timedelta(hours=1))  # we believe the 24h session is open; WhatsApp disagrees
    world.fake.inject("63016")
    result = await world.deliver(world.request("whatsapp"))
    assert result.outcome == "sent"
    refused, sent = world.fake.all("message")
    assert refused.answered == 400 and "Body" in refused.params and "ContentSid" not in refused.params
    assert sent.params["ContentSid"] == CONTENT_SID and "Body" not in sent.params
    assert sent.params["To"] == f"whatsapp:{PHONE}" and sent.params["From"] == f"whatsapp:{FROM}"


async def test_whatsapp_outside_the_session_uses_the_template_and_inside_free_form(world: World):
    await world.deliver(world.request("whatsapp"))
    world.set_inbound(BASE - timedelta(hours=1))
    await world.deliver(world.request("whatsapp"))
    template, free = world.fake.accepted("message")
    assert template.params["ContentSid"] == CONTENT_SID and '"1": "Dewi"' in template.params["ContentVariables"]
    assert free.params["Body"] == "Hi Dewi, Tax webinar starts soon." and "ContentSid" not in free.params


async def test_63014_blocked_suppresses_the_number_on_whatsapp_only(world: World):
    world.fake.inject("63014")
    error = await world.refused(world.request("whatsapp"))
    assert error.non_retryable and error.type == "recipient_blocked"
    with world.sessions() as session:
        [blocked] = find_suppressions(session, channel="whatsapp", address=PHONE, salt="any")
        assert (blocked.kind, blocked.channel_scope, blocked.value) == ("global", "whatsapp", PHONE)
        assert find_suppressions(session, channel="sms", address=PHONE, salt="any") == []
    # What the person did is on record as a suppression, not as a consent statement they never made.
    assert world.consent("whatsapp").status == "granted"
    again = await world.deliver(world.request("whatsapp"))
    assert (again.outcome, again.reason) == ("skipped", "suppressed")
    assert (await world.deliver(world.request("sms"))).outcome == "sent"  # SMS to the same number still goes
    assert len(world.fake.accepted("message")) == 1


async def test_131049_backs_off_24_hours_as_a_deferral(world: World):
    world.fake.inject("131049")
    request = world.request("whatsapp")
    result = await world.deliver(request)
    assert (result.outcome, result.reason) == ("deferred", "whatsapp_marketing_limited")
    until = datetime.fromisoformat(result.until)
    assert timedelta(hours=23, minutes=59) < until - BASE < timedelta(hours=24, minutes=1)
    assert world.outbox(request.message_key).status == "pending"  # nothing went out; the retry will send


async def test_429_retries_after_the_retry_after_header_and_sends_once(world: World):
    world.fake.inject("429", retry_after=7)
    request = world.request("sms")
    error = await world.refused(request)
    assert not error.non_retryable and error.type == "rate_limited"
    assert error.next_retry_delay == timedelta(seconds=7)
    result = await world.deliver(request)  # Temporal's retry, 7 s later
    assert result.outcome == "sent" and len(world.fake.accepted("message")) == 1


@pytest.mark.parametrize("channel", ["sms", "email"])
async def test_5xx_retries_with_backoff(world: World, channel: str):
    world.fake.inject("500")
    request = world.request(channel)
    error = await world.refused(request)
    assert not error.non_retryable and error.type == "provider_unavailable" and error.next_retry_delay is None
    assert (await world.deliver(request)).outcome == "sent"
    assert len(world.fake.accepted("message" if channel == "sms" else "mail")) == 1


async def test_401_is_a_loud_configuration_error_without_retries(world: World, caplog: pytest.LogCaptureFixture):
    world.fake.inject("401")
    with caplog.at_level(logging.ERROR, logger="omnireach.deliver"):
        error = await world.refused(world.request("sms"))
    assert error.non_retryable and error.type == "configuration"
    assert any("provider_configuration_error" in r.getMessage() for r in caplog.records)
    assert world.decisions()[-1].reason == "configuration"


async def test_timeout_after_the_request_left_reconciles_instead_of_resending(world: World):
    world.fake.inject("timeout", delay=2.5)  # Twilio accepts it, but the answer comes after our 1 s timeout
    request = world.request("sms")
    error = await world.refused(request)
    assert error.type == "outcome_unknown" and error.next_retry_delay == timedelta(seconds=30)
    assert world.outbox(request.message_key).status == "unknown"
    result = await world.deliver(request)  # Temporal's retry: looks the message up
    assert result.outcome == "sent"
    [accepted] = world.fake.accepted("message")  # one create only; the retry used the Messages list
    row = world.outbox(request.message_key)
    assert (row.status, row.provider_message_id) == ("sent", accepted.sid)


async def test_timeout_with_nothing_accepted_sends_on_the_retry(world: World):
    world.fake.inject("timeout", delay=2.5)
    request = world.request("sms")
    await world.refused(request)
    world.fake.reset()  # as if the provider had dropped the request after all
    assert (await world.deliver(request)).outcome == "sent"
    assert len(world.fake.accepted("message")) == 1


async def test_sendgrid_timeout_is_never_resent(world: World):
    world.fake.inject("timeout", kinds=("mail",), delay=2.5)
    request = world.request("email")
    error = await world.refused(request)
    assert error.type == "outcome_unknown"
    result = await world.deliver(request)
    assert (result.outcome, result.reason) == ("sent", "outcome_unknown")
    assert len(world.fake.accepted("mail")) == 1
    assert world.outbox(request.message_key).status == "unknown"  # until SendGrid's events say more


async def test_email_through_sendgrid_carries_key_categories_and_unsubscribe(world: World):
    request = world.request("email")
    await world.deliver(request)
    [mail] = world.fake.accepted("mail")
    body = mail.params
    assert body["personalizations"][0]["custom_args"]["message_key"] == request.message_key
    assert body["headers"]["List-Unsubscribe"].startswith("<https://omnireach.example.com/u/")
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"step:remind/{request.step_id}" in body["categories"]
    assert mail.headers["authorization"] == "Bearer SG.key"
    assert world.outbox(request.message_key).provider_message_id == mail.sid


async def test_voice_step_places_a_say_call(world: World):
    result = await world.deliver(world.request("voice", purpose="service"))
    assert result.outcome == "sent", result
    [call] = world.fake.accepted("call")
    assert "<Say>Hello Dewi, this is a reminder about Tax webinar.</Say>" in call.params["Twiml"]
    assert "Url" not in call.params and call.params["To"] == PHONE


async def test_sender_pacing_spaces_sends(tmp_path: Path, fake_provider: FakeProvider):
    """2 segments per second on one sender: four single-segment sends take at least 1.5 s."""
    for world in build_world(tmp_path, fake_provider, sms_rate=2.0):
        for _ in range(4):
            assert (await world.deliver(world.request("sms"))).outcome == "sent"
        times = [r.at for r in world.fake.accepted("message")]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(times) == 4 and min(gaps) >= 0.45, gaps


class Killed(BaseException):
    """The worker process dying at this point (SIGKILL): nothing after it runs, no handler sees it."""


@pytest.fixture(params=[0.0, 2.0], ids=["unpaced", "paced"])
def sms_world(request: pytest.FixtureRequest, tmp_path: Path, fake_provider: FakeProvider) -> Iterator[World]:
    """SMS unpaced (the in-flight mark is written with the claim) and paced (written when the slot has come)."""
    yield from build_world(tmp_path, fake_provider, sms_rate=request.param)


async def test_the_row_is_marked_in_flight_before_the_request_leaves(sms_world: World):
    adapter = sms_world.delivery.channels["sms"]
    send, seen = adapter.send, []

    async def watched(message):
        seen.append(sms_world.outbox(message.message_key).error)  # committed: read from another session
        return await send(message)

    adapter.send = watched
    request = sms_world.request("sms")
    assert (await sms_world.deliver(request)).outcome == "sent"
    assert seen == [IN_FLIGHT]
    row = sms_world.outbox(request.message_key)
    assert (row.status, row.error) == ("sent", None)


async def test_a_worker_killed_after_the_provider_accepted_reconciles_instead_of_resending(sms_world: World):
    record = sms_world.delivery._record_sent

    def killed(*args, **kwargs):
        raise Killed

    sms_world.delivery._record_sent = killed
    request = sms_world.request("sms")
    with pytest.raises(Killed):
        await sms_world.deliver(request)
    assert sms_world.outbox(request.message_key).status == "pending"  # the answer was never recorded
    sms_world.delivery._record_sent = record
    result = await sms_world.deliver(request)  # Temporal's retry on another worker
    assert result.outcome == "sent"
    [accepted] = sms_world.fake.accepted("message")  # found in the Messages list, not created again
    assert sms_world.outbox(request.message_key).provider_message_id == accepted.sid


async def test_a_worker_killed_before_the_request_left_sends_on_the_retry(sms_world: World):
    adapter = sms_world.delivery.channels["sms"]
    send = adapter.send

    async def killed(message):
        raise Killed

    adapter.send = killed
    request = sms_world.request("sms")
    with pytest.raises(Killed):
        await sms_world.deliver(request)
    assert sms_world.outbox(request.message_key).error == IN_FLIGHT
    adapter.send = send
    assert (await sms_world.deliver(request)).outcome == "sent"  # the look-up finds nothing: sent once
    assert len(sms_world.fake.accepted("message")) == 1


class Hold:
    """Holds a database step in its thread until released, so a cancellation can arrive while it runs."""

    def __init__(self, step):
        self.step, self.entered, self.release = step, threading.Event(), threading.Event()

    def __call__(self, *args):
        self.entered.set()
        self.release.wait(10)
        return self.step(*args)

    async def cancel_inside(self, task: asyncio.Task) -> None:
        await asyncio.to_thread(self.entered.wait, 10)
        task.cancel()  # a worker shutting down cancels its running activities
        await asyncio.sleep(0.05)
        self.release.set()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_cancelled_while_claiming_takes_back_the_in_flight_mark(world: World):
    """Unpaced email is marked in flight with its claim; SendGrid cannot be asked whether it has a message, so a
    mark left behind by an attempt that never sent would make the retry count the email as sent, unsent."""
    hold = Hold(world.delivery._prepare)
    world.delivery._prepare = hold
    request = world.request("email")
    await hold.cancel_inside(asyncio.create_task(world.deliver(request)))
    row = world.outbox(request.message_key)
    assert (row.status, row.error) == ("pending", NOT_SENT_CANCELLED)
    world.delivery._prepare = hold.step
    result = await world.deliver(request)  # Temporal's retry
    assert (result.outcome, result.reason) == ("sent", "allowed")
    assert len(world.fake.accepted("mail")) == 1


@pytest.fixture
def paced_world(tmp_path: Path, fake_provider: FakeProvider) -> Iterator[World]:
    yield from build_world(tmp_path, fake_provider, sms_rate=2.0)


async def test_cancelled_while_marking_a_paced_send_takes_back_the_mark(paced_world: World):
    note = paced_world.delivery._note
    hold = Hold(note)

    def held_note(key: str, text: str) -> None:
        return hold(key, text) if text == IN_FLIGHT else note(key, text)

    paced_world.delivery._note = held_note
    request = paced_world.request("sms")
    await hold.cancel_inside(asyncio.create_task(paced_world.deliver(request)))
    assert paced_world.outbox(request.message_key).error == NOT_SENT_CANCELLED
    assert paced_world.fake.all("message") == []
    paced_world.delivery._note = note
    assert (await paced_world.deliver(request)).outcome == "sent"
    assert len(paced_world.fake.accepted("message")) == 1
