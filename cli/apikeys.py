"""`omnireach apikey create|revoke`: keys are shown once and stored only as a hash."""

from __future__ import annotations

import typer
from rich.console import Console

from cli.config import load_settings

app = typer.Typer(help="API keys (hashed at rest).", no_args_is_help=True)
SCOPES = ("admin", "developer", "agent")
err = Console(stderr=True)


@app.command("create")
def create(
    name: str = typer.Argument(..., help="Who or what uses the key"),
    scope: list[str] = typer.Option(["developer"], "--scope", help="admin, developer or agent"),
    agent_id: str = typer.Option(None, help="The agent this key belongs to (agent scope)"),
) -> None:
    """Create a key and print it once."""
    from store.db import make_engine, make_session_factory
    from store.repos.api_keys import create_api_key

    bad = [s for s in scope if s not in SCOPES]
    if bad:
        err.print(f"[red]error:[/red] unknown scope {', '.join(bad)}; use {', '.join(SCOPES)}")
        raise typer.Exit(2)
    settings = load_settings()
    sessions = make_session_factory(make_engine(settings.database_url))
    with sessions.begin() as session:
        key, plaintext = create_api_key(session, name, list(scope), agent_id=agent_id)
        prefix = key.prefix
    print(plaintext)
    err.print(f"created key {prefix}… ({', '.join(scope)}); it is not shown again")


@app.command("revoke")
def revoke(key: str = typer.Argument(..., help="The key's id or prefix")) -> None:
    """Revoke a key at once."""
    from store.db import make_engine, make_session_factory
    from store.repos.api_keys import revoke_api_key

    settings = load_settings()
    sessions = make_session_factory(make_engine(settings.database_url))
    with sessions.begin() as session:
        done = revoke_api_key(session, key)
    if not done:
        err.print(f"[red]error:[/red] no active key matches {key!r}")
        raise typer.Exit(1)
    err.print(f"revoked {key}")
