"""`omnireach report`: the funnel, step / A-B and SLA reports as Rich tables (or JSON)."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.table import Table

from cli.config import load_settings

err = Console(stderr=True)
out = Console()


def _when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {option} {value!r} is not a date; use 2026-01-31 or 2026-01-31T09:00+07:00")
        raise typer.Exit(2) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _money(value: float | None, currency: str) -> str:
    return "-" if value is None else f"{value:,.2f} {currency}"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(
    cadence: str = typer.Option(None, "--cadence", help="Only this cadence"),
    since: str = typer.Option(None, help="Enrollments started at or after (ISO date or date-time; UTC if no offset)"),
    until: str = typer.Option(None, help="Enrollments started before"),
    goal: str = typer.Option("mql", help="Conversion goal for the steps report: mql, sql, won, clicked, replied"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables"),
) -> None:
    """Funnel per cadence (to revenue, cost per lead, CAC), steps and A/B variants, SLA follow-up."""
    from content.costs import CostsError, load_costs
    from core import reports
    from store.db import make_engine, make_session_factory
    from store.report_queries import load_report_data

    if goal not in reports.GOALS:
        err.print(f"[red]error:[/red] --goal must be one of {', '.join(reports.GOALS)}")
        raise typer.Exit(2)
    settings = load_settings()
    try:
        costs = load_costs(settings.costs_file)
    except CostsError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    sessions = make_session_factory(make_engine(settings.database_url))
    with sessions() as session:
        data = load_report_data(
            session, cadence_id=cadence, since=_when(since, "--since"), until=_when(until, "--until")
        )
    now = datetime.now(UTC)
    funnel, steps, sla = reports.funnel(data, costs), reports.steps(data, goal=goal), reports.sla(data, now)
    if as_json:
        document = {
            "currency": costs.currency,
            "costs_configured": costs.configured,
            "funnel": [dataclasses.asdict(r) for r in funnel],
            "steps": [dataclasses.asdict(r) for r in steps],
            "sla": [dataclasses.asdict(r) for r in sla],
        }
        print(json.dumps(document, indent=2, default=str))
        return
    if not funnel:
        err.print("no enrollments match: nothing to report yet")
        return
    out.print(funnel_table(funnel, costs.currency, costs.configured))
    out.print(steps_table(steps, goal))
    if sla:
        out.print(sla_table(sla))


def funnel_table(rows: list, currency: str, costs_configured: bool) -> Table:
    note = "" if costs_configured else " (no costs file: costs are 0)"
    table = Table(title=f"Funnel per cadence{note}")
    for name in ("cadence", "enrolled", "contacted", "engaged", "MQL", "connected", "SQL", "won", "revenue"):
        table.add_column(name, justify="left" if name == "cadence" else "right")
    for name in ("cost", "cost/lead", "CAC", "response", "MQL→SQL", "call→sale", "days to close"):
        table.add_column(name, justify="right")
    for r in rows:
        table.add_row(
            r.cadence_id,
            *(f"{v:,}" for v in (r.enrolled, r.contacted, r.engaged, r.mql, r.connected, r.sql, r.won)),
            _money(r.revenue, currency),
            _money(r.cost, currency),
            _money(r.cost_per_lead, currency),
            _money(r.cac, currency),
            _pct(r.response_rate),
            _pct(r.mql_to_sql),
            _pct(r.call_to_sale),
            _num(r.median_days_to_close),
        )
    return table


def steps_table(rows: list, goal: str) -> Table:
    table = Table(title=f"Steps and variants (conversion = {goal} after the send; z-test vs the control)")
    table.add_column("cadence")
    table.add_column("step")
    table.add_column("variant")
    table.add_column("channel")
    for name in ("sent", "delivered", "opened", "clicked", "replied", "unsub", "bounced", "conv", "rate", "p"):
        table.add_column(name, justify="right")
    table.add_column("")
    for r in rows:
        mark = "" if r.significant is None else ("[green]significant[/green]" if r.significant else "n.s.")
        table.add_row(
            r.cadence_id,
            r.step_id,
            r.variant or "-",
            r.channel,
            *(f"{v:,}" for v in (r.sent, r.delivered, r.opened, r.clicked, r.replied, r.unsubscribed, r.bounced)),
            f"{r.conversions:,}",
            _pct(r.conversion_rate),
            "-" if r.p_value is None else f"{r.p_value:.3f}",
            mark,
        )
    return table


def sla_table(rows: list) -> Table:
    table = Table(title="SLA: MQLs and SQLs followed up (first call) within their SLA")
    for name in ("cadence", "stage", "queue"):
        table.add_column(name)
    for name in ("tasks", "within", "breached", "pending", "share", "median to 1st call"):
        table.add_column(name, justify="right")
    for r in rows:
        median = "-" if r.median_seconds_to_first_call is None else f"{r.median_seconds_to_first_call / 3600:.1f} h"
        table.add_row(
            r.cadence_id,
            r.stage,
            r.queue,
            f"{r.tasks:,}",
            f"{r.within_sla:,}",
            f"{r.breached:,}",
            f"{r.pending:,}",
            _pct(r.share_within_sla),
            median,
        )
    return table
