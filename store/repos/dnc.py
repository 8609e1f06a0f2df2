"""Do-Not-Call: imports (registry snapshots, named lists, the global list), freshness, and matching.

A registry import is a snapshot: it replaces the previous entries of the same (list, country) in one
transaction, so a number removed from the national registry stops being blocked, and a failed import
leaves the previous snapshot in force. Named lists and the global list only grow.

Entries are plain normalised numbers, or hex SHA-256 digests of them (``--hashed``, as some registries and
vendors distribute them). Erasure leaves salted HMAC hashes (store.repos.suppressions.hash_address);
``find_blocking`` matches all three forms.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, fields
from datetime import date

from sqlalchemy import LargeBinary, Row, bindparam, case, delete, func, insert, literal_column, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from store.models import Suppression
from store.permission_models import DncImport
from store.repos.suppressions import SCOPES_FOR_CHANNEL, hash_address, normalise_address
from store.types import utcnow

BATCH = 5000


def plain_hash(address: str) -> str:
    """Unsalted SHA-256 hex of the normalised address: the form hashed registry files carry."""
    return hashlib.sha256(normalise_address(address).encode()).hexdigest()


def kind_for(list_name: str, as_of: date | None) -> str:
    """``global`` for the list named global, ``registry`` for a dated snapshot, else a named ``list``."""
    if list_name == "global":
        return "global"
    return "registry" if as_of is not None else "list"


def start_import(
    session: Session,
    *,
    list_name: str,
    country: str | None,
    as_of: date | None,
    hashed: bool,
    source_name: str | None,
) -> DncImport:
    """Open an import: for a registry snapshot, the previous entries of (list, country) are removed.

    ValueError when a registry snapshot is older than the one in force.
    """
    kind = kind_for(list_name, as_of)
    if kind == "registry":
        current = latest_registry_dates(session, country).get(list_name)
        if current is not None and as_of is not None and as_of < current:
            raise ValueError(
                f"{list_name} ({country}) already has a snapshot as of {current.isoformat()}; an older copy "
                f"({as_of.isoformat()}) would replace newer data: import the newest copy"
            )
        session.execute(
            delete(Suppression).where(
                Suppression.kind == "registry", Suppression.list_name == list_name, Suppression.country == country
            )
        )
    row = DncImport(
        list_name=list_name,
        kind=kind,
        country=country,
        as_of=as_of,
        hashed=hashed,
        source_name=source_name,
        imported_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return row


def add_entries(session: Session, job: DncImport, values: Iterable[str], *, reason: str | None = None) -> int:
    """Insert normalised numbers (or hex digests when the import is hashed) in batches; returns the count."""
    now = utcnow()
    base = {
        "kind": job.kind,
        "list_name": None if job.kind == "global" else job.list_name,
        "country": job.country,
        "channel_scope": "phone",
        "as_of": job.as_of,
        "reason": reason or f"{job.list_name} ({job.kind})",
        "created_at": now,
    }
    rows = [{**base, "value": None, "value_hash": v} if job.hashed else {**base, "value": v} for v in values]
    for i in range(0, len(rows), BATCH):
        session.execute(insert(Suppression), rows[i : i + BATCH])
    job.entries += len(rows)
    session.flush()
    return len(rows)


def latest_registry_dates(session: Session, country: str | None) -> dict[str, date]:
    """The newest snapshot date of each registry list imported for ``country``."""
    if not country:
        return {}
    rows = session.execute(
        select(DncImport.list_name, func.max(DncImport.as_of))
        .where(DncImport.kind == "registry", DncImport.country == country.upper())
        .group_by(DncImport.list_name)
    ).all()
    return {name: as_of for name, as_of in rows if as_of is not None}


def imports(session: Session, country: str | None = None) -> list[DncImport]:
    """Every import, newest first (optionally for one country)."""
    query = select(DncImport).order_by(DncImport.imported_at.desc(), DncImport.id.desc())
    if country:
        query = query.where(DncImport.country == country.upper())
    return list(session.scalars(query))


def _blocking(include_registries: bool):
    query = select(*Suppression.__table__.columns).where(
        or_(Suppression.value == bindparam("value"), Suppression.value_hash.in_(bindparam("hashes", expanding=True))),
        Suppression.channel_scope.in_(bindparam("scopes", expanding=True)),
    )
    if not include_registries:
        query = query.where(Suppression.kind != "registry")
    is_registry = case((Suppression.kind == "registry", 1), else_=0)
    return query.order_by(is_registry, Suppression.id).limit(1)


# Built once: every send and every claim asks, and composing the query costs more than running it.
_BLOCKING, _BLOCKING_BUT_REGISTRIES = _blocking(True), _blocking(False)


def find_blocking(
    session: Session, *, channel: str, address: str, salt: str, include_registries: bool = True
) -> Row | None:
    """The most binding suppression of ``address`` on ``channel``: plain value, salted erasure hash or an
    unsalted registry digest. ``include_registries``: national registries only bind telemarketing.

    Returns the row's columns (``kind``, ``list_name``, ``country``, ``as_of``, ``reason``, ...), not a mapped
    object: every send and every claim asks, and nothing here changes the row."""
    value = normalise_address(address)
    statement = _BLOCKING if include_registries else _BLOCKING_BUT_REGISTRIES
    params = {
        "value": value,
        "hashes": [hash_address(value, salt), plain_hash(value)],
        "scopes": SCOPES_FOR_CHANNEL[channel],
    }
    return session.execute(statement, params).first()


# ---- the same match inside another statement (PostgreSQL) ------------------------------------------
# A claim reads its task, the contact and every fact of the call check in one statement; the suppression match
# joins it there rather than costing a round trip of its own. PostgreSQL has SHA-256 built in (11+) but no
# HMAC without the pgcrypto extension, so the salted hash is HMAC's definition (RFC 2104) over SHA-256 with
# the key's two padded blocks computed here once: the digests equal ``hash_address`` and ``plain_hash``.
_HASH_BLOCK = 64  # SHA-256's block size in bytes


@dataclass(frozen=True, slots=True)
class Blocking:
    """The columns of a suppression the permission check reports (read by ``phone_blocking``)."""

    kind: str
    list_name: str | None
    country: str | None
    as_of: date | None
    reason: str | None


@functools.lru_cache(maxsize=8)
def hmac_key_blocks(salt: str) -> dict[str, bytes]:
    """The bind parameters of ``phone_blocking``: HMAC-SHA256's inner and outer key blocks for ``salt``."""
    if not salt:
        raise ValueError("a non-empty salt is required to hash an address")
    key = salt.encode()
    if len(key) > _HASH_BLOCK:
        key = hashlib.sha256(key).digest()
    key = key.ljust(_HASH_BLOCK, b"\0")
    return {
        "hmac_inner": bytes(b ^ 0x36 for b in key),
        "hmac_outer": bytes(b ^ 0x5C for b in key),
    }


