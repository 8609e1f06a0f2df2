"""Signed provider callbacks for the webhook tests: Twilio requests signed by the official twilio package's
RequestValidator, SendGrid batches signed with a freshly generated ECDSA P-256 key pair."""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from core.settings import Settings
from store.models import ConsentRecord, Contact
from store.permission_models import InboundMessage, WebhookReceipt
from tests.api.conftest import ADMIN_KEY, Api

PUBLIC_URL = "https://hooks.omnireach.test"
TWILIO_TOKEN = "twilio-test-auth-token-0123456789"
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(
    SENDGRID_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
).decode()

SMS_CADENCE = """\
id: sms-nurture
name: SMS nurture
purpose: marketing
exit_on: [replied]
steps:
  - id: hello
    send: sms
    message: hello
  - wait: 3d
  - id: bye
    send: sms
    message: hello
"""
EMAIL_CADENCE = """\
id: email-nurture
name: Email nurture
purpose: marketing
steps:
  - id: hello
    send: email
    message: hello
  - wait: 3d
  - id: bye
    send: email
    message: hello
"""
TEMPLATES = {
    "hello/sms.j2": "Hi {{ contact.name }}, our webinar starts soon. Reply STOP to opt out",
    "hello/email.subject.j2": "Hello {{ contact.name }}",
    "hello/email.txt.j2": "Hi {{ contact.name }}.\n{{ sender.name }}, {{ sender.address }}\n"
    "Unsubscribe: {{ unsubscribe_url }}\n",
}


def write_project(root: Path) -> Path:
    (root / "cadences").mkdir()
    (root / "cadences" / "sms-nurture.yaml").write_text(SMS_CADENCE, encoding="utf-8")
    (root / "cadences" / "email-nurture.yaml").write_text(EMAIL_CADENCE, encoding="utf-8")
    for name, text in TEMPLATES.items():
        path = root / "templates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def webhook_settings(project: Path, **extra: object) -> Settings:
    return Settings(
        database_url=f"sqlite:///{project / 'var' / 'omnireach.db'}",
        admin_api_key=ADMIN_KEY,
        task_queue=f"webhook-tests-{uuid.uuid4().hex[:8]}",
        secret_key="test-secret",
        var_dir=project / "var",
        public_url=PUBLIC_URL,
        twilio_auth_token=TWILIO_TOKEN,
        sendgrid_webhook_public_key=SENDGRID_PUBLIC,
        sender_name="Acme Tax",
        **extra,
    )


def sid() -> str:
    return "SM" + uuid.uuid4().hex


async def twilio_post(
    api: Api, path: str, params: dict[str, str], *, token: str = TWILIO_TOKEN, signature: str | None = None
) -> httpx.Response:
    """POST a form to our webhook as Twilio would: signed over the public URL and the parameters."""
    url = PUBLIC_URL + path
    if signature is None:
        signature = RequestValidator(token).compute_signature(url, params)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": signature}
    if signature == "":
        headers.pop("X-Twilio-Signature")
    return await api.http.post(path, content=urlencode(params), headers=headers)


def inbound(frm: str, body: str, message_sid: str | None = None, to: str = "+15005550006") -> dict[str, str]:
    return {
        "MessageSid": message_sid or sid(),
        "AccountSid": "AC" + "0" * 32,
        "From": frm,
        "To": to,
        "Body": body,
        "NumMedia": "0",
    }


def sendgrid_headers(body: bytes, *, key: ec.EllipticCurvePrivateKey = SENDGRID_KEY, age: float = 0) -> dict:
    stamp = str(int(time.time() - age))
    signature = base64.b64encode(key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": signature,
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
    }


async def sendgrid_post(api: Api, events: list[dict], **kw) -> httpx.Response:
    body = json.dumps(events).encode()
    return await api.http.post("/webhooks/sendgrid/events", content=body, headers=sendgrid_headers(body, **kw))


def counts(api: Api) -> tuple[int, int, int]:
    """(consent records, inbound messages, webhook receipts): what a refused request must not change."""
    with api.sessions() as session:
        return (
            session.scalar(select(func.count()).select_from(ConsentRecord)) or 0,
            session.scalar(select(func.count()).select_from(InboundMessage)) or 0,
            session.scalar(select(func.count()).select_from(WebhookReceipt)) or 0,
        )


def consent_rows(api: Api, contact_id: str, channel: str | None = None) -> list[ConsentRecord]:
    with api.sessions() as session:
        query = select(ConsentRecord).where(ConsentRecord.contact_id == contact_id)
        if channel:
            query = query.where(ConsentRecord.channel == channel)
        rows = list(session.scalars(query.order_by(ConsentRecord.id)))
        session.expunge_all()
        return rows


def contact_row(api: Api, contact_id: str) -> Contact:
    with api.sessions() as session:
        row = session.get(Contact, contact_id)
        assert row is not None
        session.expunge(row)
        return row


async def grant(api: Api, contact_id: str, channel: str, purpose: str = "marketing") -> None:
    response = await api.post(
        f"/v1/contacts/{contact_id}/consents",
        {
            "channel": channel,
            "purpose": purpose,
            "status": "granted",
            "method": "web_form",
            "source": "https://example.com/signup",
            "notice_text": f"You may send me {purpose} messages by {channel}.",
            "ip": "203.0.113.7",
        },
    )
    assert response.status_code == 201, response.text


def phone(prefix: str = "+447911", digits: int = 6) -> str:
    """A fresh valid mobile number (each test its own, so tests sharing a database stay apart)."""
    import random

    from core.addresses import AddressError, normalize_phone

    for _ in range(1000):
        candidate = prefix + "".join(random.choice("0123456789") for _ in range(digits))
        try:
            return normalize_phone(candidate, None)
        except AddressError:
            continue
    raise AssertionError(f"no valid number with prefix {prefix}")


def consent_in_force(api: Api, contact_id: str, channel: str) -> dict[str, str]:
    """The consent in force per purpose, as every send judges it (the latest record by occurred_at)."""
    from store.repos.consent import consent_overview

    with api.sessions() as session:
        overview = consent_overview(session, contact_id)
    return {purpose: state.status for (ch, purpose), state in overview.items() if ch == channel}
