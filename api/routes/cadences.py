"""Cadences as loaded by the API: ids, and the snapshot a foreign Temporal caller passes at start."""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from api.deps import Developer, ServicesDep
from api.problems import ProblemError, problem_responses

router = APIRouter(prefix="/v1/cadences", tags=["cadences"])
CadenceRef = Annotated[str, Path(description="The cadence id.", examples=["webinar-nurture"])]


class CadenceSummaryOut(BaseModel):
    id: str
    name: str
    purpose: str
    steps: int
    snapshot_hash: str = Field(description="Changes whenever the cadence's YAML changes what it does.")


class CadenceOut(CadenceSummaryOut):
    snapshot: dict[str, Any] = Field(
        description="The cadence as the `contact-cadence` workflow receives it (`EnrollmentInput.cadence`): "
        "pass it unchanged when starting an enrollment through Temporal directly."
    )


def _hash(snapshot: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(snapshot, sort_keys=True).encode()).hexdigest()[:16]


@router.get(
    "",
    response_model=list[CadenceSummaryOut],
    summary="The loaded cadences",
    responses=problem_responses(401, 403, 500),
)
async def list_cadences(services: ServicesDep, _: Developer) -> list[CadenceSummaryOut]:
    """Every valid cadence the API loaded at start, by id (a short, bounded list: not paginated)."""
    out = []
    for cadence_id in sorted(services.library.cadences):
        cadence = services.library.cadences[cadence_id]
        snapshot = cadence.snapshot()
        out.append(
            CadenceSummaryOut(
                id=cadence.id,
                name=cadence.name,
                purpose=cadence.purpose,
                steps=len(cadence.steps),
                snapshot_hash=_hash(snapshot),
            )
        )
    return out


@router.get(
    "/{cadence_id}",
    response_model=CadenceOut,
    summary="A cadence and its workflow snapshot",
    responses=problem_responses(401, 403, 404, 500),
)
async def read_cadence(cadence_id: CadenceRef, services: ServicesDep, _: Developer) -> CadenceOut:
    """The cadence with the snapshot to put in `EnrollmentInput.cadence` (see the Temporal contract)."""
    cadence = services.library.cadences.get(cadence_id)
    if cadence is None:
        known = ", ".join(sorted(services.library.cadences)) or "none are loaded"
        raise ProblemError(404, f"no cadence {cadence_id!r}; known cadences: {known}")
    snapshot = cadence.snapshot()
    return CadenceOut(
        id=cadence.id,
        name=cadence.name,
        purpose=cadence.purpose,
        steps=len(cadence.steps),
        snapshot_hash=_hash(snapshot),
        snapshot=snapshot,
    )