BLOCKING_FIELDS = tuple(f.name for f in fields(Blocking))


def phone_blocking(phone: ColumnElement[str]):
    """A LATERAL subquery: the most binding suppression of the number in ``phone`` on the phone channels,
    registries included (national registries bind telemarketing only: the caller drops a registry match for
    other purposes; any other match sorts first, so what remains is exactly ``find_blocking``'s answer).

    ``phone`` must hold the normalised form (``normalise_address``); the caller checks that and falls back
    to ``find_blocking`` when it does not. Needs ``hmac_key_blocks(salt)`` as parameters."""
    # Constants as literals, not parameters: psycopg caches its parsing of statements under 4,096 characters
    # only, and the claim's statement, with this inside, must stay under.
    data = func.convert_to(phone, literal_column("'UTF8'"))
    hex_ = literal_column("'hex'")
    inner = func.sha256(bindparam("hmac_inner", type_=LargeBinary).op("||")(data))
    salted = func.encode(func.sha256(bindparam("hmac_outer", type_=LargeBinary).op("||")(inner)), hex_)
    plain = func.encode(func.sha256(data), hex_)
    is_registry = case((Suppression.kind == literal_column("'registry'"), 1), else_=0)
    return (
        select(*(getattr(Suppression, name) for name in BLOCKING_FIELDS))
        .where(
            or_(Suppression.value == phone, Suppression.value_hash.in_([salted, plain])),
            Suppression.channel_scope.in_([literal_column(f"'{scope}'") for scope in SCOPES_FOR_CHANNEL["voice"]]),
        )
        .order_by(is_registry, Suppression.id)
        .limit(literal_column("1"))  # not a parameter: see store.repos.claims._ONE
        .lateral("suppression")
    )


def suppressions_for(session: Session, addresses: Iterable[str], *, salt: str) -> list[Suppression]:
    """Every suppression matching any of ``addresses`` (exports and explain)."""
    values = [normalise_address(a) for a in addresses if a]
    if not values:
        return []
    hashes = [h for v in values for h in (hash_address(v, salt), plain_hash(v))]
    return list(
        session.scalars(
            select(Suppression)
            .where(or_(Suppression.value.in_(values), Suppression.value_hash.in_(hashes)))
            .order_by(Suppression.id)
        )
    )
