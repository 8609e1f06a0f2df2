"""SMS through Twilio's Messages API with the official SDK.

Exactly one of MessagingServiceSid (preferred: Twilio picks the number and handles opt-outs per service) or
From; always Body (never ContentSid or MediaUrl); To in strict E.164; a StatusCallback carrying our message
key. Each receipt records the GSM-7 / UCS-2 encoding, the segment count and a cost estimate.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from twilio.rest import Client

from channels.base import AddressUnusable, OutgoingMessage, PermanentSendError, SendReceipt
from channels.ratelimit import Pace, pace
from channels.twilio_common import RedirectingHttpClient, run, status_callback
from core.addresses import AddressError, normalize_phone
from core.sms import SMS_MAX_BODY, segment_info

# Twilio answers Messages list calls newest first; a reconcile looks at this many recent messages to one number.
RECONCILE_LOOKBACK = 20
CLOCK_SKEW = timedelta(minutes=2)


def strict_e164(number: str, what: str = "To") -> str:
    """``number`` when it already is E.164 (what Twilio expects); AddressUnusable otherwise."""
    try:
        normal = normalize_phone(number, None)
    except AddressError as exc:
        raise AddressUnusable(f"{what} {exc}") from None
    if normal != number:
        raise AddressUnusable(f"{what} {number!r} is not in E.164 form (expected {normal})")
    return normal


class TwilioSmsChannel:
    """One SMS sender: a messaging service or a from number, paced at ``rate`` segments per second."""

    name = "twilio-sms"

    def __init__(
        self,
        client: Client,
        *,
        messaging_service_sid: str | None = None,
        from_number: str | None = None,
        public_url: str,
        rate: float = 1.0,
        segment_price: float | None = None,
    ):
        if not messaging_service_sid and not from_number:
            raise ValueError("set TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER for SMS")
        self.client = client
        self.http: RedirectingHttpClient = client.http_client  # type: ignore[assignment]
        client.messages  # noqa: B018  # the SDK imports this API lazily (~0.1 s): at start-up, not in a paced send
        self.messaging_service_sid = messaging_service_sid or None
        self.from_number = None if self.messaging_service_sid else strict_e164(from_number or "", "TWILIO_FROM_NUMBER")
        self.public_url = public_url
        self.rate = rate
        self.segment_price = segment_price

    @property
    def sender(self) -> str:
        return f"twilio:{self.messaging_service_sid or self.from_number}"

    def pace(self, message: OutgoingMessage) -> Pace | None:
        """A long code sends one *segment* per second: a 3-part message uses three seconds of the sender."""
        return pace(self.sender, segment_info(message.text).segments, self.rate)

    def request(self, message: OutgoingMessage) -> dict:
        """The Messages.create parameters for ``message`` (checked: the "one of" rules the API spec can't express)."""
        if len(message.text) > SMS_MAX_BODY:
            raise PermanentSendError(
                f"SMS body has {len(message.text)} characters; Twilio accepts at most {SMS_MAX_BODY}: shorten the "
                "template",
                code="body_too_long",
            )
        if not message.text.strip():
            raise PermanentSendError("SMS body is empty: check the template", code="body_empty")
        params: dict = {
            "to": strict_e164(message.to),
            "body": message.text,
            "status_callback": status_callback(self.public_url, message.message_key),
        }
        if self.messaging_service_sid:
            params["messaging_service_sid"] = self.messaging_service_sid
        else:
            params["from_"] = self.from_number
        return params

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        params = self.request(message)
        info = segment_info(message.text)
        created = await run(self.http, lambda: self.client.messages.create(**params), "send SMS", departure=True)
        cost = round(info.segments * self.segment_price, 6) if self.segment_price is not None else None
        return SendReceipt(self.name, created.sid or "", created.status or "queued", info.segments, info.encoding, cost)

    async def lookup(self, message_key: str) -> SendReceipt | None:
        return None  # Twilio cannot be searched by our key; the deliver activity uses reconcile()

    async def reconcile(self, message: OutgoingMessage, since: datetime) -> SendReceipt | None:
        """The message Twilio holds for this recipient, body and sender since ``since``, or None."""
        to = strict_e164(message.to)
        found = await run(self.http, lambda: self.client.messages.list(to=to, limit=RECONCILE_LOOKBACK), "look up SMS")
        for item in found:
            if item.date_created and item.date_created < since - CLOCK_SKEW:
                continue
            ours = (
                item.messaging_service_sid == self.messaging_service_sid
                if self.messaging_service_sid
                else item.from_ == self.from_number
            )
            if ours and (item.body or "") == message.text:
                info = segment_info(message.text)
                return SendReceipt(self.name, item.sid or "", item.status or "sent", info.segments, info.encoding)
        return None
