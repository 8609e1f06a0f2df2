"""Contract tests: the official twilio SDK, through our adapters, against Prism serving Twilio's own spec.

Prism checks auth, required fields, types and SID patterns; a 2xx means the real API would accept the
request's shape. The "one of" rules and phone formats the spec cannot express are checked on our side below.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from channels.base import AddressUnusable, ConfigurationError, OutgoingMessage, PermanentSendError
from channels.twilio_common import make_client
from channels.twilio_sms import TwilioSmsChannel
from channels.twilio_voice import BridgeRequest, TwilioVoiceChannel
from channels.twilio_whatsapp import TwilioWhatsAppChannel
from tests.channels.conftest import ACCOUNT_SID, AUTH_TOKEN

CONTACT = "+6281234567890"
FROM = "+14155238886"
SERVICE = "MG" + "b" * 32
CONTENT_SID = "HX" + "c" * 32
PUBLIC = "https://omnireach.example.com"


def message(
    channel: str = "sms", text: str = "Webinar tomorrow 10:00. Reply STOP to opt out", **extra
) -> OutgoingMessage:
    return OutgoingMessage(
        message_key="cadence:webinar:c1/reminder/1",
        channel=channel,
        to=extra.pop("to", CONTACT),
        text=text,
        metadata={"cadence": "webinar", "step": "reminder"},
        **extra,
    )


def client(prism, token: str = AUTH_TOKEN, sid: str = ACCOUNT_SID):
    return make_client(sid, token, prism.url, timeout=10)


async def test_sms_from_number_is_accepted_and_counts_segments(prism_twilio):
    sms = TwilioSmsChannel(client(prism_twilio), from_number=FROM, public_url=PUBLIC, segment_price=0.0079)
    receipt = await sms.send(message(text="x" * 161))
    assert receipt.provider == "twilio-sms"
    assert receipt.provider_message_id.startswith("SM")
    assert (receipt.segments, receipt.encoding) == (2, "GSM-7")
    assert receipt.cost_estimate == pytest.approx(2 * 0.0079)


async def test_sms_messaging_service_is_accepted_and_ucs2_counted(prism_twilio):
    sms = TwilioSmsChannel(client(prism_twilio), messaging_service_sid=SERVICE, public_url=PUBLIC)
    receipt = await sms.send(message(text="Halo 👋 " + "a" * 70))
    assert (receipt.segments, receipt.encoding) == (2, "UCS-2")


async def test_whatsapp_free_form_and_template_are_accepted(prism_twilio):
    wa = TwilioWhatsAppChannel(client(prism_twilio), from_number=FROM, public_url=PUBLIC)
    free = await wa.send(message("whatsapp", "Hi Dewi, see you at the webinar"))
    templated = await wa.send(
        message("whatsapp", "ignored", template_sid=CONTENT_SID, template_variables={"1": "Dewi", "2": "3 Dec"})
    )
    assert free.provider_message_id.startswith("SM") and templated.provider_message_id.startswith("SM")


async def test_voice_reminder_and_agent_bridge_are_accepted(prism_twilio):
    voice = TwilioVoiceChannel(client(prism_twilio), from_number=FROM, public_url=PUBLIC)
    receipt = await voice.send(message("voice", "This is a reminder: the webinar starts at ten."))
    assert receipt.provider_message_id.startswith("CA")
    bridged = await voice.bridge(
        BridgeRequest(
            "task-1/1", agent_phone="+12025550143", contact_phone=CONTACT, record=True, recording_consent_recorded=True
        )
    )
    assert bridged.call_sid.startswith("CA") and bridged.recording is True


async def test_invalid_request_is_refused_by_the_spec(prism_twilio):
    """Proves the check is live: a malformed messaging service SID fails Prism's pattern check."""
    sms = TwilioSmsChannel(client(prism_twilio), messaging_service_sid="MG-not-a-sid", public_url=PUBLIC)
    with pytest.raises(PermanentSendError) as refused:
        await sms.send(message())
    assert refused.value.code == "provider_rejected"
    assert "MessagingServiceSid must match pattern" in str(refused.value)


async def test_missing_credentials_are_a_configuration_error(prism_twilio):
    sms = TwilioSmsChannel(client(prism_twilio, token=""), from_number=FROM, public_url=PUBLIC)
    with pytest.raises(ConfigurationError, match="TWILIO_AUTH_TOKEN"):
        await sms.send(message())


# -- what the spec cannot check: "one of" rules and phone formats -------------------------------------------


