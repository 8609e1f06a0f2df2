"""Webhook signatures made by the official twilio package and by a freshly generated ECDSA P-256 key pair."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from twilio.request_validator import RequestValidator

from core.signatures import (
    PublicKeyError,
    load_sendgrid_key,
    twilio_signature,
    verify_sendgrid,
    verify_twilio,
)

TOKEN = "twilio-auth-token-0123456789abcdef"
URL = "https://omnireach.example.com/webhooks/twilio/inbound"
PARAMS = {"MessageSid": "SM0123", "From": "+6281234567890", "To": "+15005550006", "Body": "STOP", "NumMedia": "0"}


def test_official_validator_signatures_are_accepted() -> None:
    signature = RequestValidator(TOKEN).compute_signature(URL, PARAMS)
    assert twilio_signature(TOKEN, URL, PARAMS) == signature
    assert verify_twilio(TOKEN, URL, PARAMS, signature)
    assert verify_twilio(TOKEN, URL, list(PARAMS.items()), signature)  # order of the form does not matter


def test_port_variants_are_accepted_like_the_official_validator() -> None:
    with_port = URL.replace(".com/", ".com:443/")
    signature = RequestValidator(TOKEN).compute_signature(with_port, PARAMS)
    assert verify_twilio(TOKEN, URL, PARAMS, signature)
    assert RequestValidator(TOKEN).validate(URL, PARAMS, signature)


def test_sha256_shared_key_signatures() -> None:
    signature = RequestValidator(TOKEN).compute_signature(URL, PARAMS, algorithm="HMAC_SHA256")
    header = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    assert verify_twilio(TOKEN, URL, PARAMS, signature, header)
    assert not verify_twilio(TOKEN, URL, PARAMS, signature)  # not as SHA-1


@pytest.mark.parametrize(
    ("token", "url", "params", "reason"),
    [
        (TOKEN, URL, {**PARAMS, "Body": "START"}, "does not match"),
        (TOKEN, URL, {**PARAMS, "Extra": "1"}, "does not match"),
        ("another-token", URL, PARAMS, "does not match"),
        (TOKEN, URL.replace("inbound", "status"), PARAMS, "does not match"),
        (TOKEN, URL.replace("https", "http"), PARAMS, "does not match"),
        (None, URL, PARAMS, "TWILIO_AUTH_TOKEN"),
    ],
)
def test_tampered_or_foreign_twilio_requests_are_refused(token, url, params, reason) -> None:
    signature = RequestValidator(TOKEN).compute_signature(URL, PARAMS)
    check = verify_twilio(token, url, params, signature)
    assert not check and reason in check.reason


def test_missing_twilio_signature_is_refused() -> None:
    check = verify_twilio(TOKEN, URL, PARAMS, None)
    assert not check and "missing" in check.reason


# ---- SendGrid ----------------------------------------------------------------------------------------
NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
BODY = b'[{"email":"ana@example.com","event":"unsubscribe","timestamp":1795953600,"sg_message_id":"abc.1"}]'


def key_pair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    private = ec.generate_private_key(ec.SECP256R1())
    der = private.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, base64.b64encode(der).decode()


def sign(private: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    return base64.b64encode(private.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))).decode()


def test_valid_sendgrid_signature_is_accepted() -> None:
    private, public = key_pair()
    stamp = str(int(NOW.timestamp()))
    assert verify_sendgrid(public, BODY, sign(private, stamp, BODY), stamp, NOW)
    pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert verify_sendgrid(pem.decode(), BODY, sign(private, stamp, BODY), stamp, NOW + timedelta(minutes=4))


def test_sendgrid_verification_matches_the_official_sdk() -> None:
    from sendgrid.helpers.eventwebhook import EventWebhook

    private, public = key_pair()
    stamp = str(int(NOW.timestamp()))
    signature = sign(private, stamp, BODY)
    assert EventWebhook(public).verify_signature(BODY.decode(), signature, stamp)
    assert verify_sendgrid(public, BODY, signature, stamp, NOW)


def test_tampered_body_wrong_key_stale_and_missing_are_refused() -> None:
    private, public = key_pair()
    _, other_public = key_pair()
    stamp = str(int(NOW.timestamp()))
    signature = sign(private, stamp, BODY)
    tampered = verify_sendgrid(public, BODY.replace(b"unsubscribe", b"delivered"), signature, stamp, NOW)
    assert not tampered and "does not match" in tampered.reason
    assert not verify_sendgrid(other_public, BODY, signature, stamp, NOW)
    assert not verify_sendgrid(public, BODY, signature, str(int(NOW.timestamp()) + 1), NOW)  # timestamp is signed
    old = str(int((NOW - timedelta(minutes=6)).timestamp()))
    stale = verify_sendgrid(public, BODY, sign(private, old, BODY), old, NOW)
    assert not stale and "replay" in stale.reason
    assert not verify_sendgrid(public, BODY, None, stamp, NOW)
    assert not verify_sendgrid(public, BODY, signature, None, NOW)
    assert not verify_sendgrid(public, BODY, "not base64!!", stamp, NOW)
    assert not verify_sendgrid(public, BODY, signature, "yesterday", NOW)
    assert "SENDGRID_WEBHOOK_PUBLIC_KEY" in verify_sendgrid(None, BODY, signature, stamp, NOW).reason


def test_only_p256_public_keys_are_usable() -> None:
    rsa_der = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(PublicKeyError, match="P-256"):
        load_sendgrid_key(base64.b64encode(rsa_der).decode())
    p384 = (
        ec.generate_private_key(ec.SECP384R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(PublicKeyError, match="P-256"):
        load_sendgrid_key(base64.b64encode(p384).decode())
    with pytest.raises(PublicKeyError, match="not a public key"):
        load_sendgrid_key("hello")
