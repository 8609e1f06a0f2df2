"""Settings for the CLI: environment plus an optional `.env`, and the embedded defaults' secrets."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from core.settings import Settings, SettingsError


def read_dotenv(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; comments and blank lines ignored; the real environment wins over the file."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise SettingsError(f"{path}:{number}: expected KEY=VALUE, got {raw!r}")
        values[key.strip().removeprefix("export ").strip()] = value.strip().strip('"').strip("'")
    return values


def load_settings() -> Settings:
    environ = {**read_dotenv(Path(".env")), **os.environ}
    settings = Settings.from_env(environ)
    if not settings.secret_key:
        settings = settings.model_copy(update={"secret_key": _embedded_secret(settings.var_dir)})
    return settings


def _embedded_secret(var_dir: Path) -> str:
    """Without OMNIREACH_SECRET_KEY, keep one generated key under var/ so tokens and erasure hashes stay valid."""
    path = var_dir / "secret.key"
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    var_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    path.write_text(key + "\n", encoding="utf-8")
    path.chmod(0o600)
    return key
