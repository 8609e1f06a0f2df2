"""Choose an adapter per channel from the settings (SPEC section 9); console when nothing is configured.

email: SendGrid (SENDGRID_API_KEY), else SMTP (OMNIREACH_SMTP_URL), else console.
sms / whatsapp / voice: Twilio when the account, token and that channel's sender are set, else console.
Any channel listed in OMNIREACH_WEBHOOK_CHANNELS goes to OMNIREACH_WEBHOOK_URL instead (an explicit choice).
One start-up line per channel says which provider it uses, and for the console how to go live.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from channels.base import Channel
from channels.console import ConsoleChannel
from core.settings import Settings

CHANNELS = ("email", "sms", "whatsapp", "voice")

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


def _mask(value: str) -> str:
    return value if len(value) <= 6 else value[:4] + "***" + value[-2:]


def choose_channels(settings: Settings | Path) -> list[ChannelChoice]:
    """An adapter for every channel. A bare Path (older callers) means: console everywhere, records there."""
    if isinstance(settings, Path):
        settings = Settings(var_dir=settings)
    console = ConsoleChannel(settings.var_dir / "console-outbox.jsonl")
    choices: list[ChannelChoice] = []
    for channel in CHANNELS:
        choice = _real(settings, channel)
        if choice is None:
            note = f"channel={channel} provider=console (set {REAL_SETTINGS[channel]} to send for real)"
            choice = ChannelChoice(channel, console, note)
        choices.append(choice)
    return choices


def _real(s: Settings, channel: str) -> ChannelChoice | None:
    if s.webhook_url and channel in s.webhook_channels:
        from channels.webhook import WebhookChannel

        adapter = WebhookChannel(s.webhook_url, s.secret_key, timeout=s.provider_timeout)
        return ChannelChoice(channel, adapter, f"channel={channel} provider=webhook url={s.webhook_url}")
    if channel == "email":
        return _email(s)
    if not (s.twilio_account_sid and s.twilio_auth_token):
        return None
    from channels.twilio_common import make_client

    def client():
        return make_client(s.twilio_account_sid or "", s.twilio_auth_token or "", s.twilio_base_url, s.provider_timeout)

    where = f" base_url={s.twilio_base_url}" if s.twilio_base_url else ""
    if channel == "sms" and (s.twilio_messaging_service_sid or s.twilio_from_number):
        from channels.twilio_sms import TwilioSmsChannel

        sms = TwilioSmsChannel(
            client(),
            messaging_service_sid=s.twilio_messaging_service_sid,
            from_number=s.twilio_from_number,
            public_url=s.public_url,
            rate=s.sms_rate,
            segment_price=s.sms_segment_price,
        )
        sender = _mask(s.twilio_messaging_service_sid or s.twilio_from_number or "")
        return ChannelChoice(channel, sms, f"channel=sms provider=twilio sender={sender} rate={s.sms_rate}/s{where}")
    if channel == "whatsapp" and s.twilio_whatsapp_from:
        from channels.twilio_whatsapp import TwilioWhatsAppChannel

        wa = TwilioWhatsAppChannel(
            client(), from_number=s.twilio_whatsapp_from, public_url=s.public_url, rate=s.whatsapp_rate
        )
        note = f"channel=whatsapp provider=twilio sender={_mask(s.twilio_whatsapp_from)} rate={s.whatsapp_rate}/s"
        return ChannelChoice(channel, wa, note + where)
    if channel == "voice" and s.twilio_voice_from:
        from channels.twilio_voice import TwilioVoiceChannel

        voice = TwilioVoiceChannel(
            client(), from_number=s.twilio_voice_from, public_url=s.public_url, rate=s.voice_rate
        )
        note = f"channel=voice provider=twilio caller_id={_mask(s.twilio_voice_from)} rate={s.voice_rate}/s"
        return ChannelChoice(channel, voice, note + where)
    return None


def _email(s: Settings) -> ChannelChoice | None:
    common = {"from_email": s.email_from, "sender_name": s.sender_name, "sender_address": s.sender_address}
    if s.sendgrid_api_key:
        from channels.sendgrid_email import SendGridEmailChannel

        adapter = SendGridEmailChannel(
            s.sendgrid_api_key,
            host=s.sendgrid_host,
            asm_group_id=s.sendgrid_asm_group_id,
            timeout=s.provider_timeout,
            rate=s.email_rate,
            **common,
        )
        where = f" host={s.sendgrid_host}" if s.sendgrid_host else ""
        asm = f" asm_group={s.sendgrid_asm_group_id}" if s.sendgrid_asm_group_id else ""
        return ChannelChoice("email", adapter, f"channel=email provider=sendgrid from={s.email_from}{asm}{where}")
    if s.smtp_url:
        from channels.smtp_email import SmtpEmailChannel

        smtp = SmtpEmailChannel(s.smtp_url, timeout=s.provider_timeout, rate=s.email_rate, **common)
        target = f"{smtp.target.host}:{smtp.target.port}"
        return ChannelChoice("email", smtp, f"channel=email provider=smtp relay={target} from={s.email_from}")
    return None
