"""Cursor pagination for every list endpoint: ``?limit=&cursor=`` in, ``{"items", "next_cursor"}`` out.

A cursor is an opaque, URL-safe token encoding the sort key of the last item returned (keyset
pagination): pages never skip or repeat rows when new rows arrive, unlike offsets. Clients pass
``next_cursor`` back unchanged; ``null`` means the last page. Use it in a route like::

    @router.get("", response_model=Page[ThingOut])
    async def things(services: ServicesDep, _: Developer, limit: Limit = 50, cursor: Cursor = None):
        after = decode_cursor(cursor)            # {} on the first page
        rows = ...query ordered by id, id > after.get("id"), limit + 1 rows...
        return page(rows, limit, lambda r: {"id": r.id}, ThingOut.model_validate)
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from api.problems import ProblemError

T = TypeVar("T")
R = TypeVar("R")
MAX_LIMIT = 200

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"Items per page (1-{MAX_LIMIT}).")]
Cursor = Annotated[
    str | None,
    Query(
        max_length=500,
        description="`next_cursor` from the previous page, unchanged; omit it for the first page.",
    ),
]


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next (null: last page)."""

    items: list[T]
    next_cursor: str | None = Field(default=None, description="Cursor of the next page; null on the last page.")


def encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True, default=str).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(cursor: str | None, *, field: str = "cursor") -> dict[str, Any]:
    """The position a cursor encodes ({} for none); a 422 naming ``field`` for anything we did not issue."""
    if not cursor:
        return {}
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise _bad(field) from exc
    if not isinstance(position, dict):
        raise _bad(field)
    return position


def _bad(field: str) -> ProblemError:
    return ProblemError.invalid(
        field, "is not a cursor this API returned; pass next_cursor from the previous page unchanged, or omit it"
    )


def page(rows: Sequence[R], limit: int, position: Callable[[R], dict[str, Any]], convert: Callable[[R], T]) -> Page[T]:
    """A page from ``rows`` fetched with ``limit + 1``: the extra row only says whether there is more."""
    more = len(rows) > limit
    kept = list(rows[:limit])
    cursor = encode_cursor(position(kept[-1])) if more and kept else None
    return Page[Any](items=[convert(r) for r in kept], next_cursor=cursor)  # type: ignore[return-value]


def cursor_value(position: dict[str, Any], name: str, kind: type, *, field: str = "cursor") -> Any:
    """One typed value from a decoded cursor (None when absent); a 422 when it has the wrong type."""
    value = position.get(name)
    if value is None:
        return None
    if not isinstance(value, kind) or isinstance(value, bool):
        raise _bad(field)
    return value
