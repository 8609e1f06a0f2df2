"""The `omnireach` command (SPEC section 6)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer
from rich.console import Console

from cli import agents, apikeys, bulk, consents, dnc, enroll, explain, lint, preview, report, simulate, stack, webhooks
from cli.config import load_settings, read_dotenv
from content.cadences import load_library
from core.model import cadence_json_schema
from core.settings import Settings, SettingsError

app = typer.Typer(
    help="omnireach: permission-based outreach cadences on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(apikeys.app, name="apikey")
app.command("enroll")(enroll.enroll)
app.command("up")(stack.up)
app.command("worker")(stack.worker)
app.command("api")(stack.api)
app.add_typer(consents.app, name="consents")
app.add_typer(dnc.app, name="dnc")
app.command("explain")(explain.explain)
app.add_typer(bulk.contacts_app, name="contacts")
app.command("report")(report.report)
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(agents.agents_app, name="agents")
app.add_typer(agents.queues_app, name="queues")
app.command("simulate")(simulate.simulate)
app.command("preview")(preview.preview)
app.command("lint")(lint.lint)
err = Console(stderr=True)


@app.command()
def validate(
    paths: list[Path] = typer.Argument(None, help="Cadence files or folders (default: cadences/)"),
    templates: Path = typer.Option(None, help="Templates folder (default: templates/)"),
) -> None:
    """Validate cadences and every template they use; print path:line:col errors; exit 1 on any error."""
    settings = _content_settings()
    library = load_library(paths or [settings.cadences_dir], templates or settings.templates_dir)
    for error in library.errors:
        print(error)
    sys.stdout.flush()
    if library.errors:
        err.print(f"[red]{len(library.errors)} error(s)[/red]")
        raise typer.Exit(1)
    if not library.cadences:
        err.print(
            "[red]no cadence files found[/red] (looked in: "
            + ", ".join(str(p) for p in (paths or [settings.cadences_dir]))
            + ")"
        )
        raise typer.Exit(1)
    err.print(f"[green]ok[/green]: {len(library.cadences)} cadence(s) valid: {', '.join(sorted(library.cadences))}")


@app.command()
def schema(write: Path = typer.Option(None, help="Write to this file instead of printing")) -> None:
    """The JSON Schema of the cadence format, for editor completion."""
    text = json.dumps(cadence_json_schema(), indent=2, ensure_ascii=False) + "\n"
    if write:
        write.write_text(text, encoding="utf-8")
        err.print(f"wrote {write}")
    else:
        sys.stdout.write(text)


def _content_settings():
    """Settings for commands that only read cadences and templates: no secrets, nothing written."""
    try:
        return Settings.from_env({**read_dotenv(Path(".env")), **os.environ})
    except SettingsError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply schema migrations to OMNIREACH_DATABASE_URL (default sqlite:///var/omnireach.db)."""
    from store.db import upgrade

    settings = _settings()
    upgrade(settings.database_url)
    err.print(f"[green]database at head[/green]: {_masked(settings.database_url)}")


def _settings():
    try:
        return load_settings()
    except SettingsError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


def _masked(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def main() -> None:
    app()
