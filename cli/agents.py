"""`omnireach agents ...` and `omnireach queues ...`: the call floor's people and queues.

Queues come from queues.yaml (beside cadences/); `queues sync` writes them to the database (the worker also
does so whenever it opens a task). Agents belong to queues; `agents add` prints the agent's console / API
key once.
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from cli.config import load_settings

agents_app = typer.Typer(help="Call-floor agents and their queues.", no_args_is_help=True)
queues_app = typer.Typer(
    help="Call queues (queues.yaml): SLA, calling hours, retries, supervisors.", no_args_is_help=True
)
err = Console(stderr=True)
out = Console()


def _sessions():
    from store.db import make_engine, make_session_factory, upgrade

    settings = load_settings()
    upgrade(settings.database_url)
    return settings, make_session_factory(make_engine(settings.database_url))


def _book(settings):
    from content.queues import load_queues, queues_path

    load = load_queues(queues_path(settings.cadences_dir))
    if load.book is None:
        for error in load.errors:
            err.print(str(error), markup=False, highlight=False)
        raise typer.Exit(1)
    return load.book


def sync_queues(session, book) -> list[str]:
    """Write every queue of the book to the database; the names written."""
    from store.repos.tasks import upsert_queue

    for name, spec in sorted(book.queues.items()):
        upsert_queue(
            session,
            name,
            title=spec.title,
            purpose=spec.purpose,
            sla_seconds=spec.sla_seconds,
            calling_hours=spec.calling_hours.model_dump(mode="json"),
            max_attempts=spec.retry.max_attempts,
            retry_spacing_seconds=spec.retry_rule().spacing_seconds,
            supervisor=spec.supervisor.model_dump(exclude_none=True) if spec.supervisor else {},
        )
    return sorted(book.queues)


@queues_app.command("sync")
def queues_sync() -> None:
    """Write queues.yaml's queues to the database."""
    settings, sessions = _sessions()
    book = _book(settings)
    with sessions.begin() as session:
        names = sync_queues(session, book)
    err.print(f"[green]synced[/green] {len(names)} queue(s): {', '.join(names)}")


@queues_app.command("list")
def queues_list() -> None:
    """Queues with their SLA, calling hours, retry policy and open work."""
    from store.repos.tasks import list_queues, queue_counts
    from store.types import utcnow

    settings, sessions = _sessions()
    with sessions.begin() as session:
        sync_queues(session, _book(settings))
        queues = list_queues(session)
        counts = queue_counts(session, [q.name for q in queues], now=utcnow())
        table = Table("queue", "SLA", "calling hours", "retries", "supervisor", "open", "claimed", "past SLA")
        for q in queues:
            hours = q.calling_hours or {}
            c = counts[q.name]
            table.add_row(
                q.name,
                f"{q.sla_seconds // 3600}h" if q.sla_seconds % 3600 == 0 else f"{q.sla_seconds}s",
                f"{','.join(hours.get('days', []))} {hours.get('hours', '')}",
                f"{q.max_attempts} calls, {q.retry_spacing_seconds // 60}m apart",
                ", ".join(v for v in (q.supervisor or {}).values() if v) or "-",
                str(c["open"] + c["waiting"]),
                str(c["claimed"]),
                str(c["breached"]),
            )
    out.print(table)


@queues_app.command("secret")
def queues_secret(queue: str = typer.Argument(..., help="The queue whose supervisor webhook verifies with it")) -> None:
    """Print the whsec_ secret a queue's supervisor webhook uses to verify SLA-breach posts."""
    from activities.tasks import supervisor_webhook_secret

    settings = load_settings()
    print(supervisor_webhook_secret(settings.secret_key, queue))


@agents_app.command("add")
def agents_add(
    agent_id: str = typer.Argument(..., help="A short id, e.g. ani"),
    name: str = typer.Option(None, help="Display name (default: the id)"),
    queue: list[str] = typer.Option([], "--queue", help="A queue the agent works (repeatable)"),
    supervisor: bool = typer.Option(False, help="Supervisors see and work every queue"),
    phone: str = typer.Option(None, help="The agent's phone (E.164), rung first by click-to-call"),
    key: bool = typer.Option(True, help="Create an API / console key for the agent and print it once"),
) -> None:
    """Create or update an agent, set its queues, and print its key."""
    from store.repos.api_keys import create_api_key
    from store.repos.tasks import upsert_agent

    if not queue and not supervisor:
        err.print("[red]error:[/red] give at least one --queue (or --supervisor); see `omnireach queues list`")
        raise typer.Exit(2)
    settings, sessions = _sessions()
    with sessions.begin() as session:
        sync_queues(session, _book(settings))
        try:
            upsert_agent(
                session,
                agent_id,
                name=name or agent_id,
                queues=queue,
                phone=phone,
                role="supervisor" if supervisor else "agent",
            )
        except ValueError as exc:
            err.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from exc
        plaintext = create_api_key(session, f"agent {agent_id}", ["agent"], agent_id=agent_id)[1] if key else None
    if plaintext:
        print(plaintext)
    role = "supervisor" if supervisor else "agent"
    err.print(
        f"{role} '{agent_id}' works: {', '.join(queue) or 'every queue'}"
        + ("; the key is not shown again" if key else "")
    )


@agents_app.command("list")
def agents_list() -> None:
    """Agents, their role and queues."""
    from store.repos.tasks import agent_queues, list_agents

    _, sessions = _sessions()
    with sessions() as session:
        table = Table("agent", "name", "role", "queues", "phone")
        for agent in list_agents(session):
            queues = ", ".join(agent_queues(session, agent.id)) or (
                "every queue" if agent.role == "supervisor" else "-"
            )
            table.add_row(agent.id, agent.name, agent.role, queues, agent.phone or "-")
    out.print(table)
