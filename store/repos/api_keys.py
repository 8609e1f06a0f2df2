"""API keys: created once (plaintext shown once), stored as SHA-256, verified by hash, revocable."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import API_SCOPES, ApiKey
from store.repos._common import check_choice
from store.types import utcnow

KEY_PREFIX = "or_"
DISPLAY_PREFIX_LENGTH = 8


def hash_api_key(plaintext: str) -> str:
    """SHA-256 hex of the whole key: the only form stored. Keys are random, so no salt is needed."""
    return hashlib.sha256(plaintext.encode()).hexdigest()


def create_api_key(
    session: Session, name: str, scopes: Iterable[str], agent_id: str | None = None
) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the plaintext, which is never stored and cannot be shown again."""
    scope_list = sorted({check_choice("scope", s, API_SCOPES) for s in scopes})
    if not scope_list:
        raise ValueError(f"an API key needs at least one scope: {', '.join(API_SCOPES)}")
    plaintext = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(
        name=name,
        prefix=plaintext[:DISPLAY_PREFIX_LENGTH],
        key_hash=hash_api_key(plaintext),
        scopes=scope_list,
        agent_id=agent_id,
    )
    session.add(row)
    session.flush()
    return row, plaintext


def verify_api_key(session: Session, plaintext: str) -> ApiKey | None:
    """The active key matching ``plaintext``, or None (unknown, malformed or revoked).

    Looked up by hash, so timing reveals nothing about the secret; the digest is compared once more in
    constant time.
    """
    if not plaintext or not plaintext.startswith(KEY_PREFIX):
        return None
    digest = hash_api_key(plaintext)
    row = session.scalars(select(ApiKey).where(ApiKey.key_hash == digest)).one_or_none()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return row


def list_api_keys(session: Session, *, include_revoked: bool = False) -> list[ApiKey]:
    """Keys in creation order (prefixes and names only are meant for display)."""
    query = select(ApiKey)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(session.scalars(query.order_by(ApiKey.id)))


def revoke_api_key(session: Session, key_id_or_prefix: int | str) -> bool:
    """Revoke a key by id or display prefix; True if an active key was revoked.

    A prefix shared by several active keys is refused (ValueError) rather than revoking the wrong one.
    """
    query = select(ApiKey).where(ApiKey.revoked_at.is_(None))
    if isinstance(key_id_or_prefix, int) or key_id_or_prefix.isdigit():
        query = query.where(ApiKey.id == int(key_id_or_prefix))
    else:
        query = query.where(ApiKey.prefix == key_id_or_prefix)
    rows = list(session.scalars(query))
    if len(rows) > 1:
        raise ValueError(f"prefix {key_id_or_prefix!r} matches {len(rows)} keys; revoke by id instead")
    if not rows:
        return False
    rows[0].revoked_at = utcnow()
    session.flush()
    return True
