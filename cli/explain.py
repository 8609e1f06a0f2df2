"""`omnireach explain CONTACT`: every send decision about a contact with its reason, and why they can or
cannot be reached right now (consent, suppression, registry, legal hours) on each channel."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.config import load_settings

err = Console(stderr=True)
out = Console()
CHANNELS = ("email", "sms", "whatsapp", "voice")
DECISION_STYLE = {"sent": "green", "deferred": "yellow", "skipped": "red", "failed": "red"}


def mask(value: str | None) -> str:
    """Enough of an address to recognise it, not enough to use it."""
    if not value:
        return "-"
    if "@" in value:
        local, _, domain = value.partition("@")
        return f"{local[:2]}***@{domain}"
    return value[:4] + "*" * max(0, len(value) - 7) + value[-3:]


def sentence(decision, zone) -> str:
    """One decision as a sentence: sent / deferred until T because of R / skipped because of R."""
    until = ""
    if decision.until is not None:
        local = decision.until.astimezone(zone) if zone else decision.until
        until = f" until {local.strftime('%Y-%m-%d %H:%M %Z')}"
    if decision.decision == "sent":
        return f"sent ({decision.detail or 'allowed'})"
    why = decision.reason or "unknown"
    detail = f": {decision.detail}" if decision.detail else ""
    return f"{decision.decision}{until} because of {why}{detail}"


def explain(
    contact: str = typer.Argument(..., help="Contact id, or ext:<external_id>"),
    purpose: str = typer.Option("marketing", help="Purpose to judge 'right now' for: marketing, sales or service"),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output"),
) -> None:
    """Every decision about a contact (sent, deferred until T because of R, skipped because of R), with the
    consent, suppression, registry and legal-hours state that explains it."""
    from activities.permission_check import Reachability, check_permission, jurisdiction_of
    from api.routes.common import find_contact
    from content.policy import load_policy
    from core.jurisdiction import PolicyError
    from store.db import make_engine, make_session_factory
    from store.repos.consent import consent_overview
    from store.repos.decisions import decisions_for_contact
    from store.repos.dnc import suppressions_for

    if purpose not in ("marketing", "sales", "service"):
        raise typer.BadParameter("use marketing, sales or service", param_hint="--purpose")
    settings = load_settings()
    try:
        policy = load_policy(settings.policy_file)
    except PolicyError as exc:
        err.print(f"[red]error:[/red] {exc}", markup=False)
        raise typer.Exit(2) from exc
    sessions = make_session_factory(make_engine(settings.database_url))
    now = datetime.now(UTC)
    with sessions() as session:
        row = find_contact(session, contact)
        if row is None:
            err.print(f"[red]error:[/red] no contact {contact!r} (use our id or ext:<external_id>)")
            raise typer.Exit(1)
        country = jurisdiction_of(row)
        zone = policy.resolve_zone(row.timezone, country, (row.attributes or {}).get("region"))
        consents = consent_overview(session, row.id)
        addresses = [a for a in (row.email, row.phone, row.whatsapp) if a]
        suppressions = suppressions_for(session, addresses, salt=settings.secret_key)
        decisions = decisions_for_contact(session, row.id)
        now_verdicts = {
            channel: check_permission(
                session, row, Reachability(channel, purpose), now, salt=settings.secret_key, policy=policy
            )
            for channel in CHANNELS
        }
        if as_json:
            print(
                json.dumps(
                    {
                        "contact_id": row.id,
                        "erased_at": row.erased_at.isoformat() if row.erased_at else None,
                        "country": country,
                        "timezone": zone.key if zone else None,
                        "consents": [
                            {"channel": c, "purpose": p, "status": s.status, "method": s.method}
                            for (c, p), s in sorted(consents.items())
                        ],
                        "suppressions": [
                            {"kind": s.kind, "list": s.list_name, "reason": s.reason} for s in suppressions
                        ],
                        "now": {
                            c: {"outcome": v.outcome, "reason": v.reason, "detail": v.detail}
                            for c, v in now_verdicts.items()
                        },
                        "decisions": [
                            {
                                "at": d.decided_at.isoformat(),
                                "enrollment_id": d.enrollment_id,
                                "step_id": d.step_id,
                                "channel": d.channel,
                                "decision": d.decision,
                                "reason": d.reason,
                                "detail": d.detail,
                                "until": d.until.isoformat() if d.until else None,
                            }
                            for d in decisions
                        ],
                    },
                    indent=2,
                )
            )
            return
        label = policy.zone_label(country, zone)
        erased = f"  [red]erased {row.erased_at:%Y-%m-%d}[/red]" if row.erased_at else ""
        out.print(
            f"[bold]{row.id}[/bold] ({row.external_id}) country={country or '-'} "
            f"timezone={zone.key if zone else 'unknown'}{f' ({label})' if label else ''}{erased}"
        )
        out.print(f"email {mask(row.email)}  phone {mask(row.phone)}  whatsapp {mask(row.whatsapp)}")

        table = Table(title="Consent in force", show_lines=False)
        for col in ("channel", "purpose", "status", "method", "since"):
            table.add_column(col)
        for (c, p), s in sorted(consents.items()):
            since = s.occurred_at.isoformat(timespec="minutes") if s.occurred_at else "-"
            table.add_row(c, p, s.status or "-", s.method or "-", since)
        if not consents:
            table.add_row("-", "-", "none on record", "-", "-")
        out.print(table)
        for s in suppressions:
            out.print("[red]suppressed[/red]: " + escape(f"{s.kind} {s.list_name or ''} {s.reason or ''}".rstrip()))

        now_table = Table(title=f"Right now ({purpose})")
        for col in ("channel", "verdict", "reason", "detail"):
            now_table.add_column(col)
        for c, v in now_verdicts.items():
            now_table.add_row(c, v.outcome, v.reason, escape(v.detail))
        out.print(now_table)

        history = Table(title=f"Decisions ({len(decisions)})")
        for col in ("when (local)", "step", "channel", "decision"):
            history.add_column(col)
        for d in decisions:
            when = d.decided_at.astimezone(zone) if zone else d.decided_at
            style = DECISION_STYLE.get(d.decision, "")
            history.add_row(
                when.strftime("%Y-%m-%d %H:%M %Z"),
                d.step_id or "-",
                d.channel or "-",
                f"[{style}]{escape(sentence(d, zone))}[/{style}]" if style else escape(sentence(d, zone)),
            )
        out.print(history)