def test_sms_sends_exactly_one_of_from_and_messaging_service_and_body_only():
    fake = make_client(ACCOUNT_SID, AUTH_TOKEN, "http://127.0.0.1:9", timeout=1)
    by_service = TwilioSmsChannel(fake, messaging_service_sid=SERVICE, from_number=FROM, public_url=PUBLIC)
    by_number = TwilioSmsChannel(fake, from_number=FROM, public_url=PUBLIC)
    a, b = by_service.request(message()), by_number.request(message())
    assert "messaging_service_sid" in a and "from_" not in a
    assert "from_" in b and "messaging_service_sid" not in b
    for params in (a, b):
        assert params["body"] and "content_sid" not in params and "media_url" not in params
    callback = urlsplit(a["status_callback"])
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == PUBLIC + "/webhooks/twilio/status"
    assert parse_qs(callback.query)["key"] == ["cadence:webinar:c1/reminder/1"]
    with pytest.raises(ValueError, match="TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER"):
        TwilioSmsChannel(fake, public_url=PUBLIC)


def test_whatsapp_sends_body_or_template_never_both():
    fake = make_client(ACCOUNT_SID, AUTH_TOKEN, "http://127.0.0.1:9", timeout=1)
    wa = TwilioWhatsAppChannel(fake, from_number="whatsapp:" + FROM, public_url=PUBLIC)
    free = wa.request(message("whatsapp", "hello"))
    assert free["to"] == "whatsapp:" + CONTACT and free["from_"] == "whatsapp:" + FROM
    assert free["body"] == "hello" and "content_sid" not in free
    templated = wa.request(message("whatsapp", "hello", template_sid=CONTENT_SID, template_variables={"1": "Dewi"}))
    assert "body" not in templated and templated["content_sid"] == CONTENT_SID
    assert json.loads(templated["content_variables"]) == {"1": "Dewi"}
    with pytest.raises(PermanentSendError, match="Content SID"):
        wa.request(message("whatsapp", "x", template_sid="HX123"))
    too_many = {str(i): "v" for i in range(1, 102)}
    with pytest.raises(PermanentSendError, match="at most 100"):
        wa.request(message("whatsapp", "x", template_sid=CONTENT_SID, template_variables=too_many))


def test_voice_sends_twiml_never_url_and_records_only_with_consent():
    fake = make_client(ACCOUNT_SID, AUTH_TOKEN, "http://127.0.0.1:9", timeout=1)
    voice = TwilioVoiceChannel(fake, from_number=FROM, public_url=PUBLIC)
    params = voice.request(message("voice", "Reminder <tomorrow> & more"))
    assert "url" not in params and params["twiml"].startswith("<?xml")
    assert "<Say>Reminder &lt;tomorrow&gt; &amp; more</Say>" in params["twiml"]
    assert "record" not in params and "Record" not in params["twiml"]
    no_consent, recording, note = voice.bridge_request(
        BridgeRequest("t/1", agent_phone="+12025550143", contact_phone=CONTACT, record=True)
    )
    assert recording is False and "record=" not in no_consent["twiml"] and "consent" in note
    with_consent, recording, _ = voice.bridge_request(
        BridgeRequest("t/1", "+12025550143", CONTACT, record=True, recording_consent_recorded=True)
    )
    assert recording is True and 'record="record-from-answer-dual"' in with_consent["twiml"]
    assert f"<Number>{CONTACT}</Number>" in with_consent["twiml"] and with_consent["to"] == "+12025550143"


@pytest.mark.parametrize(
    "bad",
    ["081234567890", "6281234567890", "+62 812-3456-7890", "+0081234567890", "+62812345678901234", "whatsapp+62812"],
)
def test_numbers_not_in_e164_are_refused_before_calling(bad):
    fake = make_client(ACCOUNT_SID, AUTH_TOKEN, "http://127.0.0.1:9", timeout=1)
    with pytest.raises(AddressUnusable):
        TwilioSmsChannel(fake, from_number=FROM, public_url=PUBLIC).request(message(to=bad))
    with pytest.raises(AddressUnusable):
        TwilioWhatsAppChannel(fake, from_number=FROM, public_url=PUBLIC).request(message("whatsapp", "x", to=bad))


def test_sms_body_over_1600_characters_is_refused():
    fake = make_client(ACCOUNT_SID, AUTH_TOKEN, "http://127.0.0.1:9", timeout=1)
    with pytest.raises(PermanentSendError, match="at most 1600"):
        TwilioSmsChannel(fake, from_number=FROM, public_url=PUBLIC).request(message(text="a" * 1601))
