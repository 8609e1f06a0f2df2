"""Engines, the UTC column type and the migrations themselves."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from store import db as store_db
from store.db import DEFAULT_DATABASE_URL, alembic_config, make_engine, normalise_url, upgrade
from store.models import Base
from store.repos import upsert_contact
from tests.store.conftest import DATABASE_KINDS, PG_URL, MigratedDatabase, empty_database, require_postgres

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


# Indexes with a descending column: (column, descending) in order.
SORTED_INDEXES = {
    "ix_call_tasks_claim_order": [
        ("queue", False),
        ("status", False),
        ("priority", True),
        ("due_at", False),
        ("created_at", False),
        ("id", False),
    ]
}


@pytest.mark.parametrize("kind", DATABASE_KINDS)
def test_migrations_empty_to_head_match_models_and_go_back_down(kind: str, tmp_path: Path) -> None:
    with empty_database(kind, tmp_path) as engine:
        upgrade(engine)
        with engine.connect() as conn:
            assert set(inspect(conn).get_table_names()) >= TABLES
            [head] = ScriptDirectory.from_config(alembic_config()).get_heads()  # one head: branches are merged
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head
            opts = {"compare_type": True}
            if kind == "sqlite":  # SQLite's reflection drops an index column's DESC: compared by PRAGMA below
                opts["include_object"] = lambda _obj, name, type_, *_: not (type_ == "index" and name in SORTED_INDEXES)
                for name, columns in SORTED_INDEXES.items():
                    info = conn.exec_driver_sql(f"PRAGMA index_xinfo({name})").mappings().all()
                    assert [(c["name"], bool(c["desc"])) for c in info if c["key"]] == columns
            diffs = compare_metadata(MigrationContext.configure(conn, opts=opts), Base.metadata)
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


@pytest.mark.postgres
def test_a_connection_killed_while_idle_is_replaced_before_use(monkeypatch: pytest.MonkeyPatch) -> None:
    """A database restart or a firewall's idle cut kills pooled connections quietly: the next transaction
    must get a working connection, not an error (the pool pings connections that sat idle)."""
    require_postgres()
    monkeypatch.setattr(store_db, "PING_AFTER_IDLE_SECONDS", 0.0)
    engine = make_engine(PG_URL, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            doomed = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
        with psycopg.connect(PG_URL, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (doomed,))
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != doomed
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_a_connection_in_steady_use_is_not_pinged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pinging costs a round trip in front of every transaction; a connection used moments ago skips it."""
    require_postgres()
    engine = make_engine(PG_URL, pool_size=1, max_overflow=0)
    pings: list[object] = []
    monkeypatch.setattr(engine.dialect, "do_ping", lambda dbapi_connection: pings.append(dbapi_connection) or True)
    try:
        for _ in range(3):
            with engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        assert pings == []
        monkeypatch.setattr(store_db, "PING_AFTER_IDLE_SECONDS", 0.0)
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        assert len(pings) == 1
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_the_runbooks_concurrent_indexes_are_the_ones_the_upgrade_would_build(tmp_path: Path) -> None:
    """docs/runbook.md tells operators of a busy database to build three indexes beforehand with CONCURRENTLY;
    the upgrade must then accept them and end with exactly the schema of the models."""
    runbook = (Path(__file__).parents[2] / "docs" / "runbook.md").read_text()
    sql = runbook.split("```sql\n", 1)[1].split("```", 1)[0]
    statements = [s.strip() for s in sql.split(";") if "CREATE INDEX CONCURRENTLY" in s]
    assert len(statements) == 3
    with empty_database("postgres", tmp_path) as engine:
        upgrade(engine, "0006")
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")  # CONCURRENTLY refuses a transaction
            for statement in statements:
                conn.exec_driver_sql(statement)
        upgrade(engine)
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), Base.metadata)
        assert diffs == [], f"the run-book's indexes differ from the models': {diffs}"
