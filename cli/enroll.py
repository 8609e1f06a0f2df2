"""`omnireach enroll CADENCE CONTACT..`: start enrollments straight through Temporal."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from cli.config import load_settings
from cli.runtime import run_and_exit

err = Console(stderr=True)


def enroll(
    cadence_id: str = typer.Argument(..., help="Cadence id, e.g. webinar-nurture"),
    contacts: list[str] = typer.Argument(None, help="Contact ids, or ext:<external_id>"),
    file: Path = typer.Option(
        None, "--file", exists=True, dir_okay=False, readable=True, help="CSV or JSONL of contacts to enroll"
    ),
    format: str = typer.Option(None, "--format", help="csv or jsonl (default: from the file's extension)"),
) -> None:
    """Enroll contacts in a cadence (idempotent: a running enrollment is reused).

    With --file: every row (CSV with a contact_id or external_id column, or JSONL objects with those keys)
    is enrolled in concurrent batches with a progress bar; bad rows are reported by line and the good ones
    kept; rerunning the file enrolls nobody twice.
    """
    if file is not None:
        from cli.bulk import enroll_file, file_format

        run_and_exit(enroll_file(cadence_id, file, file_format(file, format)))
    if not contacts:
        err.print("[red]error:[/red] name contacts to enroll, or pass --file FILE")
        raise typer.Exit(2)
    run_and_exit(_enroll(cadence_id, contacts))


async def _enroll(cadence_id: str, contacts: list[str]) -> int:
    from temporalio.common import WorkflowIDConflictPolicy

    from cli.temporal_server import connect
    from content.cadences import load_library
    from store.db import make_engine, make_session_factory
    from store.repos.contacts import get_contact, get_contact_by_external_id
    from workflows.contact_cadence import WORKFLOW_TYPE, EnrollmentInput, enrollment_id

    settings = load_settings()
    library = load_library([settings.cadences_dir], settings.templates_dir)
    if cadence_id not in library.cadences:
        for error in library.errors:
            err.print(str(error))
        err.print(
            f"[red]error:[/red] cadence '{cadence_id}' is not valid or not found; known: "
            f"{', '.join(sorted(library.cadences)) or 'none'}"
        )
        return 1
    cadence = library.cadences[cadence_id]
    sessions = make_session_factory(make_engine(settings.database_url))
    client = await connect(settings, wait_seconds=5)
    failures = 0
    for ref in contacts:
        with sessions() as session:
            contact = (
                get_contact_by_external_id(session, ref[4:]) if ref.startswith("ext:") else get_contact(session, ref)
            )
            contact_id = contact.id if contact else None
        if contact_id is None:
            err.print(f"[red]error:[/red] contact {ref!r} not found (use our id or ext:<external_id>)")
            failures += 1
            continue
        handle = await client.start_workflow(
            WORKFLOW_TYPE,
            EnrollmentInput(cadence.snapshot(), contact_id),
            id=enrollment_id(cadence.id, contact_id),
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        print(f"{handle.id}\t{handle.result_run_id}")
    return 1 if failures else 0
