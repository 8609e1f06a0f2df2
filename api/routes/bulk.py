"""POST /v1/enrollments:bulk: enroll up to 100k contacts from one JSONL or CSV upload, streamed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from api.bulk_ops import BadFile, BulkEnroller, enroll_rows, lines_of
from api.deps import Developer, ServicesDep
from api.problems import ProblemError, problem_responses
from api.schemas import ID_PATTERN

router = APIRouter(prefix="/v1", tags=["enrollments"])
log = logging.getLogger("omnireach.api")
BULK_MAX_BYTES = 64 * 1024 * 1024
BULK_PATH = "/v1/enrollments:bulk"
MEDIA_TYPES = {
    "text/csv": "csv",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
    "application/json-lines": "jsonl",
}
_LINES = {"type": "string", "description": "The file's text."}


class RowErrorOut(BaseModel):
    line: int = Field(examples=[17], description="1-based line number in the uploaded file (the CSV header is line 1).")
    field: str = Field(examples=["contact_id"])
    message: str = Field(examples=["'ext:crm-9': no such contact; import it first"])


class BulkEnrollmentOut(BaseModel):
    """What happened to every row. Enrolled = started + already_running + already_enrolled."""

    rows: int = Field(description="Non-blank rows read (the CSV header not counted).")
    started: int = Field(description="New enrollments started by this request.")
    already_running: int = Field(description="Rows whose enrollment was already running (nothing new).")
    already_enrolled: int = Field(description="Rows whose contact already went through this cadence (not restarted).")
    duplicates: int = Field(description="Rows repeating an earlier row of the same file.")
    failed: int = Field(description="Bad rows; each is listed in `errors` by line.")
    errors: list[RowErrorOut]
    errors_truncated: bool = Field(description="True when more than 10,000 rows failed: only the first are listed.")


@router.post(
    "/enrollments:bulk",
    response_model=BulkEnrollmentOut,
    summary="Enroll many contacts from a JSONL or CSV file (streamed, rerun-safe)",
    responses=problem_responses(400, 401, 403, 413, 415, 422, 500),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "JSONL (`application/x-ndjson`): one object per line, e.g. "
            '`{"contact_id": "ext:crm-1", "cadence_id": "webinar-nurture"}`. CSV (`text/csv`): a header row '
            "naming `contact_id` or `external_id` and optionally `cadence_id`. At most 64 MB (about 100k rows "
            "per request is the intended size).",
            "content": {media: {"schema": _LINES} for media in ("application/x-ndjson", "text/csv")},
        }
    },
)
async def bulk_enroll(
    request: Request,
    services: ServicesDep,
    _: Developer,
    cadence_id: Annotated[
        str | None,
        Query(pattern=ID_PATTERN, description="The cadence for rows without a cadence_id column."),
    ] = None,
) -> BulkEnrollmentOut:
    """Reads the upload as a stream and enrolls each good row, starting workflows in concurrent batches.

    Bad rows (unknown contact or cadence, erased contact, malformed line) are reported by line and the
    good rows are kept. Rerunning the same file enrolls nothing new: running enrollments are reported
    `already_running`, finished ones `already_enrolled` (a bulk load never restarts a finished enrollment;
    use POST /v1/enrollments for that).
    """
    fmt = _format(request.headers.get("content-type", ""))
    if cadence_id is not None and cadence_id not in services.library.cadences:
        known = ", ".join(sorted(services.library.cadences)) or "none are loaded"
        raise ProblemError.invalid("cadence_id", f"unknown cadence {cadence_id!r}; known cadences: {known}")
    enroller = BulkEnroller(services.db.session_factory, services.temporal, services.library)
    try:
        result = await enroller.run(enroll_rows(lines_of(_limited(request)), fmt, cadence_id))
    except BadFile as exc:
        raise ProblemError.invalid("body", str(exc)) from exc
    return BulkEnrollmentOut(
        rows=result.rows,
        started=result.started,
        already_running=result.already_running,
        already_enrolled=result.already_enrolled,
        duplicates=result.duplicates,
        failed=result.failed,
        errors=[RowErrorOut(line=e.line, field=e.field, message=e.message) for e in result.errors],
        errors_truncated=result.errors_truncated,
    )


def _format(content_type: str) -> Literal["csv", "jsonl"]:
    media = content_type.split(";")[0].strip().lower()
    if media in MEDIA_TYPES:
        return MEDIA_TYPES[media]  # type: ignore[return-value]
    raise ProblemError(
        415,
        f"Content-Type {media or '(none)'!r} is not accepted here; send the file as text/csv or "
        "application/x-ndjson (one JSON object per line)",
    )


async def _limited(request: Request) -> AsyncIterator[bytes]:
    received = 0
    async for chunk in request.stream():
        received += len(chunk)
        if received > BULK_MAX_BYTES:
            raise ProblemError(
                413,
                f"the upload is larger than {BULK_MAX_BYTES // (1024 * 1024)} MB; rows before that point were "
                "processed. Split the file and send the rest (rerunning rows is safe)",
            )
        yield chunk
