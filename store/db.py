"""Engines, sessions and schema migrations for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_DATABASE_URL = "sqlite:///var/omnireach.db"
PING_AFTER_IDLE_SECONDS = 5.0
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def normalise_url(url: str | URL) -> URL:
    """Parse a database URL, pointing bare ``postgresql://`` (and ``postgres://``) at the psycopg 3 driver."""
    if isinstance(url, str) and url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _is_memory_sqlite(url: URL) -> bool:
    return url.database in (None, "", ":memory:") or url.query.get("mode") == "memory"


def _configure_sqlite(engine: Engine, url: URL) -> None:
    """WAL, foreign keys and a busy timeout on every connection; SQLAlchemy, not pysqlite, runs BEGIN.

    pysqlite's legacy transaction handling breaks SAVEPOINTs (which the outbox and event inserts rely on).
    ``BEGIN IMMEDIATE`` takes the write lock up front: a transaction that reads and then writes cannot fail
    with "database is locked" half-way; concurrent writers queue for up to ``busy_timeout`` instead.
    """
    memory = _is_memory_sqlite(url)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=5000")
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str | URL, **kwargs: Any) -> Engine:
    """An engine for ``url`` (a SQLite file's directory is created). Extra kwargs go to create_engine."""
    parsed = normalise_url(url)
    if parsed.get_backend_name() == "sqlite":
        if not _is_memory_sqlite(parsed) and not str(parsed.database).startswith("file:"):
            Path(str(parsed.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, **kwargs)
        _configure_sqlite(engine, parsed)
        return engine
    # Room for the API's 40 request threads without opening and closing connections under load (the default
    # 5 + 10 overflow churned hundreds of PostgreSQL sessions per 1,000 webhook calls); 40 per process in all.
    if "poolclass" not in kwargs:  # a caller's NullPool (tests, one-shot scripts) takes no sizes
        kwargs.setdefault("pool_size", 20)
        kwargs.setdefault("max_overflow", 20)
    engine = create_engine(parsed, **kwargs)
    if not kwargs.get("pool_pre_ping"):
        _ping_after_idle(engine)
    return engine


def _ping_after_idle(engine: Engine) -> None:
    """Make sure a pooled connection still works before handing it out, if it sat idle for a while.

    SQLAlchemy's ``pool_pre_ping`` pings on every checkout: a round trip (and two autocommit switches) in
    front of every transaction, a seventh of an agent's claim. A connection that was in use moments ago is
    alive or failed loudly (a failure invalidates the whole pool); the one that may have died quietly, in
    a database restart or a firewall's idle cut, is the one that sat in the pool. A failed ping makes the
    pool discard that connection and hand out another (SQLAlchemy's pessimistic disconnect recipe)."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return  # just connected, or used moments ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise exc.DisconnectionError(f"pooled connection failed its ping after idling: {error}") from error


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions for ``engine``. Objects stay readable after commit (activities return them afterwards)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


def alembic_config(url: str | URL | None = None) -> Config:
    """An Alembic ``Config`` for store/migrations built in code (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        rendered = normalise_url(url).render_as_string(hide_password=False)
        config.set_main_option("sqlalchemy.url", rendered.replace("%", "%%"))
    return config


def upgrade(target: str | URL | Engine = DEFAULT_DATABASE_URL, revision: str = "heads") -> None:
    """Run the migrations up to ``revision`` ("heads": every branch, while parallel work adds migrations).

    Passing an engine keeps its connect arguments (e.g. a PostgreSQL ``search_path``) and, for SQLite, its
    pragmas.
    """
    if isinstance(target, Engine):
        config = alembic_config(target.url)
        with target.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
        return
    engine = make_engine(target)
    try:
        upgrade(engine, revision)
    finally:
        engine.dispose()
