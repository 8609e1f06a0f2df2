"""`omnireach contacts import FILE` and `omnireach enroll CADENCE --file FILE`: bulk loads from files.

Both show a progress bar (by bytes of the file read), report every bad row as ``FILE:LINE: field:
message``, keep the good rows, and are safe to rerun (contacts are upserted by external_id; enrollments
are keyed by their workflow id). Exit code 0 when every row was good, 1 when some rows failed (the good
ones were still loaded), 2 when the file itself could not be read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from cli.config import load_settings

contacts_app = typer.Typer(help="Contacts: bulk import.", no_args_is_help=True)
err = Console(stderr=True)
CHUNK = 64 * 1024
FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


def file_format(path: Path, given: str | None) -> str:
    if given:
        if given not in ("csv", "jsonl"):
            err.print(f"[red]error:[/red] --format must be csv or jsonl, not {given!r}")
            raise typer.Exit(2)
        return given
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        err.print(f"[red]error:[/red] {path}: cannot tell the format from '{path.suffix}'; pass --format csv|jsonl")
        raise typer.Exit(2)
    return fmt


def progress_bar() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[status]}"),
        TimeRemainingColumn(),
        console=err,
        transient=False,
    )


def _lines(path: Path, advance) -> Iterator[tuple[int, str]]:
    """(line number, text) with the progress bar advanced by bytes read."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            advance(len(raw))
            try:
                text = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                from api.bulk_ops import BadFile

                raise BadFile(number, f"is not UTF-8 ({exc.reason}); save the file as UTF-8") from exc
            yield number, text.rstrip("\r\n")


def print_errors(path: Path, errors: list, truncated: bool = False) -> None:
    for e in errors:
        print(f"{path}:{e.line}: {e.field}: {e.message}")
    if truncated:
        print(f"{path}: more rows failed than are listed (the first {len(errors)} are shown)")


def summary(title: str, counts: dict[str, int]) -> None:
    table = Table(title=title, show_header=False)
    for name, value in counts.items():
        table.add_row(name, f"{value:,}")
    err.print(table)


@contacts_app.command("import")
def import_contacts(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="CSV or JSONL file"),
    format: str = typer.Option(None, "--format", help="csv or jsonl (default: from the file's extension)"),
) -> None:
    """Create or update contacts by external_id; bad rows are reported by line, good rows are kept."""
    from api.bulk_ops import BadFile
    from api.contact_import import contact_records
    from api.contact_import import import_contacts as run_import
    from store.db import make_engine, make_session_factory

    fmt = file_format(file, format)
    settings = load_settings()
    sessions = make_session_factory(make_engine(settings.database_url))
    with progress_bar() as bar:
        task = bar.add_task(f"importing {file.name}", total=file.stat().st_size, status="")

        def advance(n: int) -> None:
            bar.advance(task, n)

        def show(result) -> None:
            bar.update(task, status=f"{result.created + result.updated:,} ok, {result.failed:,} bad")

        try:
            records = contact_records(_lines(file, advance), fmt)
            result = run_import(sessions, records, progress=show, salt=settings.secret_key)
        except BadFile as exc:
            err.print(f"[red]error:[/red] {file}:{exc.line}: {exc.message}")
            raise typer.Exit(2) from exc
    print_errors(file, result.errors)
    summary(
        f"contacts import: {file}",
        {"rows": result.rows, "created": result.created, "updated": result.updated, "failed": result.failed},
    )
    raise typer.Exit(1 if result.failed else 0)


async def enroll_file(cadence_id: str, file: Path, fmt: str) -> int:
    """Enroll every row of ``file`` in ``cadence_id`` (rows may name another cadence_id); see module doc."""
    from api.bulk_ops import BadFile, BulkEnroller, enroll_rows, lines_of
    from api.temporal_gateway import TemporalGateway
    from cli.temporal_server import connect
    from content.cadences import load_library
    from store.db import make_engine, make_session_factory

    settings = load_settings()
    library = load_library([settings.cadences_dir], settings.templates_dir)
    if cadence_id not in library.cadences:
        for error in library.errors:
            err.print(str(error))
        err.print(
            f"[red]error:[/red] cadence '{cadence_id}' is not valid or not found; known: "
            f"{', '.join(sorted(library.cadences)) or 'none'}"
        )
        return 2
    sessions = make_session_factory(make_engine(settings.database_url))
    client = await connect(settings, wait_seconds=5)
    gateway = TemporalGateway(client, settings.task_queue)
    with progress_bar() as bar:
        task = bar.add_task(f"enrolling {file.name}", total=file.stat().st_size, status="")

        async def chunks() -> AsyncIterator[bytes]:
            with file.open("rb") as handle:
                while chunk := handle.read(CHUNK):
                    bar.advance(task, len(chunk))
                    yield chunk

        def show(result) -> None:
            bar.update(task, status=f"{result.enrolled:,} enrolled, {result.failed:,} bad")

        enroller = BulkEnroller(sessions, gateway, library, progress=show)
        try:
            result = await enroller.run(enroll_rows(lines_of(chunks()), fmt, cadence_id))
        except BadFile as exc:
            err.print(f"[red]error:[/red] {file}:{exc.line}: {exc.message}")
            return 2
    print_errors(file, result.errors, result.errors_truncated)
    summary(
        f"enroll {cadence_id}: {file}",
        {
            "rows": result.rows,
            "started": result.started,
            "already running": result.already_running,
            "already enrolled": result.already_enrolled,
            "duplicate rows": result.duplicates,
            "failed": result.failed,
        },
    )
    return 1 if result.failed else 0
