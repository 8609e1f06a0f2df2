"""The FastAPI application factory: everything it needs is passed in (it never reads the environment)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from importlib import metadata
from typing import TYPE_CHECKING, Any

from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from sqlalchemy.orm import Session, sessionmaker

from api.console import router as console_router
from api.deps import Database, Services, reject_unknown_query
from api.idempotency import OPENAPI_PARAMETER as IDEMPOTENCY_PARAMETER
from api.idempotency import IdempotencyMiddleware, applies
from api.middleware import BodyLimitMiddleware, RequestLogMiddleware
from api.problems import PROBLEM_MEDIA_TYPE, install_problem_handlers
from api.routes import (
    bulk,
    cadences,
    consents,
    contacts,
    data_rights,
    enrollments,
    events,
    health,
    reports,
    sendgrid_webhooks,
    twilio_webhooks,
    unsubscribe,
    webhook_subscriptions,
)
from api.routes.tasks import router as tasks_router
from api.temporal_gateway import TemporalGateway
from api.webhook_support import OwedSignalRelay
from content.costs import load_costs
from content.policy import load_policy
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
    app = FastAPI(
        title="omnireach",
        version=_version(),
        description=DESCRIPTION,
        dependencies=[Depends(reject_unknown_query)],
        lifespan=_relaying_owed_signals,
    )
    app.state.services = Services(
        settings=settings,
        db=Database(session_factory),
        temporal=temporal,
        library=library,
        costs=load_costs(settings.costs_file),
        # The same rules the worker applies: an agent's claim and dial obey the operator's overrides too.
        policy=load_policy(settings.policy_file),
    )
    install_problem_handlers(app)
    # Busiest first: a request is matched against the routes in order, and the providers' callbacks (one per
    # message status) went through about 100 us of matching behind the rest; their paths overlap no other.
    for module in (twilio_webhooks, sendgrid_webhooks, enrollments, events, health, contacts, consents):
        app.include_router(module.router)
    for module in (bulk, cadences, reports, webhook_subscriptions):
        app.include_router(module.router)
    app.include_router(data_rights.router)
    app.include_router(unsubscribe.router, include_in_schema=False)  # a page for people, not the developer API
    app.include_router(tasks_router)
    app.include_router(console_router)  # the agent console: pages for people
    # Added last = outermost: the log sees every request, the body limit runs before any route.
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(BodyLimitMiddleware, streamed={bulk.BULK_PATH: bulk.BULK_MAX_BYTES})
    app.add_middleware(RequestLogMiddleware)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


@contextlib.asynccontextmanager
async def _relaying_owed_signals(app: FastAPI) -> AsyncIterator[None]:
    """While the API serves, it also sends the enrollment signals that webhook receipts still owe."""
    relay = asyncio.create_task(OwedSignalRelay(app.state.services).run())
    try:
        yield
    finally:
        relay.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relay


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
    _document_idempotency(schema)
    app.openapi_schema = schema
    return schema


def _document_idempotency(schema: dict[str, Any]) -> None:
    """Every POST the idempotency middleware covers takes the optional ``Idempotency-Key`` header, and
    every /v1 operation may answer 422 (an unknown query parameter, see ``reject_unknown_query``)."""
    for path, item in schema.get("paths", {}).items():
        operation = item.get("post")
        if operation is not None and applies("POST", path):
            operation.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
        if not path.startswith("/v1/"):
            continue
        for op in item.values():
            if isinstance(op, dict) and "responses" in op and "422" not in op["responses"]:
                op["responses"]["422"] = {
                    "description": "A query parameter is unknown or invalid; `errors` names it",
                    "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
                }
