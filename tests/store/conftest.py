"""Store fixtures: a freshly migrated database on SQLite and on PostgreSQL.

``migrated_database`` is independent of pytest fixtures so it can move to tests/conftest.py when other
packages (task claiming, activities) want the same two databases.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import ClientCursor
from sqlalchemy import Engine, Executable
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from store.db import make_engine, make_session_factory, upgrade
from store.repos import upsert_contact
from store.repos.tasks import create_task, upsert_queue
from store.task_models import CallTask

PG_URL = os.environ.get("OMNIREACH_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
DATABASE_KINDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@dataclass(frozen=True)
class MigratedDatabase:
    """A database migrated to head: its kind ("sqlite" / "postgres"), engine and session factory."""

    kind: str
    engine: Engine
    session_factory: sessionmaker[Session]


@cache
def _postgres_problem() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return f"PostgreSQL not reachable at {PG_URL}: {' '.join(str(exc).split())}"


def require_postgres() -> None:
    """Fail when PostgreSQL is down on CI (env CI set); skip with the reason elsewhere."""
    problem = _postgres_problem()
    if problem is None:
        return
    hint = " (start it: pg_ctlcluster --skip-systemctl-redirect <version> main start)"
    if os.environ.get("CI"):
        pytest.fail(problem + hint, pytrace=False)
    pytest.skip(problem + hint)


def _make_engine(kind: str, tmp_path: Path, schema: str | None) -> Engine:
    if kind == "sqlite":
        return make_engine(f"sqlite:///{tmp_path / 'store' / 'omnireach.db'}")
    return make_engine(PG_URL, connect_args={"options": f"-csearch_path={schema}"})


@contextmanager
def empty_database(kind: str, tmp_path: Path) -> Iterator[Engine]:
    """An engine on an empty database: a SQLite file under tmp_path, or a fresh PostgreSQL schema."""
    if kind == "sqlite":
        engine = _make_engine(kind, tmp_path, None)
        try:
            yield engine
        finally:
            engine.dispose()
        return
    if kind != "postgres":
        raise ValueError(f"unknown database kind {kind!r}")
    require_postgres()
    schema = f"t_{uuid.uuid4().hex}"
    admin = make_engine(PG_URL, poolclass=NullPool)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    engine = _make_engine(kind, tmp_path, schema)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@contextmanager
def migrated_database(kind: str, tmp_path: Path) -> Iterator[MigratedDatabase]:
    """A database of ``kind`` migrated to head, removed afterwards."""
    with empty_database(kind, tmp_path) as engine:
        upgrade(engine)
        yield MigratedDatabase(kind=kind, engine=engine, session_factory=make_session_factory(engine))


@pytest.fixture(scope="module", params=DATABASE_KINDS)
def db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MigratedDatabase]:
    """One migrated database per test module and kind; tests create their own contacts to stay apart."""
    with migrated_database(request.param, tmp_path_factory.mktemp("db")) as database:
        yield database


@pytest.fixture
def session(db: MigratedDatabase) -> Iterator[Session]:
    with db.session_factory() as s:
        yield s


@pytest.fixture
def contact_id(db: MigratedDatabase) -> str:
    """A new committed contact's id."""
    with db.session_factory() as s:
        contact, _ = upsert_contact(s, external_id=f"ext-{uuid.uuid4().hex}", name="Test Person")
        s.commit()
        return contact.id


def open_call_task(session: Session, *, phone: str, purpose: str, created_at: datetime, **fields: Any) -> CallTask:
    """A new contact with ``phone`` and an open call task for it in a new queue (``fields``: more of the task's)."""
    contact, _ = upsert_contact(session, external_id=f"ext-{uuid.uuid4().hex}", name="Call Task", phone=phone)
    queue = f"q{uuid.uuid4().hex[:8]}"
    upsert_queue(session, queue)
    session.flush()
    task, _ = create_task(
        session,
        id=str(uuid.uuid4()),
        created_at=created_at,
        due_at=created_at + timedelta(hours=1),
        contact_id=contact.id,
        queue=queue,
        kind="escalate",
        purpose=purpose,
        **fields,
    )
    return task


def generic_plan(session: Session, statement: Executable | str, params: dict[str, Any]) -> str:
    """PostgreSQL's EXPLAIN of the plan it keeps for ``statement`` once prepared: psycopg prepares a statement
    after its fifth run, and after five more the server may keep one generic plan, made without the parameters'
    values. A hot statement must be fast under that plan, not only under the one EXPLAIN with values shows.
    ``statement`` is a SQLAlchemy statement or the SQL a repo runs on the driver (``%(name)s`` parameters)."""
    connection = session.connection()
    if isinstance(statement, str):
        sql, values = statement, dict(params)
    else:
        compiled = statement.compile(dialect=connection.dialect)
        values = compiled.construct_params(params)

        def expanded(match: re.Match[str]) -> str:  # an IN list: one parameter per item, as SQLAlchemy sends it
            items = values.pop(match.group(1))
            values.update({f"{match.group(1)}_{n}": item for n, item in enumerate(items)})
            return ", ".join(f"%({match.group(1)}_{n})s" for n in range(len(items)))

        sql = re.sub(r"__\[POSTCOMPILE_(\w+)\]", expanded, compiled.string)
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", sql)))
    numbered = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", sql)
    driver = connection.connection.driver_connection
    driver.execute(f"PREPARE generic_plan AS {numbered}")
    try:
        driver.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        arguments = ClientCursor(driver).mogrify(", ".join(["%s"] * len(names)), [values[n] for n in names])
        return "\n".join(row[0] for row in driver.execute(f"EXPLAIN EXECUTE generic_plan({arguments})"))
    finally:
        driver.execute("DEALLOCATE generic_plan")
