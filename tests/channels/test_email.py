"""Email: the official sendgrid SDK against Prism serving SendGrid's Mail Send spec, and SMTP to aiosmtpd.

Both adapters send the same parts and headers: RFC 8058 one-click unsubscribe, our message key, the
sender's name and postal address, text and HTML.
"""

from __future__ import annotations

import email
from email.policy import default as default_policy

import pytest

from channels.base import AddressUnusable, ConfigurationError, OutgoingMessage, PermanentSendError, RetryableSendError
from channels.sendgrid_email import SendGridEmailChannel
from channels.smtp_email import SmtpEmailChannel, parse_smtp_url

UNSUBSCRIBE = "<https://omnireach.example.com/u/tok123>"
ADDRESS = "Jl. Sudirman 52, Jakarta 12190"


def mail(**changes) -> OutgoingMessage:
    fields = {
        "message_key": "cadence:webinar:c1/invite/1",
        "channel": "email",
        "to": "dewi@example.id",
        "subject": "You're invited: tax webinar",
        "text": "Join us on 3 December.",
        "html": "<html><body><p>Join us on <b>3 December</b>.</p></body></html>",
        "from_name": "Acme Tax",
        "headers": {"List-Unsubscribe": UNSUBSCRIBE, "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"},
        "metadata": {"cadence": "webinar", "step": "invite", "variant": "a"},
    }
    fields.update(changes)
    return OutgoingMessage(**fields)


def sendgrid(prism, api_key: str = "SG.test-key", **options) -> SendGridEmailChannel:
    return SendGridEmailChannel(
        api_key,
        from_email="news@acme.example.com",
        sender_name="Acme Tax",
        sender_address=ADDRESS,
        host=prism.url,
        timeout=10,
        **options,
    )


async def test_sendgrid_mail_with_all_headers_is_accepted(prism_sendgrid):
    channel = sendgrid(prism_sendgrid, asm_group_id=4242)
    body = channel.request_body(mail())
    assert body["headers"]["List-Unsubscribe"] == UNSUBSCRIBE
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert body["personalizations"][0]["custom_args"]["message_key"] == "cadence:webinar:c1/invite/1"
    assert set(body["categories"]) == {"cadence:webinar", "step:webinar/invite", "variant:webinar/invite/a"}
    assert body["asm"] == {"group_id": 4242}
    assert body["from"] == {"email": "news@acme.example.com", "name": "Acme Tax"}
    types = [part["type"] for part in body["content"]]
    assert types == ["text/plain", "text/html"]
    assert all(ADDRESS in part["value"] for part in body["content"])  # postal address in both parts
    receipt = await channel.send(mail())
    assert receipt.provider == "sendgrid" and receipt.status == "sent"


async def test_sendgrid_invalid_request_is_refused_by_the_spec(prism_sendgrid):
    """Proves the check is live: no bearer token at all is refused as the spec's security scheme says."""
    channel = sendgrid(prism_sendgrid, api_key="")
    channel.client.client.request_headers.pop("Authorization", None)
    with pytest.raises(ConfigurationError, match="SENDGRID_API_KEY"):
        await channel.send(mail())


async def test_sendgrid_malformed_body_is_refused_by_the_spec(prism_sendgrid):
    channel = sendgrid(prism_sendgrid)
    body = channel.request_body(mail())
    del body["from"]  # required by the spec
    with pytest.raises(Exception) as refused:
        channel.client.send(body)
    assert getattr(refused.value, "status_code", None) == 400


async def test_sendgrid_500_is_retryable(prism_sendgrid):
    channel = sendgrid(prism_sendgrid)
    channel.client.client.request_headers["Prefer"] = "code=500"  # Prism answers the spec's 500 example
    with pytest.raises(RetryableSendError) as failed:
        await channel.send(mail())
    assert failed.value.code == "provider_unavailable"


@pytest.mark.parametrize(
    ("field", "value"),
    [("subject", "Hello\r\nBcc: victim@example.com"), ("from_name", "Acme\nBcc: x@example.com")],
)
async def test_header_injection_is_refused_before_sending(prism_sendgrid, smtp_server, field, value):
    for channel in (sendgrid(prism_sendgrid), smtp(smtp_server)):
        with pytest.raises(PermanentSendError) as refused:
            await channel.send(mail(**{field: value}))
        assert refused.value.code == "header_injection"
    assert smtp_server.inbox.messages == []


def smtp(server, **options) -> SmtpEmailChannel:
    return SmtpEmailChannel(
        server.url, from_email="news@acme.example.com", sender_name="Acme Tax", sender_address=ADDRESS, **options
    )


async def test_smtp_delivers_unsubscribe_headers_and_both_parts(smtp_server):
    receipt = await smtp(smtp_server).send(mail())
    assert receipt.provider == "smtp"
    [(mail_from, rcpt_tos, raw)] = smtp_server.inbox.messages
    assert mail_from == "news@acme.example.com" and rcpt_tos == ["dewi@example.id"]
    received = email.message_from_bytes(raw, policy=default_policy)
    assert received["List-Unsubscribe"] == UNSUBSCRIBE
    assert received["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert received["X-Omnireach-Message-Key"] == "cadence:webinar:c1/invite/1"
    assert received["From"] == "Acme Tax <news@acme.example.com>"
    assert received["Message-ID"] == receipt.provider_message_id
    assert received.get_content_type() == "multipart/alternative"
    text = received.get_body(("plain",)).get_content()
    html = received.get_body(("html",)).get_content()
    assert "Join us on 3 December." in text and ADDRESS in text
    assert "<b>3 December</b>" in html and ADDRESS in html


async def test_smtp_same_message_id_on_resend(smtp_server):
    """A resend after a crash carries the same Message-ID, so receivers can drop the duplicate."""
    first = await smtp(smtp_server).send(mail())
    second = await smtp(smtp_server).send(mail())
    assert first.provider_message_id == second.provider_message_id


async def test_smtp_refused_recipient_is_unusable_and_bad_address_never_sent(smtp_server):
    smtp_server.inbox.refuse.add("gone@example.id")
    with pytest.raises(AddressUnusable, match="550"):
        await smtp(smtp_server).send(mail(to="gone@example.id"))
    with pytest.raises(AddressUnusable):
        await smtp(smtp_server).send(mail(to="dewi@example.id\r\nBcc: x@example.com"))
    assert smtp_server.inbox.messages == []


async def test_smtp_unreachable_relay_is_retryable():
    from tests.channels.conftest import free_port

    channel = SmtpEmailChannel(
        f"smtp+plain://127.0.0.1:{free_port()}", from_email="a@acme.example.com", sender_name="A", sender_address="x"
    )
    with pytest.raises(RetryableSendError):
        await channel.send(mail())


def test_smtp_url_forms():
    assert parse_smtp_url("smtp://u%40x:p%2Fw@mail.example.com").port == 587
    target = parse_smtp_url("smtps://u:p@mail.example.com")
    assert (target.mode, target.port, target.username) == ("tls", 465, "u")
    assert parse_smtp_url("smtp+plain://relay:2525").mode == "plain"
    with pytest.raises(ValueError, match="OMNIREACH_SMTP_URL"):
        parse_smtp_url("http://mail.example.com")
