"""Email through SendGrid's v3 Mail Send with the official ``sendgrid`` SDK.

Each mail carries the RFC 8058 one-click unsubscribe headers, our message key in ``custom_args`` (events are
correlated by it, never by address), categories per cadence and step, the ASM unsubscribe group when one is
configured, a text part and (when the template has one) an HTML part, and the sender's name and postal
address. ``SendGridAPIClient(host=...)`` redirects the API (OMNIREACH_SENDGRID_HOST).

A 202 means queued, not delivered: the event webhook moves the outbox status on from "sent".
"""

from __future__ import annotations

import json
import urllib.error
from datetime import datetime

from python_http_client import exceptions as http_errors
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Asm, Category, CustomArg, From, GroupId, Header, HtmlContent, Mail, To

from channels.base import (
    AddressUnusable,
    ConfigurationError,
    OutcomeUnknown,
    OutgoingMessage,
    PermanentSendError,
    RetryableSendError,
    SendError,
    SendReceipt,
)
from channels.blocking import executor, run_blocking
from channels.email_parts import EmailParts, build_parts
from channels.ratelimit import Pace, pace
from channels.twilio_common import retry_after_seconds

DEFAULT_HOST = "https://api.sendgrid.com"


def build_mail(parts: EmailParts, asm_group_id: int | None) -> Mail:
    """The SDK's Mail object for ``parts`` (custom_args go in the personalization: an object there)."""
    mail = Mail(
        from_email=From(parts.from_email, parts.from_name),
        to_emails=To(parts.to),
        subject=parts.subject,
        plain_text_content=parts.text,
    )
    if parts.html:
        mail.content = HtmlContent(parts.html)
    mail.header = [Header(k, v) for k, v in parts.headers.items()]
    if parts.categories:
        mail.category = [Category(c) for c in parts.categories]
    for key, value in parts.custom_args.items():
        mail.custom_arg = CustomArg(key, value, p=0)
    if asm_group_id:
        mail.asm = Asm(GroupId(asm_group_id))
    return mail


def map_sendgrid_error(exc: http_errors.HTTPError) -> SendError:
    """A Mail Send error response as a domain error."""
    status = int(exc.status_code)
    try:
        errors = json.loads(exc.body or b"{}").get("errors") or []
    except (ValueError, AttributeError):
        errors = []
    detail = "; ".join(
        f"{e.get('field') or ''} {e.get('message') or ''}".strip() for e in errors if isinstance(e, dict)
    )
    text = f"sendgrid HTTP {status}: {detail or exc.reason}"
    headers = exc.headers or {}
    if status == 429:
        return RetryableSendError(
            text, retry_after=retry_after_seconds(headers.get("Retry-After")), code="rate_limited"
        )
    if status >= 500:
        return RetryableSendError(text, code="provider_unavailable")
    if status in (401, 403):
        return ConfigurationError(text + " (check SENDGRID_API_KEY and the verified sender OMNIREACH_EMAIL_FROM)")
    if any(str(e.get("field", "")).startswith("personalizations.0.to") for e in errors if isinstance(e, dict)):
        return AddressUnusable(text)
    return PermanentSendError(text, code="provider_rejected")


class SendGridEmailChannel:
    """One SendGrid sender (OMNIREACH_EMAIL_FROM)."""

    name = "sendgrid"

    def __init__(
        self,
        api_key: str,
        *,
        from_email: str,
        sender_name: str,
        sender_address: str,
        host: str | None = None,
        asm_group_id: int | None = None,
        timeout: float = 15.0,
        rate: float = 0.0,
    ):
        self.client = SendGridAPIClient(api_key=api_key, host=(host or DEFAULT_HOST).rstrip("/"))
        self.client.client.timeout = timeout
        executor()  # warm the SDK thread pool at start-up
        self.from_email = from_email
        self.sender_name = sender_name
        self.sender_address = sender_address
        self.asm_group_id = asm_group_id
        self.rate = rate

    def pace(self, message: OutgoingMessage) -> Pace | None:
        return pace(f"sendgrid:{self.from_email}", 1, self.rate)

    def request_body(self, message: OutgoingMessage) -> dict:
        """The JSON body Mail Send receives for ``message``."""
        parts = build_parts(
            message, from_email=self.from_email, sender_name=self.sender_name, sender_address=self.sender_address
        )
        return build_mail(parts, self.asm_group_id).get()

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        body = self.request_body(message)

        def attempt():
            try:
                return self.client.send(body)
            except http_errors.HTTPError as exc:
                raise map_sendgrid_error(exc) from None
            except urllib.error.URLError as exc:  # refused, DNS, connect timeout: nothing was sent
                raise RetryableSendError(
                    f"sendgrid: could not connect ({exc.reason})", code="provider_unreachable"
                ) from None
            except (TimeoutError, ConnectionError) as exc:
                raise OutcomeUnknown(f"sendgrid: no answer ({type(exc).__name__}); it may have been accepted") from None

        response = await run_blocking(attempt, departure=True)
        message_id = response.headers.get("X-Message-Id") if response.headers else None
        return SendReceipt(self.name, message_id or f"sendgrid:{message.message_key}", "sent")

    async def lookup(self, message_key: str) -> SendReceipt | None:
        return None  # see reconcile()

    async def reconcile(self, message: OutgoingMessage, since: datetime) -> SendReceipt | None:
        """Mail Send has no look-up by our key: the event webhook (custom_args) will tell."""
        raise OutcomeUnknown("SendGrid cannot be asked about one message; its events will confirm it")
