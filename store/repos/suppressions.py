"""Suppressions (do-not-contact): add entries, match an address by plain value or salted hash."""

from __future__ import annotations

import hashlib
import hmac
from datetime import date

from sqlalchemy import case, or_, select
from sqlalchemy.orm import Session

from store.models import CHANNEL_SCOPES, CHANNELS, SUPPRESSION_KINDS, Suppression
from store.repos._common import check_choice

# The suppression scopes that bind each channel: a number's ``phone`` suppression stops SMS, WhatsApp and calls;
# a ``whatsapp`` one (the person blocked us there: Twilio 63014) stops WhatsApp only.
SCOPES_FOR_CHANNEL = {
    "email": ("email", "all"),
    "sms": ("phone", "all"),
    "whatsapp": ("phone", "whatsapp", "all"),
    "voice": ("phone", "all"),
}


def normalise_address(address: str) -> str:
    """The form suppressions are stored and hashed in: trimmed, ``whatsapp:`` dropped, emails lower-cased.

    Phone numbers are expected already in E.164 (normalising national input needs the contact's country).
    """
    value = address.strip()
    if value.lower().startswith("whatsapp:"):
        value = value[len("whatsapp:") :].strip()
    if "@" in value:
        value = value.lower()
    return value


def hash_address(address: str, salt: str) -> str:
    """Salted SHA-256 (HMAC, salt as key) hex digest of the normalised address: what erasure leaves behind."""
    if not salt:
        raise ValueError("a non-empty salt is required to hash an address")
    return hmac.new(salt.encode(), normalise_address(address).encode(), hashlib.sha256).hexdigest()


def add_suppression(
    session: Session,
    *,
    kind: str,
    channel_scope: str,
    value: str | None = None,
    value_hash: str | None = None,
    list_name: str | None = None,
    country: str | None = None,
    reason: str | None = None,
    as_of: date | None = None,
) -> Suppression:
    """Add a suppression for a plain address (normalised here) and/or its salted hash."""
    if value is None and value_hash is None:
        raise ValueError("a suppression needs a value or a value_hash")
    row = Suppression(
        kind=check_choice("kind", kind, SUPPRESSION_KINDS),
        channel_scope=check_choice("channel_scope", channel_scope, CHANNEL_SCOPES),
        value=None if value is None else normalise_address(value),
        value_hash=value_hash,
        list_name=list_name,
        country=country.upper() if country else None,
        reason=reason,
        as_of=as_of,
    )
    session.add(row)
    session.flush()
    return row


def suppress_once(
    session: Session, *, kind: str, channel_scope: str, value: str, reason: str, list_name: str | None = None
) -> Suppression:
    """A plain address's suppression of ``kind`` on ``channel_scope`` (in ``list_name``, when given): the one
    already there, or a new one (a second report of the same block adds no second row)."""
    query = select(Suppression).where(
        Suppression.kind == kind,
        Suppression.channel_scope == channel_scope,
        Suppression.value == normalise_address(value),
    )
    if list_name is not None:
        query = query.where(Suppression.list_name == list_name)
    existing = session.scalars(query).first()
    return existing or add_suppression(
        session, kind=kind, channel_scope=channel_scope, value=value, reason=reason, list_name=list_name
    )


def suppress_whatsapp_block(session: Session, address: str, *, source: str) -> Suppression:
    """The person blocked the business on WhatsApp (Twilio 63014); COMPLIANCE.md says to suppress. The scope
    is ``whatsapp``: SMS and calls to the same number stay as the person's consent says."""
    reason = f"blocked the business on WhatsApp ({source})"[:500]
    return suppress_once(session, kind="global", channel_scope="whatsapp", value=address, reason=reason)


def find_suppressions(session: Session, *, channel: str, address: str, salt: str) -> list[Suppression]:
    """Every suppression blocking ``address`` on ``channel``, by plain value or salted hash.

    Ordered so that entries that always apply (global, company DNC, erasure, lists) come before national
    registry entries, and registries newest ``as_of`` first: a caller judging registry freshness must still
    see a non-registry match. An empty salt is refused: it would silently stop matching erasure hashes.
    """
    scopes = SCOPES_FOR_CHANNEL[check_choice("channel", channel, CHANNELS)]
    value = normalise_address(address)
    match = or_(Suppression.value == value, Suppression.value_hash == hash_address(value, salt))
    is_registry = case((Suppression.kind == "registry", 1), else_=0)
    return list(
        session.scalars(
            select(Suppression)
            .where(match, Suppression.channel_scope.in_(scopes))
            .order_by(is_registry, Suppression.as_of.desc().nulls_last(), Suppression.id)
        )
    )


def find_suppression(session: Session, *, channel: str, address: str, salt: str) -> Suppression | None:
    """The most binding suppression for ``address`` on ``channel`` (see ``find_suppressions``), or None."""
    found = find_suppressions(session, channel=channel, address=address, salt=salt)
    return found[0] if found else None
