"""What every email adapter (SendGrid, SMTP) sends the same way: parts, headers, footer, categories.

Header values come from templates and contact data, so each one is checked for CR / LF / NUL before it is
used: a line break in a subject or name could otherwise add headers (mail header injection).
"""

from __future__ import annotations

import hashlib
import html as html_lib
from dataclasses import dataclass

from channels.base import AddressUnusable, OutgoingMessage, PermanentSendError
from core.addresses import AddressError, normalize_email

MESSAGE_KEY_HEADER = "X-Omnireach-Message-Key"
MAX_CATEGORIES = 10


def safe_header(name: str, value: str) -> str:
    """``value`` when it is one line; PermanentSendError naming the header otherwise."""
    if any(ch in value for ch in "\r\n\0"):
        raise PermanentSendError(
            f"email header {name} contains a line break; it could inject headers: fix the template or data",
            code="header_injection",
        )
    return value


def recipient(address: str) -> str:
    """The normalised recipient; AddressUnusable for anything that is not one plain address."""
    try:
        return normalize_email(address)
    except AddressError as exc:
        raise AddressUnusable(str(exc)) from None


@dataclass(frozen=True)
class EmailParts:
    """One email as both adapters send it."""

    to: str
    subject: str
    text: str
    html: str | None
    from_email: str
    from_name: str | None
    headers: dict[str, str]
    categories: list[str]
    custom_args: dict[str, str]

    @property
    def message_id(self) -> str:
        """A Message-ID derived from our key: a resend after a crash carries the same id (receivers dedupe)."""
        digest = hashlib.sha256(self.custom_args["message_key"].encode()).hexdigest()[:32]
        return f"<{digest}@{self.from_email.rpartition('@')[2]}>"


def with_footer(text: str, html: str | None, name: str, address: str) -> tuple[str, str | None]:
    """Both parts end with the sender's name and postal address unless the template already shows it."""
    if address and address not in text:
        text = f"{text.rstrip()}\n\n--\n{name}\n{address}\n"
    if html is not None and address and html_lib.escape(address) not in html and address not in html:
        footer = f'<p style="color:#666;font-size:12px">{html_lib.escape(name)}<br>{html_lib.escape(address)}</p>'
        html = html.replace("</body>", footer + "</body>") if "</body>" in html else html + footer
    return text, html


def build_parts(message: OutgoingMessage, *, from_email: str, sender_name: str, sender_address: str) -> EmailParts:
    """Check and assemble an email: one-line headers, a real recipient, text (+ HTML) with the postal footer."""
    if not message.subject:
        raise PermanentSendError("email has no subject: add email.subject.j2", code="subject_missing")
    from_name = message.from_name or sender_name
    headers = {safe_header(k, k): safe_header(k, v) for k, v in message.headers.items()}
    headers[MESSAGE_KEY_HEADER] = safe_header(MESSAGE_KEY_HEADER, message.message_key)
    text, html = with_footer(message.text, message.html, from_name, sender_address)
    cadence, step = message.metadata.get("cadence", ""), message.metadata.get("step", "")
    categories = [c for c in (f"cadence:{cadence}" if cadence else "", f"step:{cadence}/{step}" if step else "") if c]
    if message.metadata.get("variant"):
        categories.append(f"variant:{cadence}/{step}/{message.metadata['variant']}")
    custom_args = {"message_key": message.message_key}
    custom_args.update({k: v for k, v in message.metadata.items() if v and k in ("cadence", "step", "variant")})
    return EmailParts(
        to=recipient(message.to),
        subject=safe_header("Subject", message.subject),
        text=text,
        html=html,
        from_email=safe_header("From", from_email),
        from_name=safe_header("From name", from_name) if from_name else None,
        headers=headers,
        categories=[c[:255] for c in categories][:MAX_CATEGORIES],
        custom_args=custom_args,
    )
