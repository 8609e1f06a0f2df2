"""Outbound webhook signatures, in the Standard Webhooks format (https://www.standardwebhooks.com).

Every request carries three headers:

- ``webhook-id``: the event's stable id (the same on every retry; receivers dedupe on it),
- ``webhook-timestamp``: Unix seconds when this attempt was signed,
- ``webhook-signature``: ``v1,<base64(HMAC-SHA256(key, f"{id}.{timestamp}.{body}"))>``.

Each endpoint has its own secret ``whsec_<base64 key>``, derived from ``OMNIREACH_SECRET_KEY``, the
endpoint id and its secret version. Deriving (rather than handing out the master key) means a receiver
can never forge our unsubscribe tokens, and rotating one endpoint's secret (a new version) leaves the
others alone. Pure functions: no IO, no clock (the timestamp is a parameter).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SECRET_PREFIX = "whsec_"
TOLERANCE_SECONDS = 5 * 60


class BadSignature(ValueError):
    pass


def endpoint_secret(master_key: str, endpoint_id: str, version: int = 1) -> str:
    """The ``whsec_...`` secret shown to the endpoint's owner once, at creation."""
    if not master_key:
        raise ValueError("OMNIREACH_SECRET_KEY is empty: outbound webhooks cannot be signed without it")
    key = hmac.new(master_key.encode(), f"webhook-endpoint:{endpoint_id}:{version}".encode(), hashlib.sha256)
    return SECRET_PREFIX + base64.b64encode(key.digest()).decode()


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def signed_headers(secret: str, message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, message_id, timestamp, body),
    }


def verify(secret: str, headers: dict[str, str], body: bytes, now: int) -> None:
    """What a receiver does (kept here for our tests and the docs' example); BadSignature if invalid."""
    lower = {k.lower(): v for k, v in headers.items()}
    try:
        message_id, stamp, sent = lower["webhook-id"], int(lower["webhook-timestamp"]), lower["webhook-signature"]
    except (KeyError, ValueError) as exc:
        raise BadSignature("missing or malformed webhook-id / webhook-timestamp / webhook-signature") from exc
    if abs(now - stamp) > TOLERANCE_SECONDS:
        raise BadSignature("timestamp outside the 5 minute tolerance")
    expected = signature(secret, message_id, stamp, body).encode()
    if not any(hmac.compare_digest(expected, s.encode()) for s in sent.split()):
        raise BadSignature("no signature matches")
