"""What every channel adapter takes, returns and raises. Adapters know nothing of Temporal or the DB."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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
    cost_estimate: float | None = None  # USD, when the adapter can estimate it (SMS: segments x price)


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


class RecipientBlocked(PermanentSendError):
    """The recipient blocked us on this channel (WhatsApp 63014): stop using the channel for them."""

    code = "recipient_blocked"


class TemplateRequired(PermanentSendError):
    """Free-form WhatsApp refused outside the 24h session (63016): only an approved template may go."""

    code = "whatsapp_template_required"


class OutcomeUnknown(SendError):
    """The request left but no answer came (read timeout): it may have been accepted. Reconcile, never resend."""

    code = "outcome_unknown"


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


class Reconciler(Protocol):
    """Adapters that can ask their provider whether a message went out (after a timeout or a crash).

    ``reconcile`` returns the receipt when the provider has the message, None when it certainly has not,
    and raises OutcomeUnknown when the provider cannot tell (the caller then must not resend).
    """

    async def reconcile(self, message: OutgoingMessage, since: datetime) -> SendReceipt | None: ...
