"""A hot statement run on the session's own driver connection, inside the session's transaction.

SQLAlchemy's execution of a statement costs about half a millisecond of CPU whatever the statement does
(parameter processing, result metadata, ORM loading). Where many callers in one process contend for that
CPU (agents claiming tasks), the statement is compiled once per dialect and run by the driver directly; its
parameters and rows still go through the columns' own bind and result processors, so values look exactly
as SQLAlchemy would hand them over (aware UTC datetimes, parsed JSON).

Only statements without expanding parameters (``IN`` lists) qualify: those are re-rendered per execution.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from psycopg.rows import tuple_row
from sqlalchemy import Select
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session


@dataclass(frozen=True)
class _Compiled:
    sql: str
    binds: Callable[[Mapping[str, Any]], dict[str, Any]]
    bind_processors: tuple[tuple[str, Callable[[Any], Any]], ...]
    result_processors: tuple[Callable[[Any], Any] | None, ...]


class DriverStatement:
    """``statement`` (a Core select) ready to run on a PostgreSQL session's psycopg connection."""

    def __init__(self, statement: Select) -> None:
        self.statement = statement
        self.keys = tuple(column.key for column in statement.selected_columns)
        self._compiled: dict[str, _Compiled] = {}

    def _for(self, dialect: Dialect) -> _Compiled:
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = self._compile(dialect)
        return compiled

    def _compile(self, dialect: Dialect) -> _Compiled:
        compiled = self.statement.compile(dialect=dialect)
        if "POSTCOMPILE" in compiled.string:
            raise ValueError("a statement with expanding parameters cannot be compiled once")
        bind_processors = []
        for name, bind in compiled.binds.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if process is not None:
                bind_processors.append((name, process))
        result_processors = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None)
            for column in self.statement.selected_columns
        )
        return _Compiled(compiled.string, compiled.construct_params, tuple(bind_processors), result_processors)

    def rows(self, session: Session, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The statement's rows, each a dict by column key, in the session's transaction."""
        connection = session.connection()
        compiled = self._for(connection.dialect)
        values = compiled.binds(params)
        for name, process in compiled.bind_processors:
            values[name] = process(values[name])
        cursor = connection.connection.driver_connection.cursor(row_factory=tuple_row)
        try:
            found = cursor.execute(compiled.sql, values).fetchall()
        finally:
            cursor.close()
        return [self._converted(compiled.result_processors, row) for row in found]

    def _converted(self, processors: tuple[Callable[[Any], Any] | None, ...], row: tuple) -> dict[str, Any]:
        values = (value if process is None else process(value) for process, value in zip(processors, row, strict=True))
        return dict(zip(self.keys, values, strict=True))
