"""One frozen settings object, built once at start-up from the environment (SPEC section 9).

Only cli/, api/ and worker.py call `Settings.from_env(os.environ)`; everything else receives the
object. Building it validates everything so a typo fails at start, not at the first send.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_DATABASE_URL = "sqlite:///var/omnireach.db"


class SettingsError(ValueError):
    pass


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    database_url: str = DEFAULT_DATABASE_URL
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_tls_cert: str | None = None
    temporal_tls_key: str | None = None
    temporal_api_key: str | None = Field(default=None, repr=False)
    task_queue: str = "omnireach"
    public_url: str = "http://127.0.0.1:8000"
    secret_key: str = Field(default="", repr=False)
    admin_api_key: str | None = Field(default=None, repr=False)
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = Field(default=None, repr=False)
    twilio_messaging_service_sid: str | None = None
    twilio_from_number: str | None = None
    twilio_whatsapp_from: str | None = None
    twilio_voice_from: str | None = None
    sendgrid_api_key: str | None = Field(default=None, repr=False)
    sendgrid_webhook_public_key: str | None = None
    email_from: str = "hello@omnireach.example"
    smtp_url: str | None = None
    sender_name: str = "omnireach demo"
    sender_address: str = "Jl. Jend. Sudirman Kav. 52-53, Jakarta 12190, Indonesia"
    twilio_base_url: str | None = None
    sendgrid_host: str | None = None
    # Channels (issue 4): SendGrid unsubscribe group, per-sender pacing, provider call timeout, webhook channel.
    sendgrid_asm_group_id: int | None = Field(default=None, gt=0)
    sms_rate: float = Field(default=1.0, ge=0)  # segments/s per SMS sender: long code 1, toll-free 3, short code 100
    whatsapp_rate: float = Field(default=80.0, ge=0)  # messages/s per WhatsApp sender (0: no pacing)
    voice_rate: float = Field(default=1.0, ge=0)  # calls/s per caller id (Twilio's default CPS)
    email_rate: float = Field(default=0.0, ge=0)  # messages/s per email sender (0: no pacing)
    sms_segment_price: float = Field(default=0.0079, ge=0)  # USD per segment, for the cost estimate
    provider_timeout: float = Field(default=15.0, gt=0)  # seconds to wait for a provider's answer
    webhook_url: str | None = None
    webhook_channels: tuple[str, ...] = ()
    # Permission engine (issue 3): jurisdiction overrides, SMS keyword replies.
    policy_file: Path | None = None  # YAML overriding the shipped legal hours / registries (core.jurisdiction)
    help_text: str | None = None  # the HELP / INFO reply; default built from sender_name
    twilio_handles_keywords: bool = False  # Twilio's own opt-out handling already answers STOP/START/HELP on SMS
    cadences_dir: Path = Path("cadences")
    templates_dir: Path = Path("templates")
    var_dir: Path = Path("var")
    costs_file: Path = Path("costs.yaml")  # unit costs for reports (docs/developer-api.md)
    metrics_address: str | None = Field(default=None, pattern=r"^[^\s:]+:\d{1,5}$")  # Prometheus host:port

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("webhook_channels", mode="before")
    @classmethod
    def _channels(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        unknown = [c for c in value or () if c not in ("email", "sms", "whatsapp", "voice")]  # type: ignore[attr-defined]
        if unknown:
            raise ValueError(f"unknown channel(s) {', '.join(unknown)}; list some of: email, sms, whatsapp, voice")
        return value

    @field_validator("sendgrid_webhook_public_key")
    @classmethod
    def _sendgrid_key(cls, value: str | None) -> str | None:
        if value:
            from core.signatures import PublicKeyError, load_sendgrid_key

            try:
                load_sendgrid_key(value)
            except PublicKeyError as exc:
                raise ValueError(str(exc)) from None
        return value

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        """Read OMNIREACH_*, TEMPORAL_*, TWILIO_*, SENDGRID_* variables; raise SettingsError naming the bad one."""
        names = {
            "database_url": "OMNIREACH_DATABASE_URL",
            "temporal_address": "TEMPORAL_ADDRESS",
            "temporal_namespace": "TEMPORAL_NAMESPACE",
            "temporal_tls_cert": "TEMPORAL_TLS_CERT",
            "temporal_tls_key": "TEMPORAL_TLS_KEY",
            "temporal_api_key": "TEMPORAL_API_KEY",
            "task_queue": "OMNIREACH_TASK_QUEUE",
            "public_url": "OMNIREACH_PUBLIC_URL",
            "secret_key": "OMNIREACH_SECRET_KEY",
            "admin_api_key": "OMNIREACH_ADMIN_API_KEY",
            "twilio_account_sid": "TWILIO_ACCOUNT_SID",
            "twilio_auth_token": "TWILIO_AUTH_TOKEN",
            "twilio_messaging_service_sid": "TWILIO_MESSAGING_SERVICE_SID",
            "twilio_from_number": "TWILIO_FROM_NUMBER",
            "twilio_whatsapp_from": "TWILIO_WHATSAPP_FROM",
            "twilio_voice_from": "TWILIO_VOICE_FROM",
            "sendgrid_api_key": "SENDGRID_API_KEY",
            "sendgrid_webhook_public_key": "SENDGRID_WEBHOOK_PUBLIC_KEY",
            "email_from": "OMNIREACH_EMAIL_FROM",
            "smtp_url": "OMNIREACH_SMTP_URL",
            "sender_name": "OMNIREACH_SENDER_NAME",
            "sender_address": "OMNIREACH_SENDER_ADDRESS",
            "twilio_base_url": "OMNIREACH_TWILIO_BASE_URL",
            "sendgrid_host": "OMNIREACH_SENDGRID_HOST",
            "sendgrid_asm_group_id": "OMNIREACH_SENDGRID_ASM_GROUP",
            "sms_rate": "OMNIREACH_SMS_RATE",
            "whatsapp_rate": "OMNIREACH_WHATSAPP_RATE",
            "voice_rate": "OMNIREACH_VOICE_RATE",
            "email_rate": "OMNIREACH_EMAIL_RATE",
            "sms_segment_price": "OMNIREACH_SMS_SEGMENT_PRICE",
            "provider_timeout": "OMNIREACH_PROVIDER_TIMEOUT",
            "webhook_url": "OMNIREACH_WEBHOOK_URL",
            "webhook_channels": "OMNIREACH_WEBHOOK_CHANNELS",
            "policy_file": "OMNIREACH_POLICY_FILE",
            "help_text": "OMNIREACH_HELP_TEXT",
            "twilio_handles_keywords": "OMNIREACH_TWILIO_HANDLES_KEYWORDS",
            "cadences_dir": "OMNIREACH_CADENCES_DIR",
            "templates_dir": "OMNIREACH_TEMPLATES_DIR",
            "var_dir": "OMNIREACH_VAR_DIR",
            "costs_file": "OMNIREACH_COSTS_FILE",
            "metrics_address": "OMNIREACH_METRICS_ADDRESS",
        }
        values = {field: environ[env] for field, env in names.items() if environ.get(env, "") != ""}
        try:
            settings = cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{names.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in exc.errors(include_url=False)
            )
            raise SettingsError(f"bad configuration: {problems}") from exc
        return settings

    @property
    def sender(self) -> dict[str, str]:
        return {"name": self.sender_name, "address": self.sender_address}
