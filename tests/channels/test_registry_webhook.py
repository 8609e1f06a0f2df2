"""Which adapter each channel gets from the settings, the signed webhook channel, and shared pacing slots."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from channels.base import ConfigurationError, OutgoingMessage, RetryableSendError
from channels.console import ConsoleChannel
from channels.registry import choose_channels
from channels.sendgrid_email import SendGridEmailChannel
from channels.smtp_email import SmtpEmailChannel
from channels.twilio_sms import TwilioSmsChannel
from channels.twilio_voice import TwilioVoiceChannel
from channels.twilio_whatsapp import TwilioWhatsAppChannel
from channels.webhook import SIGNATURE_HEADER, WebhookChannel, verify
from core.settings import Settings
from store.repos.pacing import depart, reserve_slot
from tests.e2e.fake_provider import FakeProvider
from tests.store.conftest import DATABASE_KINDS, migrated_database

TWILIO = {"twilio_account_sid": "AC" + "a" * 32, "twilio_auth_token": "token"}


def adapters(**settings) -> dict:
    choices = choose_channels(Settings(secret_key="s", **settings))
    return {c.channel: c for c in choices}


def test_without_credentials_every_channel_is_the_console(tmp_path: Path):
    chosen = adapters(var_dir=tmp_path)
    assert all(isinstance(c.adapter, ConsoleChannel) for c in chosen.values())
    assert "provider=console (set SENDGRID_API_KEY" in chosen["email"].note
    assert "TWILIO_VOICE_FROM" in chosen["voice"].note


def test_configured_providers_are_chosen_per_channel(tmp_path: Path):
    chosen = adapters(
        var_dir=tmp_path,
        twilio_from_number="+14155238886",
        twilio_whatsapp_from="+14155238886",
        sendgrid_api_key="SG.x",
        sendgrid_asm_group_id=7,
        **TWILIO,
    )
    assert isinstance(chosen["sms"].adapter, TwilioSmsChannel)
    assert isinstance(chosen["whatsapp"].adapter, TwilioWhatsAppChannel)
    assert isinstance(chosen["email"].adapter, SendGridEmailChannel) and "asm_group=7" in chosen["email"].note
    assert isinstance(chosen["voice"].adapter, ConsoleChannel)  # no TWILIO_VOICE_FROM
    assert "token" not in " ".join(c.note for c in chosen.values())  # no secrets in the start-up lines


def test_smtp_when_no_sendgrid_and_webhook_when_listed(tmp_path: Path):
    chosen = adapters(
        var_dir=tmp_path,
        smtp_url="smtp://relay.example.com",
        twilio_voice_from="+14155238886",
        webhook_url="https://crm.example.com/hook",
        webhook_channels=("sms",),
        **TWILIO,
    )
    assert isinstance(chosen["email"].adapter, SmtpEmailChannel)
    assert isinstance(chosen["voice"].adapter, TwilioVoiceChannel)
    assert isinstance(chosen["sms"].adapter, WebhookChannel)


def test_base_url_redirects_the_twilio_sdk(tmp_path: Path):
    chosen = adapters(
        var_dir=tmp_path, twilio_from_number="+14155238886", twilio_base_url="http://127.0.0.1:4010", **TWILIO
    )
    http = chosen["sms"].adapter.http
    assert http.rewrite("https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json?To=%2B1") == (
        "http://127.0.0.1:4010/2010-04-01/Accounts/AC1/Messages.json?To=%2B1"
    )


@pytest.fixture
def receiver(fake_provider: FakeProvider) -> FakeProvider:
    return fake_provider


def note(key: str = "k/1") -> OutgoingMessage:
    return OutgoingMessage(key, "sms", "+6281234567890", "Hi", metadata={"cadence": "c", "step": "s"})


async def test_webhook_posts_signed_json_with_an_idempotency_key(receiver: FakeProvider):
    channel = WebhookChannel(receiver.url + "/hook", "hook-secret")
    receipt = await channel.send(note())
    [got] = receiver.accepted("hook")
    raw = got.params["raw"].encode()
    assert json.loads(raw)["message_key"] == "k/1" and json.loads(raw)["to"] == "+6281234567890"
    assert got.headers["idempotency-key"] == "k/1"
    assert verify("hook-secret", raw, got.headers[SIGNATURE_HEADER.lower()])
    assert not verify("other-secret", raw, got.headers[SIGNATURE_HEADER.lower()])
    assert not verify("hook-secret", raw + b" ", got.headers[SIGNATURE_HEADER.lower()])
    assert not verify("hook-secret", raw, got.headers[SIGNATURE_HEADER.lower()], now=time.time() + 600)
    assert receipt.provider_message_id == got.sid


async def test_webhook_failures_map_to_retry_or_configuration(receiver: FakeProvider):
    channel = WebhookChannel(receiver.url + "/hook", "hook-secret")
    receiver.inject("503", kinds=("hook",))
    with pytest.raises(RetryableSendError):
        await channel.send(note())
    receiver.inject("401", kinds=("hook",))
    with pytest.raises(ConfigurationError):
        await channel.send(note())


@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_slots_are_shared_kept_and_departures_spaced(kind: str, tmp_path: Path):
    now = datetime(2026, 12, 1, tzinfo=UTC)
    second = timedelta(seconds=1)
    with migrated_database(kind, tmp_path) as db:
        with db.session_factory.begin() as s:
            slots = [
                reserve_slot(s, message_key=f"m{i}", sender="twilio:+1", interval=second, now=now, grace=second)
                for i in range(3)
            ]
            other = reserve_slot(s, message_key="x", sender="twilio:+2", interval=second, now=now, grace=second)
        assert slots == [now, now + second, now + 2 * second] and other == now  # per sender
        with db.session_factory.begin() as s:  # the same message comes back: same place in the queue
            again = reserve_slot(s, message_key="m2", sender="twilio:+1", interval=second, now=now, grace=second)
            late = reserve_slot(
                s, message_key="m1", sender="twilio:+1", interval=second, now=now + 5 * second, grace=second
            )
        assert again == now + 2 * second
        assert late == now + 5 * second  # missed by more than the grace: a new slot at the end
        with db.session_factory.begin() as s:
            assert depart(s, sender="twilio:+1", interval=second, now=lambda: now) == 0.0
            assert depart(s, sender="twilio:+1", interval=second, now=lambda: now + second / 4) == pytest.approx(0.75)
            assert depart(s, sender="twilio:+1", interval=second, now=lambda: now + second) == 0.0
