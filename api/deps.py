"""Request dependencies: the app's services, one database transaction per call, API-key authentication.

Routes are ``async`` (Temporal calls are awaited on the event loop); database work runs in a worker
thread through ``Database.run`` so a slow query never blocks other requests. Each ``run`` is one
transaction: it commits when the function returns and rolls back when it raises, so a failed request
changes nothing.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, TypeVar, get_args, get_origin

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.problems import FieldError, ProblemError
from api.temporal_gateway import TemporalGateway
from core.jurisdiction import JurisdictionPolicy, default_policy
from core.reports import Costs
from core.settings import Settings
from store.repos.api_keys import verify_api_key
from store.repos.claims import run_serialized
from store.transaction_groups import TransactionGroups

if TYPE_CHECKING:
    from content.cadences import Library

T = TypeVar("T")
log = logging.getLogger("omnireach.api")
SCOPES = ("admin", "developer", "agent")


class Database:
    """Runs a function in one transaction on a worker thread; maps database conflicts to problems."""

    def __init__(self, session_factory: sessionmaker[Session]):
        self.session_factory = session_factory
        # Agents pressing "next task" together share transactions (store.transaction_groups): a transaction's
        # fixed cost (session, BEGIN, COMMIT's round trip and flush) is a third of a claim's CPU.
        self.claim_groups = TransactionGroups(partial(run_serialized, session_factory))
        # What the API's modules batch on this database, by name, made on first use: the group commits
        # (api.group_commit) and the webhooks' "signalled" marks. Held here so they live and die with the app.
        self.batchers: dict[str, Any] = {}

    async def run(self, fn: Callable[[Session], T]) -> T:
        return await run_in_threadpool(self._run, fn)

    def _run(self, fn: Callable[[Session], T]) -> T:
        try:
            with self.session_factory.begin() as session:
                return fn(session)
        except IntegrityError as exc:
            log.warning("event=db_conflict error=%s", type(exc.orig).__name__)
            raise ProblemError(
                409,
                "the change conflicts with data written at the same time (a duplicate or "
                "a record that no longer exists); nothing was changed, retry the "
                "request",
            ) from exc
        except OperationalError as exc:
            log.error("event=db_unavailable error=%s", type(exc.orig).__name__)
            raise ProblemError(
                503, "the database is unavailable or busy; nothing was changed, retry the request later"
            ) from exc


@dataclass(frozen=True)
class Services:
    """Everything a route needs, built once by ``create_app``."""

    settings: Settings
    db: Database
    temporal: TemporalGateway
    library: Library
    costs: Costs = field(default_factory=Costs)  # unit costs for reports (costs.yaml)
    policy: JurisdictionPolicy = field(default_factory=default_policy)  # legal hours, registries (+ operator file)


@dataclass(frozen=True)
class Principal:
    """Who is calling: a named key and its scopes (the bootstrap admin key is named ``admin``)."""

    name: str
    scopes: frozenset[str]
    key_prefix: str = ""
    agent_id: str | None = None

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes


async def get_services(request: Request) -> Services:  # async: FastAPI runs a plain def on a thread
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


async def authenticate(
    request: Request,
    services: ServicesDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller behind ``Authorization: Bearer <key>``, or a 401 problem saying what to send."""
    if credentials is None:
        header = request.headers.get("authorization")
        detail = (
            "missing Authorization header; send Authorization: Bearer <api key>"
            if not header
            else "the Authorization header must be 'Bearer <api key>' (scheme Bearer, one space, the key)"
        )
        raise ProblemError(401, detail, headers=_CHALLENGE)
    token = credentials.credentials.strip()
    admin_key = services.settings.admin_api_key
    if admin_key and hmac.compare_digest(token.encode(), admin_key.encode()):
        principal = Principal(name="admin", scopes=frozenset({"admin"}), key_prefix="admin")
    else:
        principal = await services.db.run(lambda s: _lookup(s, token))  # type: ignore[assignment]
        if principal is None:
            raise ProblemError(
                401,
                "the API key is unknown or revoked; check it was copied whole, or ask an admin for a new one",
                headers=_CHALLENGE,
            )
    request.state.principal = principal
    return principal


def _lookup(session: Session, token: str) -> Principal | None:
    row = verify_api_key(session, token)
    if row is None:
        return None
    return Principal(name=row.name, scopes=frozenset(row.scopes or ()), key_prefix=row.prefix, agent_id=row.agent_id)


def require(scope: str) -> Callable[..., object]:
    """A dependency that lets through keys with ``scope`` (or admin) and answers 403 otherwise."""

    async def check(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if not principal.allows(scope):
            have = ", ".join(sorted(principal.scopes)) or "none"
            raise ProblemError(
                403,
                f"this endpoint needs an API key with the '{scope}' (or 'admin') scope; "
                f"the key '{principal.key_prefix}' has: {have}",
            )
        return principal

    return check


Developer = Annotated[Principal, Depends(require("developer"))]
Admin = Annotated[Principal, Depends(require("admin"))]
Agent = Annotated[Principal, Depends(require("agent"))]


async def reject_unknown_query(request: Request) -> None:
    """``/v1`` endpoints refuse query parameters they do not declare (a typo such as ``?cadence=`` for
    ``?cadence_id=`` would otherwise be ignored silently and widen the answer)."""
    if not request.scope.get("query_string") or not request.scope["path"].startswith("/v1/"):
        return  # no query string: nothing unknown or repeated (most requests; the checks below walk the route)
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    known = _query_names(dependant) if dependant is not None else set()
    unknown = sorted(set(request.query_params) - known)
    hint = ", ".join(sorted(known)) or "none"
    errors = [
        FieldError(field=name, message=f"is not a query parameter here; this endpoint takes: {hint}")
        for name in unknown
    ]
    # A single-valued parameter given twice would silently keep the last value: refuse it instead.
    single = _query_names(dependant, single_only=True) if dependant is not None else set()
    errors += [
        FieldError(field=name, message="takes one value; give it once")
        for name in sorted(single)
        if len(request.query_params.getlist(name)) > 1
    ]
    if errors:
        raise ProblemError.invalid_fields(errors)


def _query_names(dependant: Any, *, single_only: bool = False) -> set[str]:
    """The query parameter names a route declares, its dependencies' included (or only the single-valued)."""
    names = {
        p.alias
        for p in dependant.query_params
        if not single_only or (get_origin(p.field_info.annotation) not in (list, tuple, set) and not _is_list(p))
    }
    for sub in dependant.dependencies:
        names |= _query_names(sub, single_only=single_only)
    return names


def _is_list(param: Any) -> bool:
    """True for `list[...]` and `list[...] | None` parameters (repeatable in the query string)."""
    annotation = param.field_info.annotation
    return any(get_origin(kind) in (list, tuple, set) for kind in (annotation, *get_args(annotation)))
