"""Email over SMTP for self-hosters (OMNIREACH_SMTP_URL), with the same headers and parts as SendGrid.

``smtp://user:pass@host:587`` (STARTTLS when the server offers it), ``smtps://...:465`` (implicit TLS) or
``smtp+plain://host:25`` (never upgrade; local relays and tests). The standard library's smtplib runs in a
worker thread; ``email.message.EmailMessage`` with the SMTP policy refuses header values with line breaks,
and our own check (channels.email_parts) refuses them before that with a clearer message.
"""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from urllib.parse import unquote, urlsplit

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
from channels.blocking import run_blocking
from channels.email_parts import EmailParts, build_parts
from channels.ratelimit import Pace, pace


@dataclass(frozen=True)
class SmtpTarget:
    host: str
    port: int
    mode: str  # starttls | tls | plain
    username: str | None
    password: str | None


def parse_smtp_url(url: str) -> SmtpTarget:
    """OMNIREACH_SMTP_URL -> where and how to connect; ValueError naming the problem."""
    parts = urlsplit(url)
    modes = {"smtp": ("starttls", 587), "smtps": ("tls", 465), "smtp+plain": ("plain", 25)}
    if parts.scheme not in modes or not parts.hostname:
        raise ValueError(
            f"OMNIREACH_SMTP_URL {parts.scheme or '?'}://... is not understood; use smtp://user:pass@host:587, "
            "smtps://user:pass@host:465 or smtp+plain://host:25"
        )
    mode, default_port = modes[parts.scheme]
    return SmtpTarget(
        host=parts.hostname,
        port=parts.port or default_port,
        mode=mode,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def build_message(parts: EmailParts) -> EmailMessage:
    """A multipart/alternative message (text, then HTML) with our headers."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = formataddr((parts.from_name or "", parts.from_email))
    msg["To"] = parts.to
    msg["Subject"] = parts.subject
    msg["Date"] = format_datetime(datetime.now().astimezone())
    msg["Message-ID"] = parts.message_id
    for name, value in parts.headers.items():
        msg[name] = value
    msg.set_content(parts.text)
    if parts.html:
        msg.add_alternative(parts.html, subtype="html")
    return msg


def map_smtp_error(exc: smtplib.SMTPException) -> SendError:
    """smtplib's failures as domain errors (4xx replies are temporary, 5xx permanent)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reply = next(iter(exc.recipients.values()))
        text = f"smtp {code}: {reply.decode(errors='replace') if isinstance(reply, bytes) else reply}"
        return RetryableSendError(text, code="smtp_temporary") if 400 <= code < 500 else AddressUnusable(text)
    if isinstance(exc, smtplib.SMTPAuthenticationError | smtplib.SMTPSenderRefused | smtplib.SMTPNotSupportedError):
        return ConfigurationError(f"smtp: {exc} (check OMNIREACH_SMTP_URL and OMNIREACH_EMAIL_FROM)")
    code = getattr(exc, "smtp_code", 0) or 0
    if 400 <= code < 500 or isinstance(exc, smtplib.SMTPConnectError):
        return RetryableSendError(f"smtp: {exc}", code="smtp_temporary")
    return PermanentSendError(f"smtp: {exc}", code="provider_rejected")


class SmtpEmailChannel:
    """An SMTP relay."""

    name = "smtp"

    def __init__(
        self,
        url: str,
        *,
        from_email: str,
        sender_name: str,
        sender_address: str,
        timeout: float = 15.0,
        rate: float = 0.0,
    ):
        self.target = parse_smtp_url(url)
        self.from_email = from_email
        self.sender_name = sender_name
        self.sender_address = sender_address
        self.timeout = timeout
        self.rate = rate

    def pace(self, message: OutgoingMessage) -> Pace | None:
        return pace(f"smtp:{self.target.host}:{self.from_email}", 1, self.rate)

    def build(self, message: OutgoingMessage) -> EmailMessage:
        parts = build_parts(
            message, from_email=self.from_email, sender_name=self.sender_name, sender_address=self.sender_address
        )
        return build_message(parts)

    def _connect(self) -> smtplib.SMTP:
        t = self.target
        if t.mode == "tls":
            server: smtplib.SMTP = smtplib.SMTP_SSL(
                t.host, t.port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            server = smtplib.SMTP(t.host, t.port, timeout=self.timeout)
            if t.mode == "starttls":
                server.ehlo()
                if server.has_extn("starttls"):
                    server.starttls(context=ssl.create_default_context())
                    server.ehlo()
        if t.username:
            server.login(t.username, t.password or "")
        return server

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        email = self.build(message)

        def attempt() -> None:
            try:
                server = self._connect()
            except smtplib.SMTPException as exc:
                raise map_smtp_error(exc) from None
            except OSError as exc:  # refused, DNS, connect timeout: nothing was sent
                raise RetryableSendError(f"smtp: could not connect ({exc})", code="provider_unreachable") from None
            try:
                with server:
                    server.send_message(email)
            except (smtplib.SMTPRecipientsRefused, smtplib.SMTPSenderRefused) as exc:
                raise map_smtp_error(exc) from None
            except smtplib.SMTPDataError as exc:
                raise map_smtp_error(exc) from None
            except (TimeoutError, smtplib.SMTPServerDisconnected, OSError) as exc:
                raise OutcomeUnknown(
                    f"smtp: connection lost during the send ({exc}); it may have been accepted"
                ) from None

        await run_blocking(attempt, departure=True)
        return SendReceipt(self.name, str(email["Message-ID"]), "sent")

    async def lookup(self, message_key: str) -> SendReceipt | None:
        return None  # see reconcile()

    async def reconcile(self, message: OutgoingMessage, since: datetime) -> SendReceipt | None:
        """An SMTP relay cannot be asked; a resend would carry the same Message-ID, but we do not risk it."""
        raise OutcomeUnknown("an SMTP relay cannot be asked whether it accepted a message")
