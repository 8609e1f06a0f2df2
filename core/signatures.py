"""Webhook authenticity: Twilio's ``X-Twilio-Signature`` and SendGrid's signed event webhook.

Twilio: base64(HMAC-SHA1(auth token, full public URL + every POST parameter name and value, sorted by
name)). The URL is the one Twilio called, so behind a proxy it is built from OMNIREACH_PUBLIC_URL; like
Twilio's own validator we accept it with and without the default port. There is no timestamp: replays
are stopped by deduplication, not here.

SendGrid: ECDSA P-256 / SHA-256 over ``timestamp + raw body`` (the bytes as received, verified before
parsing), headers ``X-Twilio-Email-Event-Webhook-Signature`` (base64 DER) and ``...-Timestamp`` (Unix
seconds). Timestamps more than five minutes from now are refused (replay window).

Pure: ``now`` is a parameter; comparisons are constant-time.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit, urlunsplit

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

TWILIO_SIGNATURE_HEADER = "X-Twilio-Signature"
TWILIO_SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
SENDGRID_SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
SENDGRID_MAX_AGE = timedelta(minutes=5)
_HASHES = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}

Params = Mapping[str, str] | Iterable[tuple[str, str]]


@dataclass(frozen=True)
class Check:
    """The outcome of a signature check; ``reason`` is safe to log (it never contains a secret)."""

    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


def _pairs(params: Params) -> list[tuple[str, str]]:
    return list(params.items()) if isinstance(params, Mapping) else list(params)


def twilio_signature(auth_token: str, url: str, params: Params, algorithm: str = "HMAC_SHA1") -> str:
    """The signature Twilio sends for a form POST of ``params`` to ``url``."""
    digest = _HASHES.get(algorithm.upper())
    if digest is None:
        raise ValueError(f"unsupported Twilio signature algorithm {algorithm!r}; use HMAC_SHA1 or HMAC_SHA256")
    grouped: dict[str, set[str]] = {}
    for name, value in _pairs(params):
        grouped.setdefault(name, set()).add(value)
    text = url + "".join(name + value for name in sorted(grouped) for value in sorted(grouped[name]))
    mac = hmac.new(auth_token.encode(), text.encode(), digest).digest()
    return base64.b64encode(mac).decode()


def _port_variants(url: str) -> Iterator[str]:
    """The URL as given, then without its port and with the scheme's default port (Twilio signs either).

    Lazily: the URL as given is what Twilio signs unless a proxy added or dropped the port, so the variants
    are built only when it did not match (the status callback, Twilio's busiest, checks one per request)."""
    yield url
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    default = 443 if parts.scheme == "https" else 80
    bare = urlunsplit(parts._replace(netloc=prefix + host))
    with_port = urlunsplit(parts._replace(netloc=f"{prefix}{host}:{parts.port or default}"))
    yield from (variant for variant in dict.fromkeys([bare, with_port]) if variant != url)


def twilio_algorithm(settings_header: str | None) -> str:
    """The algorithm named in ``X-Twilio-Webhooks-Signature-Settings`` (absent: the Auth Token's HMAC-SHA1)."""
    for part in (settings_header or "").split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return "HMAC_SHA1"


def verify_twilio(
    auth_token: str | None, url: str, params: Params, signature: str | None, settings_header: str | None = None
) -> Check:
    """Whether ``signature`` is Twilio's for this request."""
    if not auth_token:
        return Check(False, "no Twilio auth token is configured (TWILIO_AUTH_TOKEN): cannot verify")
    if not signature:
        return Check(False, f"missing {TWILIO_SIGNATURE_HEADER} header")
    algorithm = twilio_algorithm(settings_header)
    if algorithm not in _HASHES:
        return Check(False, f"unsupported signature algorithm {algorithm}")
    pairs = _pairs(params)
    given = signature.strip().encode()
    for candidate in _port_variants(url):
        expected = twilio_signature(auth_token, candidate, pairs, algorithm)
        if hmac.compare_digest(expected.encode(), given):
            return Check(True, "valid")
    return Check(False, "signature does not match (check TWILIO_AUTH_TOKEN and OMNIREACH_PUBLIC_URL)")


# ---- SendGrid -----------------------------------------------------------------------------------------
class PublicKeyError(ValueError):
    """A public key that cannot be used for SendGrid verification."""


@functools.lru_cache(maxsize=8)
def load_sendgrid_key(text: str) -> ec.EllipticCurvePublicKey:
    """SendGrid's verification key as shown in its settings (base64 DER), or a PEM block; must be P-256."""
    value = text.strip()
    try:
        if value.startswith("-----BEGIN"):
            key = load_pem_public_key(value.encode())
        else:
            key = load_der_public_key(base64.b64decode("".join(value.split()), validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise PublicKeyError(
            "not a public key: paste the 'Verification Key' from SendGrid's "
            "Signed Event Webhook settings (base64) or a PEM block"
        ) from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PublicKeyError("must be an ECDSA P-256 (prime256v1) public key")
    return key


def verify_sendgrid(
    public_key: str | None,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: datetime,
    max_age: timedelta = SENDGRID_MAX_AGE,
) -> Check:
    """Whether ``signature`` is SendGrid's over ``timestamp + body`` and the timestamp is recent."""
    if not public_key:
        return Check(False, "no SendGrid verification key is configured (SENDGRID_WEBHOOK_PUBLIC_KEY)")
    if not signature or not timestamp:
        return Check(False, f"missing {SENDGRID_SIGNATURE_HEADER} or {SENDGRID_TIMESTAMP_HEADER} header")
    try:
        sent = datetime.fromtimestamp(int(timestamp.strip()), UTC)
    except (ValueError, OverflowError, OSError):
        return Check(False, "timestamp header is not Unix seconds")
    if abs(now - sent) > max_age:
        return Check(False, f"timestamp {sent.isoformat()} is more than {max_age} from now (replay refused)")
    try:
        key = load_sendgrid_key(public_key)
        raw = base64.b64decode(signature.strip(), validate=True)
        key.verify(raw, timestamp.strip().encode() + body, ec.ECDSA(hashes.SHA256()))
    except PublicKeyError as exc:
        return Check(False, str(exc))
    except (binascii.Error, ValueError):
        return Check(False, "signature header is not base64")
    except InvalidSignature:
        return Check(False, "signature does not match the body (tampered, or signed with another key)")
    return Check(True, "valid")
