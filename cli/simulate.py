"""`omnireach simulate CADENCE --contacts N --days D --seed S`: the cadence on a virtual clock, no Temporal.

The same engine the workflow runs, the deliver activity's send-time rules (cadence window, the shipped or
configured legal hours, caps, consent per the model's audience, WhatsApp approved templates), the call
queues of queues.yaml, and an engagement model (content/engagement_default.yaml, or --model FILE).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from cli.simulate_report import print_report, write_outputs
from cli.toolkit import Content, content_settings, err, find_cadence, load_content
from content.engagement import EngagementError, load_engagement
from content.policy import load_policy
from content.queues import load_queues, queues_path
from core.durations import parse_duration
from core.jurisdiction import PolicyError
from core.messages import WHATSAPP_TEMPLATE, sample_context
from core.model import Cadence, SendStep
from core.sim.driver import SendRules
from core.sim.population import PopulationError, parse_timezones
from core.sim.simulation import SimulationSettings
from core.sim.simulation import simulate as run_simulation
from core.sms import segment_info

DEFAULT_TIMEZONES = "Asia/Jakarta"


def simulate(
    cadence_ref: str = typer.Argument(..., metavar="CADENCE", help="Cadence id or YAML file"),
    contacts: int = typer.Option(1000, "--contacts", min=1, max=1_000_000, help="How many contacts to enroll"),
    days: int = typer.Option(30, "--days", min=1, max=366, help="How many days to simulate"),
    seed: int = typer.Option(1, "--seed", help="Same seed, same numbers"),
    model: Path = typer.Option(None, "--model", help="Engagement model YAML (default: the shipped one)"),
    out: Path = typer.Option(None, "--out", help="Write simulation.json, charts (PNG) and simulation.html here"),
    timezones: str = typer.Option(
        DEFAULT_TIMEZONES, "--timezones", help="Contacts' zones with weights, e.g. Asia/Jakarta:3,America/New_York:1"
    ),
    start: str = typer.Option(None, "--start", help="Start instant, ISO 8601 (default: the next full hour)"),
    ramp: str = typer.Option(None, "--ramp", help="Enroll contacts evenly over this long, e.g. 2d (default: at once)"),
    templates: Path = typer.Option(None, help="Templates folder (default: templates/)"),
) -> None:
    """Simulate a cadence for N contacts over D days: sends, MQLs, SQLs, call tasks, agents needed and cost."""
    settings = content_settings()
    content = load_content(templates, settings)
    cadence = find_cadence(cadence_ref, settings, content)
    try:
        engagement = load_engagement(model)
    except EngagementError as exc:
        for error in exc.errors:
            print(error)
        err.print("[red]error:[/red] the engagement model is not valid; fix the lines above")
        raise typer.Exit(1) from exc
    try:
        zones = parse_timezones(timezones)
    except PopulationError as exc:
        err.print(f"[red]error:[/red] --timezones: {exc}")
        raise typer.Exit(2) from exc
    queues = load_queues(queues_path(settings.cadences_dir))
    if queues.book is None:
        for error in queues.errors:
            print(error)
        err.print("[red]error:[/red] queues.yaml is not valid; fix the lines above")
        raise typer.Exit(1)
    try:
        policy = load_policy(settings.policy_file)
    except PolicyError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    purpose = cadence.purpose
    rules = SendRules(
        legal_hours=lambda channel, country: policy.legal_windows(country, channel, purpose),
        whatsapp_templates=approved_whatsapp(content, cadence),
    )
    sim_settings = SimulationSettings(
        contacts=contacts,
        days=days,
        seed=seed,
        start=_start(start, zones[0][0]),
        timezones=zones,
        ramp=_duration(ramp, "--ramp"),
        rules=rules,
        sms_segments=sms_segments(content, cadence),
        queues=queues.book,
    )
    console = Console()
    with Progress(
        TextColumn("simulating {task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}% of {task.fields[days]} days"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task(f"{cadence.id} × {contacts}", total=1.0, days=days)
        result = run_simulation(cadence, engagement, sim_settings, lambda done: progress.update(task, completed=done))
    print_report(result, console)
    if out is not None:
        for path in write_outputs(result, out):
            err.print(f"wrote {path}")


def approved_whatsapp(content: Content, cadence: Cadence) -> frozenset[str]:
    """Messages with an approved WhatsApp template for the cadence's base locale."""
    messages = {s.message for s in cadence.steps if isinstance(s, SendStep) and "whatsapp" in (s.send, s.fallback)}
    catalog = content.catalog
    return frozenset(m for m in messages if catalog.resolve(m, WHATSAPP_TEMPLATE, locale=cadence.locale) is not None)


def sms_segments(content: Content, cadence: Cadence) -> dict[str, int]:
    """Segments each SMS message costs, rendered for the sample contact of the cadence's locale."""
    segments: dict[str, int] = {}
    for step in cadence.steps:
        if isinstance(step, SendStep) and "sms" in (step.send, step.fallback) and step.message not in segments:
            context = sample_context(cadence.id, cadence.name, cadence.facts, step.id, locale=cadence.locale)
            try:
                text = content.catalog.render(step.message, "sms", context, locale=cadence.locale).text
            except Exception:  # validated already; a surprise here must not stop a what-if simulation
                continue
            segments[step.message] = segment_info(text).segments
    return segments


def _start(text: str | None, zone: str) -> datetime:
    if not text:
        now = datetime.now(UTC)
        return now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        err.print(f"[red]error:[/red] --start {text!r} is not ISO 8601, e.g. 2026-12-01T09:00+07:00")
        raise typer.Exit(2) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(zone))  # local time of the first --timezones zone
    return moment.astimezone(UTC)


def _duration(text: str | None, option: str) -> timedelta:
    if not text:
        return timedelta(0)
    try:
        return parse_duration(text)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {option}: {exc}")
        raise typer.Exit(2) from exc
