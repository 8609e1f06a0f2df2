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
    cadences_dir: Path = Path("cadences")
    templates_dir: Path = Path("templates")
    var_dir: Path = Path("var")

    @field_validator("public_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

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
            "cadences_dir": "OMNIREACH_CADENCES_DIR",
            "templates_dir": "OMNIREACH_TEMPLATES_DIR",
            "var_dir": "OMNIREACH_VAR_DIR",
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
