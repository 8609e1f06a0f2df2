"""Engines, the UTC column type and the migrations themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from store.db import DEFAULT_DATABASE_URL, alembic_config, make_engine, normalise_url, upgrade
from store.models import Base
from store.repos import upsert_contact
from tests.store.conftest import DATABASE_KINDS, MigratedDatabase, empty_database

pytestmark = pytest.mark.timeout(120)

TABLES = {
    "contacts",
    "consent_records",
    "suppressions",
    "enrollments",
    "outbox_messages",
    "events",
    "send_decisions",
    "api_keys",
}


def test_default_url_is_sqlite_under_var() -> None:
    assert DEFAULT_DATABASE_URL == "sqlite:///var/omnireach.db"


@pytest.mark.parametrize("url", ["postgresql://u@h:5432/d", "postgres://u@h:5432/d", "postgresql+psycopg://u@h:5432/d"])
def test_postgres_urls_use_psycopg3(url: str) -> None:
    assert normalise_url(url).drivername == "postgresql+psycopg"
    assert make_engine(url).dialect.driver == "psycopg"


def test_sqlite_engine_creates_directory_and_sets_pragmas(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "x.db"
    engine = make_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 5000
    engine.dispose()
    assert path.exists()


def test_upgrade_accepts_a_url(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new' / 'db.sqlite'}"
    upgrade(url)
    engine = make_engine(url)
    assert set(inspect(engine).get_table_names()) >= TABLES
    engine.dispose()


@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_migrations_empty_to_head_match_models_and_go_back_down(kind: str, tmp_path: Path) -> None:
    with empty_database(kind, tmp_path) as engine:
        upgrade(engine)
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) >= TABLES
            [head] = ScriptDirectory.from_config(alembic_config()).get_heads()  # one head: branches are merged
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
            diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diffs == [], f"models and migrations disagree; write a migration: {diffs}"

        config = alembic_config(engine.url)
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, "base")
        with engine.connect() as conn:
            assert not (TABLES & set(inspect(conn).get_table_names()))
        upgrade(engine)  # and up again: the downgrade left nothing behind (triggers, functions)
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) >= TABLES


def test_datetimes_come_back_aware_utc(session, db: MigratedDatabase) -> None:
    jakarta = timezone(timedelta(hours=7))
    at = datetime(2026, 3, 1, 9, 30, tzinfo=jakarta)
    contact, _ = upsert_contact(session, external_id=f"tz-{db.kind}", last_inbound_at=at)
    session.commit()
    session.expire_all()
    stored = session.get(type(contact), contact.id)
    assert stored.last_inbound_at == at
    assert stored.last_inbound_at.tzinfo == UTC
    assert stored.last_inbound_at.hour == 2
    assert stored.created_at.tzinfo == UTC


def test_naive_datetimes_are_refused(session) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        upsert_contact(session, external_id="naive", last_inbound_at=datetime(2026, 1, 1, 12, 0))
