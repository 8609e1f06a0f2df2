"""A channel that hands each message to an HTTP endpoint (a CRM, a chat tool, an in-house gateway).

The message goes as JSON (httpx) with an HMAC-SHA256 signature so the receiver can check it came from us:

    X-Omnireach-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>." + raw body)>
    Idempotency-Key: <message key>

Receivers should verify the signature on the raw body, refuse timestamps older than 5 minutes and treat a
repeated Idempotency-Key as the same message: after a timeout we resend rather than lose a message, and the
key makes that resend harmless. Chosen per channel by OMNIREACH_WEBHOOK_URL + OMNIREACH_WEBHOOK_CHANNELS.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import datetime

import httpx

from channels.base import (
    ConfigurationError,
    OutgoingMessage,
    PermanentSendError,
    RetryableSendError,
    SendReceipt,
)
from channels.twilio_common import retry_after_seconds

SIGNATURE_HEADER = "X-Omnireach-Signature"
SIGNATURE_TOLERANCE_SECONDS = 300


def sign(secret: str, body: bytes, timestamp: int) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, body: bytes, header: str, now: float | None = None) -> bool:
    """Receiver side (and our tests): the signature matches and is at most 5 minutes old."""
    try:
        fields = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(fields["t"])
    except (ValueError, KeyError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    return hmac.compare_digest(sign(secret, body, timestamp), header)


def payload(message: OutgoingMessage) -> dict:
    """The JSON document the receiver gets."""
    return {
        "message_key": message.message_key,
        "channel": message.channel,
        "to": message.to,
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "from_name": message.from_name,
        "headers": message.headers,
        "metadata": message.metadata,
        "template_sid": message.template_sid,
        "template_variables": message.template_variables,
    }


class WebhookChannel:
    """POSTs signed JSON to one URL."""

    name = "webhook"

    def __init__(
        self, url: str, secret: str, *, timeout: float = 15.0, transport: httpx.AsyncBaseTransport | None = None
    ):
        if not secret:
            raise ValueError("the webhook channel needs OMNIREACH_SECRET_KEY to sign its requests")
        self.url = url
        self.secret = secret
        self.timeout = timeout
        self.transport = transport

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        body = json.dumps(payload(message), ensure_ascii=False, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": message.message_key,
            SIGNATURE_HEADER: sign(self.secret, body, int(time.time())),
            "User-Agent": "omnireach-webhook/1",
        }
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as client:
                response = await client.post(self.url, content=body, headers=headers)
        except httpx.TransportError as exc:
            # Resending is safe here: the receiver dedupes on Idempotency-Key.
            raise RetryableSendError(f"webhook {self.url}: {type(exc).__name__}", code="provider_unreachable") from None
        status = response.status_code
        if 200 <= status < 300:
            try:
                remote_id = str(response.json().get("id") or "")
            except (ValueError, AttributeError):
                remote_id = ""
            return SendReceipt(self.name, remote_id or f"webhook:{message.message_key}", "sent")
        text = f"webhook {self.url} answered HTTP {status}: {response.text[:200]}"
        if status == 429 or status >= 500:
            raise RetryableSendError(
                text, retry_after=retry_after_seconds(response.headers.get("Retry-After")), code="provider_unavailable"
            )
        if status in (401, 403):
            raise ConfigurationError(text + " (the receiver refused our signature: check OMNIREACH_SECRET_KEY)")
        raise PermanentSendError(text, code="provider_rejected")

    async def lookup(self, message_key: str) -> SendReceipt | None:
        return None  # a resend is deduplicated by the receiver (Idempotency-Key)

    async def reconcile(self, message: OutgoingMessage, since: datetime) -> SendReceipt | None:
        return None
