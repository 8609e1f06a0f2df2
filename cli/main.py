"""The `omnireach` command (SPEC section 6)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console

from cli import apikeys, enroll, stack
from cli.config import load_settings
from content.cadences import load_library
from core.model import Cadence
from core.settings import SettingsError

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
err = Console(stderr=True)


@app.command()
def validate(
    paths: list[Path] = typer.Argument(None, help="Cadence files or folders (default: cadences/)"),
    templates: Path = typer.Option(None, help="Templates folder (default: templates/)"),
) -> None:
    """Validate cadences and every template they use; print path:line:col errors; exit 1 on any error."""
    settings = _settings()
    library = load_library(paths or [settings.cadences_dir], templates or settings.templates_dir)
    for error in library.errors:
        print(error)
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
    text = json.dumps(cadence_json_schema(), indent=2) + "\n"
    if write:
        write.write_text(text, encoding="utf-8")
        err.print(f"wrote {write}")
    else:
        sys.stdout.write(text)


def cadence_json_schema() -> dict:
    document = Cadence.model_json_schema(by_alias=True, mode="validation")
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["$id"] = "https://omnireach.dev/schemas/cadence-v1.json"
    document["title"] = "omnireach cadence (version 1)"
    return document


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
