"""The FastAPI application factory: everything it needs is passed in (it never reads the environment)."""

from __future__ import annotations

import json
from importlib import metadata
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy.orm import Session, sessionmaker

from api.deps import Database, Services
from api.middleware import BodyLimitMiddleware, RequestLogMiddleware
from api.problems import PROBLEM_MEDIA_TYPE, install_problem_handlers
from api.routes import consents, contacts, enrollments, events, health
from api.temporal_gateway import TemporalGateway
from core.settings import Settings

if TYPE_CHECKING:
    from content.cadences import Library

DESCRIPTION = """\
The developer API of omnireach: create contacts, record consent with its evidence, enroll contacts in
cadences and send events from other systems.

Authenticate with `Authorization: Bearer <api key>`. Errors are `application/problem+json`
(RFC 9457) with a `detail` that names the field and says how to fix it; a failed request changes nothing.
Request bodies are limited to 2 MB.
"""


def _version() -> str:
    try:
        return metadata.version("omnireach")
    except metadata.PackageNotFoundError:
        return "0.0.0"


def create_app(
    settings: Settings, session_factory: sessionmaker[Session], temporal: TemporalGateway, library: Library
) -> FastAPI:
    """The API with its routes, problem handlers, body limit and request log."""
    app = FastAPI(title="omnireach", version=_version(), description=DESCRIPTION)
    app.state.services = Services(settings=settings, db=Database(session_factory), temporal=temporal, library=library)
    install_problem_handlers(app)
    for module in (health, contacts, consents, enrollments, events):
        app.include_router(module.router)
    # Added last = outermost: the log sees every request, the body limit runs before any route.
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(RequestLogMiddleware)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema with error responses declared as ``application/problem+json``.

    FastAPI adds a 422 ``HTTPValidationError`` to every route with parameters; ours never answer with that
    shape (routes that validate a body declare a 422 Problem), so the generated ones are dropped.
    """
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            for code, response in list(responses.items()):
                body = response.get("content", {}).get("application/json", {})
                ref = body.get("schema", {}).get("$ref", "")
                if ref.endswith("/HTTPValidationError"):
                    del responses[code]
                elif code[:1] in ("4", "5") and ref.endswith("/Problem"):
                    response["content"] = {PROBLEM_MEDIA_TYPE: body}
    if "HTTPValidationError" not in json.dumps(schema.get("paths", {})):
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
    app.openapi_schema = schema
    return schema
