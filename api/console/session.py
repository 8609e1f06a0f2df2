"""The console's sign-in: an agent pastes their API key once; the browser keeps a signed cookie that names
the key (by id, never the key itself) and expires. Every request re-reads the key, so revoking it signs
the agent out at once. Forms carry a CSRF token derived from the cookie (the cookie is also SameSite)."""

from __future__ import annotations

import hashlib
import hmac
import time

from sqlalchemy.orm import Session

from api.deps import Principal
from core import tokens
from store.models import ApiKey
from store.repos.api_keys import verify_api_key

COOKIE = "omnireach_console"
LIFETIME_SECONDS = 12 * 3600  # one working day


class NotSignedIn(Exception):
    """No valid session: the cookie is missing, tampered with, expired, or its key was revoked."""


def new_session(session: Session, plaintext: str, secret: str) -> tuple[str, Principal]:
    """Check a pasted key and return the cookie value for it; ValueError says why a key is refused."""
    row = verify_api_key(session, plaintext.strip())
    if row is None:
        raise ValueError("that key is unknown or revoked; check it was copied whole, or ask an admin for a new one")
    if not row.agent_id and "admin" not in (row.scopes or []):
        raise ValueError(
            "this key belongs to no agent; the console needs an agent key "
            "(create one with `omnireach agents add ID --queue QUEUE`)"
        )
    cookie = tokens.sign({"k": row.id, "exp": int(time.time()) + LIFETIME_SECONDS}, secret)
    return cookie, _principal(row)


def principal_from(session: Session, cookie: str | None, secret: str) -> Principal:
    if not cookie:
        raise NotSignedIn("not signed in")
    try:
        data = tokens.verify(cookie, secret)
    except tokens.BadToken as exc:
        raise NotSignedIn("the session is not valid; sign in again") from exc
    if int(data.get("exp", 0)) < time.time():
        raise NotSignedIn("the session expired; sign in again")
    row = session.get(ApiKey, data.get("k"))
    if row is None or row.revoked_at is not None:
        raise NotSignedIn("the key behind this session was revoked")
    return _principal(row)


def csrf_token(cookie: str, secret: str) -> str:
    return hmac.new(secret.encode(), f"csrf:{cookie}".encode(), hashlib.sha256).hexdigest()[:32]


def csrf_ok(cookie: str | None, secret: str, token: str | None) -> bool:
    return bool(cookie and token) and hmac.compare_digest(csrf_token(cookie or "", secret), token or "")


def _principal(row: ApiKey) -> Principal:
    return Principal(name=row.name, scopes=frozenset(row.scopes or ()), key_prefix=row.prefix, agent_id=row.agent_id)
