"""Liveness and dependencies: is the database answering, is Temporal reachable (no authentication)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from sqlalchemy import text
from sqlalchemy.orm import Session

from api.deps import ServicesDep
from api.schemas import HealthOut

router = APIRouter(tags=["health"])
log = logging.getLogger("omnireach.api")


@router.get(
    "/healthz",
    response_model=HealthOut,
    summary="Health of the API and what it depends on",
    responses={503: {"model": HealthOut, "description": "The database is unreachable"}},
)
async def healthz(response: Response, services: ServicesDep) -> HealthOut:
    """200 while the database answers (reads work even if Temporal is down: `temporal` says so);
    503 when the database does not answer."""
    database = "ok"
    try:
        await services.db.run(_ping)
    except Exception as exc:  # any failure means "unreachable" to a health check
        log.warning("event=health database=unreachable error=%s", type(exc).__name__)
        database = "unreachable"
    temporal = "ok" if await services.temporal.healthy() else "unreachable"
    if database != "ok":
        response.status_code = 503
    return HealthOut(
        status="ok" if database == "ok" else "error",
        database=database,  # type: ignore[arg-type]
        temporal=temporal,
    )  # type: ignore[arg-type]


def _ping(session: Session) -> None:
    session.execute(text("SELECT 1"))
