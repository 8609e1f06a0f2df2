"""What every channel adapter takes, returns and raises. Adapters know nothing of Temporal or the DB."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class OutgoingMessage:
    """One rendered message for one address, keyed by the idempotency key of its outbox row."""

    message_key: str
    channel: str  # email | sms | whatsapp | voice
    to: str
    text: str
    subject: str | None = None
    html: str | None = None
    from_name: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)  # cadence, step, variant: for categories / tags
    template_sid: str | None = None  # WhatsApp approved template (ContentSid) outside the 24h window
    template_variables: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SendReceipt:
    provider: str
    provider_message_id: str
    status: str = "sent"
    segments: int | None = None
    encoding: str | None = None


class SendError(Exception):
    """Base of the errors channels raise; activities translate them (DESIGN.md convention 5)."""

    code: str = "send_error"

    def __init__(self, message: str, *, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


class PermanentSendError(SendError):
    code = "permanent"


class RecipientOptedOut(PermanentSendError):
    code = "recipient_opted_out"


class AddressUnusable(PermanentSendError):
    code = "address_unusable"


class ConfigurationError(PermanentSendError):
    code = "configuration"


class RetryableSendError(SendError):
    code = "retryable"

    def __init__(self, message: str, *, retry_after: float | None = None, code: str | None = None):
        super().__init__(message, code=code)
        self.retry_after = retry_after


class Channel(Protocol):
    name: str  # the provider's name, shown in logs and the outbox

    async def send(self, message: OutgoingMessage) -> SendReceipt: ...

    async def lookup(self, message_key: str) -> SendReceipt | None:
        """What the provider knows of a message we may have sent before a crash (None: never sent)."""
        ...
