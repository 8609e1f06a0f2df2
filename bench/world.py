"""A small, real world for recordings, benchmarks and chaos runs: a migrated store, the repo's own
cadences and templates, consenting contacts, and a worker built by worker.py.

Shared by bench/record_histories.py, bench/run.py, bench/chaos.py and the e2e tests, so each of them
exercises the same composition root the product runs (no mocks; channels are injected the documented way).
"""

from __future__ import annotations

import io
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from channels.base import Channel
from channels.console import ConsoleChannel
from content.cadences import Library, load_library
from core.settings import Settings
from store.db import make_engine, make_session_factory, upgrade
from store.repos.consent import append_consent
from store.repos.contacts import upsert_contact

REPO = Path(__file__).resolve().parent.parent
CHANNELS = ("email", "sms", "whatsapp", "voice")
PURPOSES = ("marketing", "sales", "service")
# Contacts spread over the timezones the example cadences are written for:
# (zone, country, locale, phone prefix); the contact's number appends a 6-digit serial to the prefix.
PLACES = (
    ("Asia/Jakarta", "ID", "id", "+62812000"),
    ("America/New_York", "US", "en", "+121255"),
    ("Europe/London", "GB", "en", "+447400"),
)
# The UK sets no legal hours for SMS (COMPLIANCE.md): real-time runs can send at any hour of the day.
ANY_HOUR = (("Europe/London", "GB", "en", "+447400"),)


def repo_library() -> Library:
    """The example cadences and templates shipped in the repository, validated."""
    library = load_library([REPO / "cadences"], REPO / "templates")
    if library.errors:
        raise SystemExit("the example cadences do not validate: " + "; ".join(map(str, library.errors)))
    return library


def scratch_dir(prefix: str = "omnireach-") -> Path:
    """A fresh directory in memory (/dev/shm) when there is one: SQLite commits there cost no fsync.

    Tests and recordings that measure Temporal behaviour, not disk speed, use it; the caller removes it.
    """
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix=prefix, dir=shm if shm.is_dir() else None))


def open_store(url: str, **engine_options) -> sessionmaker[Session]:
    """A migrated database at ``url`` (SQLite file or PostgreSQL) and its session factory."""
    engine = make_engine(url, **engine_options)
    upgrade(engine)
    return make_session_factory(engine)


def add_contacts(
    sessions: sessionmaker[Session],
    count: int,
    *,
    prefix: str | None = None,
    consents: Iterable[tuple[str, str]] | None = None,
    places: tuple[tuple[str, str, str, str], ...] = PLACES,
) -> list[str]:
    """``count`` contacts with addresses on every channel and granted consent (default: all channels x purposes)."""
    prefix = prefix or uuid.uuid4().hex[:6]
    serial = int(uuid.uuid4().int % 1_000_000)  # numbers differ between batches (a STOP finds one contact)
    grants = list(consents) if consents is not None else [(c, p) for c in CHANNELS for p in PURPOSES]
    ids: list[str] = []
    with sessions.begin() as session:
        for n in range(count):
            tz, country, locale, prefix_digits = places[n % len(places)]
            phone = f"{prefix_digits}{(serial + n) % 1_000_000:06d}"
            contact, _ = upsert_contact(
                session,
                external_id=f"bench-{prefix}-{n}",
                name=f"Contact {n}",
                email=f"c{n}.{prefix}@example.id",
                phone=phone,
                whatsapp=phone,
                country=country,
                timezone=tz,
                locale=locale,
            )
            session.flush()
            for channel, purpose in grants:
                append_consent(
                    session,
                    contact_id=contact.id,
                    channel=channel,
                    purpose=purpose,
                    status="granted",
                    method="web_form",
                    source="https://example.id/signup",
                    notice_text="You may contact me",
                    notice_version="v1",
                    lawful_basis="consent",
                    occurred_at=datetime(2020, 1, 1, tzinfo=UTC),
                )
            ids.append(contact.id)
    return ids


def virtual_clock() -> datetime:
    """Activities see the server's (possibly skipped) time, so windows and caps follow the virtual clock."""
    return activity.info().current_attempt_scheduled_time


@dataclass
class WorkerParts:
    settings: Settings
    sessions: sessionmaker[Session]
    library: Library
    channel: Channel


def console_channel(var_dir: Path) -> ConsoleChannel:
    return ConsoleChannel(var_dir / "console.jsonl", out=io.StringIO())


def product_worker(
    client: Client,
    parts: WorkerParts,
    task_queue: str,
    *,
    clock: Callable[[], datetime] | None = None,
    **worker_options,
) -> Worker:
    """The product's worker (worker.build_activities + build_worker) with one channel for every channel name."""
    from worker import build_activities, build_worker

    assert parts.library.catalog is not None
    activities = build_activities(
        parts.settings,
        parts.sessions,
        parts.library.catalog,
        channels=dict.fromkeys(CHANNELS, parts.channel),
        clock=clock,
    )
    worker = build_worker(client, parts.settings, activities, task_queue=task_queue)
    if worker_options:
        # build_worker fixes the product's options; benchmarks may tune concurrency on a copy of its config.
        config = worker.config()
        config.update(worker_options)
        config.pop("client", None)
        worker = Worker(client, **config)
    return worker
