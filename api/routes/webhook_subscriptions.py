"""Outbound webhook endpoints (admin): subscribe a URL to business events, read its delivery log."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, status
from pydantic import BaseModel, Field, field_validator
from sqlalchemy.orm import Session

from api.deps import Admin, ServicesDep
from api.pagination import Cursor, Limit, Page, cursor_value, decode_cursor, page
from api.problems import ProblemError, problem_responses
from api.schemas import In, check_text
from core.webhook_signing import endpoint_secret
from store.repos import webhooks as repo
from store.webhook_models import WebhookEndpoint

router = APIRouter(prefix="/v1/webhook-endpoints", tags=["webhooks"])
log = logging.getLogger("omnireach.api")
EventKind = Literal[
    "mql.created", "sql.handed_off", "task.disposed", "deal.won", "deal.lost", "sla.breached", "consent.withdrawn"
]
EndpointRef = Annotated[str, Path(description="The endpoint id (`we_...`).")]


class WebhookEndpointIn(In):
    url: str = Field(min_length=8, max_length=2000, examples=["https://crm.example.com/hooks/omnireach"])
    event_kinds: list[EventKind] = Field(
        default_factory=list, max_length=7, description="The kinds to send; empty: every kind."
    )
    description: str | None = Field(default=None, max_length=200)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = check_text(value).strip()
        if not value.lower().startswith(("https://", "http://")) or " " in value:
            raise ValueError("must be an absolute http(s) URL such as https://crm.example.com/hooks")
        return value

    @field_validator("description")
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value).strip() or None


class WebhookEndpointOut(BaseModel):
    id: str = Field(examples=["we_3f0c2b8a9d7e4c1b8a6f5e4d3c2b1a09"])
    url: str
    event_kinds: list[str] = Field(description="Empty: every kind.")
    description: str | None
    created_at: datetime
    disabled_at: datetime | None


class WebhookEndpointCreatedOut(WebhookEndpointOut):
    secret: str = Field(
        description="The signing secret (`whsec_...`), shown only here: verify `webhook-signature` with it "
        "(Standard Webhooks; see docs/temporal-contract.md)."
    )


class AttemptOut(BaseModel):
    attempt: int
    at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryOut(BaseModel):
    id: int
    event_id: int
    kind: str
    key: str
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    log: list[AttemptOut]


def _out(row: WebhookEndpoint) -> WebhookEndpointOut:
    return WebhookEndpointOut(
        id=row.id,
        url=row.url,
        event_kinds=list(row.event_kinds or []),
        description=row.description,
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


def _require(session: Session, endpoint_id: str) -> WebhookEndpoint:
    row = repo.get_endpoint(session, endpoint_id)
    if row is None:
        raise ProblemError(404, f"no webhook endpoint {endpoint_id!r}; GET /v1/webhook-endpoints lists them")
    return row


@router.post(
    "",
    response_model=WebhookEndpointCreatedOut,
    status_code=status.HTTP_201_CREATED,
    summary="Subscribe a URL to business events",
    responses=problem_responses(401, 403, 409, 413, 422, 500),
)
async def create(body: WebhookEndpointIn, services: ServicesDep, _: Admin) -> WebhookEndpointCreatedOut:
    """Events (MQL created, SQL handed off, task disposed, won / lost, SLA breached, consent withdrawn) are
    POSTed to the URL as signed JSON and retried with backoff for about 7 hours until it answers 2xx."""
    if not services.settings.secret_key:
        raise ProblemError(409, "OMNIREACH_SECRET_KEY is not set: webhooks cannot be signed; set it and restart")

    def work(session: Session) -> WebhookEndpointCreatedOut:
        row = repo.create_endpoint(
            session, url=body.url, event_kinds=list(dict.fromkeys(body.event_kinds)), description=body.description
        )
        secret = endpoint_secret(services.settings.secret_key, row.id, row.secret_version)
        return WebhookEndpointCreatedOut(**_out(row).model_dump(), secret=secret)

    out = await services.db.run(work)
    log.info("event=webhook_endpoint_created endpoint=%s kinds=%s", out.id, ",".join(out.event_kinds) or "all")
    return out


@router.get(
    "",
    response_model=Page[WebhookEndpointOut],
    summary="Webhook endpoints",
    responses=problem_responses(401, 403, 422, 500),
)
async def list_endpoints(
    services: ServicesDep, _: Admin, limit: Limit = 50, cursor: Cursor = None
) -> Page[WebhookEndpointOut]:
    """Every endpoint, disabled ones included (their delivery log stays readable), by id."""
    after = cursor_value(decode_cursor(cursor), "id", str)
    rows = await services.db.run(lambda s: repo.list_endpoints(s, after=after, limit=limit + 1))
    return page(rows, limit, lambda r: {"id": r.id}, _out)


@router.get(
    "/{endpoint_id}",
    response_model=WebhookEndpointOut,
    summary="A webhook endpoint",
    responses=problem_responses(401, 403, 404, 500),
)
async def read(endpoint_id: EndpointRef, services: ServicesDep, _: Admin) -> WebhookEndpointOut:
    return await services.db.run(lambda s: _out(_require(s, endpoint_id)))


@router.delete(
    "/{endpoint_id}",
    response_model=WebhookEndpointOut,
    summary="Disable a webhook endpoint",
    responses=problem_responses(401, 403, 404, 500),
)
async def disable(endpoint_id: EndpointRef, services: ServicesDep, _: Admin) -> WebhookEndpointOut:
    """No new deliveries are made to it; pending ones are marked failed when next tried. The log stays."""

    def work(session: Session) -> WebhookEndpointOut:
        _require(session, endpoint_id)
        row = repo.disable_endpoint(session, endpoint_id)
        assert row is not None
        return _out(row)

    return await services.db.run(work)


@router.get(
    "/{endpoint_id}/deliveries",
    response_model=Page[DeliveryOut],
    summary="The delivery log of an endpoint",
    responses=problem_responses(401, 403, 404, 422, 500),
)
async def deliveries(
    endpoint_id: EndpointRef, services: ServicesDep, _: Admin, limit: Limit = 50, cursor: Cursor = None
) -> Page[DeliveryOut]:
    """Newest first: each event sent to this endpoint, its status and every HTTP attempt."""
    before = cursor_value(decode_cursor(cursor), "before", int)

    def work(session: Session) -> Page[DeliveryOut]:
        _require(session, endpoint_id)
        rows = repo.deliveries_for_endpoint(session, endpoint_id, before=before, limit=limit + 1)
        attempts = repo.attempts_for(session, [d.id for d, _ in rows[:limit]])

        def convert(pair: tuple) -> DeliveryOut:
            d, e = pair
            return DeliveryOut(
                id=d.id,
                event_id=e.id,
                kind=e.kind,
                key=e.key,
                status=d.status,
                attempts=d.attempts,
                last_status_code=d.last_status_code,
                last_error=d.last_error,
                created_at=d.created_at,
                delivered_at=d.delivered_at,
                log=[
                    AttemptOut(
                        attempt=a.attempt, at=a.at, status_code=a.status_code, error=a.error, duration_ms=a.duration_ms
                    )
                    for a in attempts.get(d.id, [])
                ],
            )

        return page(rows, limit, lambda pair: {"before": pair[0].id}, convert)

    return await services.db.run(work)
