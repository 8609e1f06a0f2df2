"""`omnireach webhooks add|list|deliveries|retry`: outbound webhook endpoints and their delivery log."""

from __future__ import annotations

from datetime import timedelta

import typer
from rich.console import Console
from rich.table import Table

from cli.config import load_settings
from cli.runtime import run_and_exit

app = typer.Typer(help="Outbound webhooks: business events sent to other systems.", no_args_is_help=True)
err = Console(stderr=True)
out = Console()


def _sessions():
    from store.db import make_engine, make_session_factory

    return make_session_factory(make_engine(load_settings().database_url))


@app.command("add")
def add(
    url: str = typer.Argument(..., help="Where to POST events, e.g. https://crm.example.com/hooks"),
    event: list[str] = typer.Option(None, "--event", help="A kind to send (repeat); default: every kind"),
    description: str = typer.Option(None, help="What this endpoint is for"),
) -> None:
    """Subscribe a URL; prints its signing secret once (verify `webhook-signature` with it)."""
    from core.webhook_signing import endpoint_secret
    from store.repos.webhooks import create_endpoint
    from store.webhook_models import EVENT_KINDS

    bad = [e for e in event or [] if e not in EVENT_KINDS]
    if bad:
        err.print(f"[red]error:[/red] unknown event kind {', '.join(bad)}; use {', '.join(EVENT_KINDS)}")
        raise typer.Exit(2)
    if not url.startswith(("https://", "http://")):
        err.print("[red]error:[/red] the URL must start with https:// or http://")
        raise typer.Exit(2)
    settings = load_settings()
    with _sessions().begin() as session:
        endpoint = create_endpoint(session, url=url, event_kinds=list(event or []), description=description)
        endpoint_id, version = endpoint.id, endpoint.secret_version
    print(endpoint_secret(settings.secret_key, endpoint_id, version))
    err.print(f"endpoint {endpoint_id} created for {', '.join(event or []) or 'every kind'}; the secret is shown once")


@app.command("list")
def list_endpoints() -> None:
    """Every endpoint with its delivery counts."""
    from sqlalchemy import func, select

    from store.repos.webhooks import list_endpoints as endpoints
    from store.webhook_models import WebhookDelivery

    table = Table(title="webhook endpoints")
    for name in ("id", "url", "events", "state", "delivered", "pending", "failed"):
        table.add_column(name)
    with _sessions()() as session:
        for e in endpoints(session, limit=1000):
            counts = dict(
                session.execute(
                    select(WebhookDelivery.status, func.count())
                    .where(WebhookDelivery.endpoint_id == e.id)
                    .group_by(WebhookDelivery.status)
                ).tuples()
            )
            state = "disabled" if e.disabled_at else "active"
            kinds = ", ".join(e.event_kinds or []) or "all"
            table.add_row(
                e.id, e.url, kinds, state, *(str(counts.get(s, 0)) for s in ("delivered", "pending", "failed"))
            )
    out.print(table)


@app.command("deliveries")
def deliveries(endpoint_id: str = typer.Argument(...), limit: int = typer.Option(20, min=1, max=500)) -> None:
    """The newest deliveries of an endpoint, with every attempt."""
    from store.repos.webhooks import attempts_for, deliveries_for_endpoint, get_endpoint

    with _sessions()() as session:
        if get_endpoint(session, endpoint_id) is None:
            err.print(f"[red]error:[/red] no endpoint {endpoint_id!r}; `omnireach webhooks list` shows them")
            raise typer.Exit(1)
        rows = deliveries_for_endpoint(session, endpoint_id, limit=limit)
        attempts = attempts_for(session, [d.id for d, _ in rows])
    table = Table(title=f"deliveries to {endpoint_id}")
    for name in ("id", "event", "key", "status", "attempts"):
        table.add_column(name)
    for d, e in rows:
        log = "; ".join(f"{a.at:%H:%M:%S} {a.status_code or a.error}" for a in attempts.get(d.id, []))
        table.add_row(str(d.id), e.kind, e.key, d.status, log or "-")
    out.print(table)


@app.command("retry")
def retry(older_than_minutes: int = typer.Option(1, min=0, help="Only deliveries pending at least this long")) -> None:
    """Start deliveries still pending (e.g. Temporal was down when the event was recorded)."""
    run_and_exit(_retry(older_than_minutes))


async def _retry(minutes: int) -> int:
    from activities.outbound_webhooks import start_deliveries
    from cli.temporal_server import connect
    from store.repos.webhooks import pending_deliveries
    from store.types import utcnow

    settings = load_settings()
    with _sessions()() as session:
        pending = pending_deliveries(session, older_than=utcnow() - timedelta(minutes=minutes))
    client = await connect(settings, wait_seconds=5)
    await start_deliveries(client, settings.task_queue, pending)
    err.print(f"{len(pending)} pending deliveries (re)started")
    return 0
