"""RFC 9457 problem details: every error the API returns is ``application/problem+json``.

A problem says what was wrong (``detail``, naming the field) and how to fix it; validation problems list
each field in ``errors``. Handlers here turn FastAPI's and Starlette's own errors into problems too, so a
client only ever has to parse one error shape.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:omnireach:problem:"
log = logging.getLogger("omnireach.api")

TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    415: "Unsupported media type",
    422: "Validation failed",
    500: "Internal server error",
    503: "Service unavailable",
}
SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    500: "internal-error",
    503: "service-unavailable",
}


class FieldError(BaseModel):
    """One invalid field: its dotted path in the request (``phone``, ``attributes.plan``) and what to do."""

    field: str = Field(examples=["timezone"])
    message: str = Field(examples=["'Mars/Base' is not an IANA time zone; use a name such as Asia/Jakarta"])


class Problem(BaseModel):
    """An error (RFC 9457 problem details)."""

    type: str = Field(examples=["urn:omnireach:problem:validation-error"])
    title: str = Field(examples=["Validation failed"])
    status: int = Field(examples=[422])
    detail: str = Field(examples=["timezone: 'Mars/Base' is not an IANA time zone; use a name such as Asia/Jakarta"])
    errors: list[FieldError] | None = None


class ProblemError(Exception):
    """Raise anywhere in a request to answer with a problem (and roll the request's transaction back)."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: list[FieldError] | None = None,
        slug: str | None = None,
        title: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.slug = slug or SLUGS.get(status, "error")
        self.title = title or TITLES.get(status, "Error")
        self.headers = headers

    @classmethod
    def invalid(cls, field: str, message: str) -> ProblemError:
        """A 422 about one field of the request body."""
        return cls.invalid_fields([FieldError(field=field, message=message)])

    @classmethod
    def invalid_fields(cls, errors: list[FieldError]) -> ProblemError:
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
        return cls(422, detail, errors=errors)


def problem_body(
    status: int,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    slug: str | None = None,
    title: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_PREFIX + (slug or SLUGS.get(status, "error")),
        "title": title or TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = [e.model_dump() for e in errors]
    return body


def problem_bytes(status: int, detail: str) -> bytes:
    """A problem body for raw ASGI middleware (before FastAPI has a request)."""
    return json.dumps(problem_body(status, detail), separators=(",", ":")).encode()


def problem_response(
    status: int,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    slug: str | None = None,
    title: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, detail, errors=errors, slug=slug, title=title),
        status_code=status,
        media_type=PROBLEM_MEDIA_TYPE,
        headers=headers,
    )


# ---- pydantic validation errors -> field errors ---------------------------------------------------
_HINTS = {
    "missing": "is required",
    "extra_forbidden": "is not a known field; check its spelling against the API documentation (/docs)",
    "timezone_aware": "must include a UTC offset, e.g. 2026-01-31T09:00:00+07:00 or 2026-01-31T02:00:00Z",
    "datetime_from_date_parsing": "must be an ISO 8601 date-time with a UTC offset, e.g. 2026-01-31T09:00:00Z",
    "datetime_parsing": "must be an ISO 8601 date-time with a UTC offset, e.g. 2026-01-31T09:00:00Z",
    "datetime_type": "must be an ISO 8601 date-time with a UTC offset, e.g. 2026-01-31T09:00:00Z",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
}


def _field_name(loc: tuple[Any, ...]) -> str:
    parts = list(loc)
    if parts and parts[0] in ("body", "query", "path", "header"):
        where = parts.pop(0)
        if not parts:
            return "body" if where == "body" else where
    return ".".join(str(p) for p in parts) or "body"


def _message(err: dict[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "json_invalid":
        reason = (err.get("ctx") or {}).get("error", "invalid JSON")
        return f"the body is not valid JSON ({reason}); send one JSON object with Content-Type: application/json"
    if kind in _HINTS:
        return _HINTS[kind]
    message = str(err.get("msg", "is invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if kind in ("literal_error", "enum"):
        return message.replace("Input should be", "must be")
    return message


def field_errors(exc: RequestValidationError) -> list[FieldError]:
    errors: list[FieldError] = []
    for err in exc.errors():
        loc = tuple(err.get("loc", ()))
        if err.get("type") == "json_invalid":
            loc = ("body",)
        if err.get("type") == "missing" and loc == ("body",):
            errors.append(
                FieldError(field="body", message="is empty; send one JSON object with Content-Type: application/json")
            )
            continue
        if err.get("type") == "model_attributes_type" and loc == ("body",):
            errors.append(
                FieldError(field="body", message="must be a JSON object; send one with Content-Type: application/json")
            )
            continue
        errors.append(FieldError(field=_field_name(loc), message=_message(err)))
    return errors


def install_problem_handlers(app: FastAPI) -> None:
    """Problems for our own errors, request validation and Starlette's HTTP errors (404 route, 405)."""

    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(
            exc.status, exc.detail, errors=exc.errors, slug=exc.slug, title=exc.title, headers=exc.headers
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = field_errors(exc)
        detail = "; ".join(f"{e.field}: {e.message}" for e in errors) or "the request is invalid"
        return problem_response(422, detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(exc.status_code, "error")
        if exc.status_code == 400 and detail == "There was an error parsing the body":
            # FastAPI's answer to a body that is not UTF-8 / not decodable: a field problem like bad JSON.
            error = FieldError(field="body", message="is not valid UTF-8 JSON; send one JSON object as UTF-8")
            return problem_response(422, f"body: {error.message}", errors=[error])
        if exc.status_code == 404 and detail == "Not Found":
            detail = f"no such endpoint: {request.method} {request.url.path}; see /docs for the API"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}; see /docs for the API"
        return problem_response(exc.status_code, detail, headers=getattr(exc, "headers", None))


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries (Problem schema) for the error statuses a route can return."""
    descriptions = {
        401: "No API key, or an unknown or revoked one",
        403: "The API key lacks the scope this endpoint needs",
        404: "No such resource",
        409: "The request conflicts with the current state",
        413: "The request body is larger than 2 MB",
        422: "A field is invalid; `errors` lists each field and how to fix it",
        500: "Unexpected error; nothing was changed",
        503: "A dependency (Temporal) is unavailable; nothing was changed, retry later",
    }
    return {s: {"model": Problem, "description": descriptions.get(s, TITLES.get(s, "Error"))} for s in statuses}
