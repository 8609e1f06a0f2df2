"""Signed, URL-safe tokens (unsubscribe links): the token itself authenticates the request."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json


class BadToken(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(payload: dict, secret: str) -> str:
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()[:16]
    return f"{body}.{_b64(mac)}"


def verify(token: str, secret: str) -> dict:
    """The payload of a token we signed; BadToken for anything else (tampered, truncated, foreign)."""
    body, _, mac = token.partition(".")
    try:
        expected = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()[:16]
        if not mac or not hmac.compare_digest(_unb64(mac), expected):
            raise BadToken("signature does not match")
        payload = json.loads(_unb64(body))
    except (ValueError, TypeError) as exc:
        raise BadToken(f"unreadable token: {exc}") from exc
    if not isinstance(payload, dict):
        raise BadToken("unreadable token")
    return payload
