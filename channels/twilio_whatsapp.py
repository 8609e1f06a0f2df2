"""WhatsApp through Twilio's Messages API with the official SDK.

To and From are ``whatsapp:+E164``. Inside the 24h session (the contact wrote to us recently) a free-form
Body goes; outside it only an approved template: ContentSid + ContentVariables (JSON, at most 100), never
together with Body. The deliver activity decides which (OutgoingMessage.template_sid); this adapter refuses a
message that breaks the rules instead of letting WhatsApp bounce it later.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

from twilio.rest import Client

from channels.base import OutgoingMessage, PermanentSendError, SendReceipt
from channels.ratelimit import Pace, pace
from channels.twilio_common import RedirectingHttpClient, run, status_callback
from channels.twilio_sms import strict_e164

PREFIX = "whatsapp:"
CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
MAX_VARIABLES = 100
MAX_BODY = 1600
RECONCILE_LOOKBACK = 20
CLOCK_SKEW = timedelta(minutes=2)


def whatsapp_to(number: str, what: str = "To") -> str:
    """``+62812...`` or ``whatsapp:+62812...`` -> ``whatsapp:+62812...`` (the number must be E.164)."""
    bare = number[len(PREFIX) :] if number.lower().startswith(PREFIX) else number
    return PREFIX + strict_e164(bare.strip(), what)


class TwilioWhatsAppChannel:
    """One WhatsApp sender (TWILIO_WHATSAPP_FROM), paced at ``rate`` messages per second."""

    name = "twilio-whatsapp"

    def __init__(self, client: Client, *, from_number: str, public_url: str, rate: float = 80.0):
        self.client = client
        self.http: RedirectingHttpClient = client.http_client  # type: ignore[assignment]
        client.messages  # noqa: B018  # the SDK imports this API lazily (~0.1 s): at start-up, not in a paced send
        self.from_ = whatsapp_to(from_number, "TWILIO_WHATSAPP_FROM")
        self.public_url = public_url
        self.rate = rate

    def pace(self, message: OutgoingMessage) -> Pace | None:
        return pace(f"twilio:{self.from_}", 1, self.rate)

    def request(self, message: OutgoingMessage) -> dict:
        """Messages.create parameters: Body (free-form) xor ContentSid + ContentVariables (template)."""
        params: dict = {
            "to": whatsapp_to(message.to),
            "from_": self.from_,
            "status_callback": status_callback(self.public_url, message.message_key),
        }
        if message.template_sid:
            if not CONTENT_SID.match(message.template_sid):
                raise PermanentSendError(
                    f"WhatsApp content_sid {message.template_sid!r} is not a Twilio Content SID (HX + 32 hex "
                    "digits): fix whatsapp.yaml",
                    code="whatsapp_bad_template",
                )
            if len(message.template_variables) > MAX_VARIABLES:
                raise PermanentSendError(
                    f"WhatsApp template has {len(message.template_variables)} variables; at most {MAX_VARIABLES}",
                    code="whatsapp_bad_template",
                )
            params["content_sid"] = message.template_sid
            if message.template_variables:
                params["content_variables"] = json.dumps(
                    {str(k): str(v) for k, v in message.template_variables.items()}, ensure_ascii=False
                )
            return params
        if not message.text.strip():
            raise PermanentSendError("WhatsApp body is empty: check the template", code="body_empty")
        if len(message.text) > MAX_BODY:
            raise PermanentSendError(
                f"WhatsApp body has {len(message.text)} characters; at most {MAX_BODY}", code="body_too_long"
            )
        params["body"] = message.text
        return params

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        params = self.request(message)
        created = await run(self.http, lambda: self.client.messages.create(**params), "send WhatsApp", departure=True)
        return SendReceipt(self.name, created.sid or "", created.status or "queued")

    async def lookup(self, message_key: str) -> SendReceipt | None:
        return None  # see reconcile()

    async def reconcile(self, message: OutgoingMessage, since: datetime) -> SendReceipt | None:
        """A message from our sender to this number since ``since`` (same body when free-form), or None.

        A template message's stored body is Twilio's rendering, so only sender, recipient and time can match it.
        """
        to = whatsapp_to(message.to)
        found = await run(
            self.http,
            lambda: self.client.messages.list(to=to, from_=self.from_, limit=RECONCILE_LOOKBACK),
            "look up WhatsApp",
        )
        for item in found:
            if item.date_created and item.date_created < since - CLOCK_SKEW:
                continue
            if message.template_sid or (item.body or "") == message.text:
                return SendReceipt(self.name, item.sid or "", item.status or "sent")
        return None
