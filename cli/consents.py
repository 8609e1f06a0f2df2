"""`omnireach consents import FILE`: bulk-load consent evidence from a CSV file.

Each row is one grant or withdrawal with its evidence, checked like POST /v1/contacts/{id}/consents: a
grant needs method, source and notice_text; ``occurred_at`` (when the person acted, with a UTC offset) is
required because an import is history. Bad rows are reported as ``FILE:LINE: field: message`` and skipped;
good rows are kept (committed in batches). Importing the same file again records nothing twice.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from cli.config import load_settings

app = typer.Typer(help="Consent evidence (append-only ledger).", no_args_is_help=True)
err = Console(stderr=True)
CONTACT_COLUMNS = ("contact", "contact_id", "external_id")
EVIDENCE_COLUMNS = (
    "channel",
    "purpose",
    "status",
    "occurred_at",
    "method",
    "source",
    "notice_text",
    "notice_version",
    "lawful_basis",
    "ip",
    "agent_id",
    "source_timezone",
)
REQUIRED = ("channel", "purpose", "status", "occurred_at")
GRANT_EVIDENCE = ("method", "source", "notice_text")
BATCH = 500


@dataclass(frozen=True)
class RowProblem:
    line: int
    field: str
    message: str


@dataclass
class Report:
    imported: int = 0
    duplicates: int = 0
    problems: list[RowProblem] | None = None

    def __post_init__(self) -> None:
        self.problems = self.problems or []


def read_rows(text: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header and each record with the line it starts on (quoted fields may span lines)."""
    reader = csv.DictReader(io.StringIO(text))
    rows: list[tuple[int, dict[str, str]]] = []
    header = list(reader.fieldnames or [])  # reads the header line
    line = reader.line_num + 1
    for record in reader:
        rows.append((line, record))
        line = reader.line_num + 1
    return [h.strip() for h in header], rows


def check_header(header: list[str]) -> list[str]:
    """Problems with the header line (unknown or missing columns), as messages."""
    problems = []
    known = set(CONTACT_COLUMNS) | set(EVIDENCE_COLUMNS)
    unknown = [h for h in header if h not in known]
    if unknown:
        problems.append(
            f"unknown column(s) {', '.join(unknown)}: evidence must not be dropped silently; "
            f"known columns: {', '.join((*CONTACT_COLUMNS, *EVIDENCE_COLUMNS))}"
        )
    if not any(c in header for c in CONTACT_COLUMNS):
        problems.append("no contact column: add external_id (your id), contact_id (ours) or contact (either form)")
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        problems.append(f"missing required column(s) {', '.join(missing)}")
    return problems


def import_consents(path: Path, text: str, sessions, *, progress: Progress | None = None) -> Report:
    """Validate and record every row; returns what was imported and each bad row's problems."""
    from api.schemas import ConsentIn
    from store.repos.consent import append_consent

    _, rows = read_rows(text)
    report = Report()
    task = progress.add_task("consents", total=len(rows)) if progress else None
    for start in range(0, len(rows), BATCH):
        with sessions.begin() as session:
            for line, record in rows[start : start + BATCH]:
                values = {k.strip(): (v or "").strip() for k, v in record.items() if k is not None}
                problems, contact, body = _check_row(session, line, values, ConsentIn)
                if problems:
                    report.problems.extend(problems)  # type: ignore[union-attr]
                elif _already_recorded(session, contact.id, body):
                    report.duplicates += 1
                else:
                    append_consent(
                        session,
                        contact_id=contact.id,
                        channel=body.channel,
                        purpose=body.purpose,
                        status=body.status,
                        occurred_at=body.occurred_at,
                        address=_address(contact, body.channel),
                        method=body.method or "import",
                        source=body.source,
                        notice_text=body.notice_text,
                        notice_version=body.notice_version,
                        lawful_basis=body.lawful_basis or ("consent" if body.status == "granted" else None),
                        ip=str(body.ip) if body.ip is not None else None,
                        agent_id=body.agent_id,
                        source_timezone=body.source_timezone,
                        evidence={"recorded_via": "import", "file": path.name, "line": line},
                    )
                    report.imported += 1
                if progress is not None and task is not None:
                    progress.advance(task)
    return report


def _address(contact, channel: str) -> str | None:
    return getattr(contact, {"email": "email", "sms": "phone", "voice": "phone", "whatsapp": "whatsapp"}[channel])


def _check_row(session, line: int, values: dict[str, str], model) -> tuple[list[RowProblem], object, object]:
    from api.routes.common import find_contact

    problems: list[RowProblem] = []
    ref = values.get("contact") or values.get("contact_id") or ""
    if not ref and values.get("external_id"):
        ref = "ext:" + values["external_id"]
    contact = find_contact(session, ref) if ref else None
    if not ref:
        problems.append(RowProblem(line, "external_id", "is empty: every row needs the contact it belongs to"))
    elif contact is None:
        problems.append(RowProblem(line, "contact", f"{ref!r}: no such contact; import the contacts first"))
    elif contact.erased_at is not None:
        problems.append(RowProblem(line, "contact", f"{ref!r} was erased at their request; nothing is recorded"))
    fields = {k: v for k, v in values.items() if k in EVIDENCE_COLUMNS and v != ""}
    for name in REQUIRED:
        if name not in fields:
            problems.append(RowProblem(line, name, "is required"))
    body = None
    if not any(p.field in REQUIRED for p in problems):
        try:
            body = model.model_validate(fields)
        except ValidationError as exc:
            for e in exc.errors(include_url=False):
                field = ".".join(str(p) for p in e["loc"]) or "row"
                problems.append(RowProblem(line, field, _friendly(e)))
    if body is not None and body.status == "granted":
        for name in GRANT_EVIDENCE:
            if not getattr(body, name):
                problems.append(RowProblem(line, name, "is required for a grant (the evidence that makes it provable)"))
        if contact is not None and contact.erased_at is None and not _address(contact, body.channel):
            problems.append(
                RowProblem(line, "channel", f"the contact has no {body.channel} address; set it before granting")
            )
    return problems, contact, body


def _friendly(error: dict) -> str:
    if error["type"] in ("timezone_aware", "datetime_from_date_parsing", "datetime_parsing", "datetime_type"):
        return "must be an ISO 8601 date-time with a UTC offset, e.g. 2026-01-31T09:00:00+07:00"
    message = str(error["msg"]).removeprefix("Value error, ")
    return message.replace("Input should be", "must be").replace("String should match pattern", "must match")


def _already_recorded(session, contact_id: str, body) -> bool:
    from sqlalchemy import select

    from store.models import ConsentRecord

    return (
        session.scalars(
            select(ConsentRecord.id).where(
                ConsentRecord.contact_id == contact_id,
                ConsentRecord.channel == body.channel,
                ConsentRecord.purpose == body.purpose,
                ConsentRecord.status == body.status,
                ConsentRecord.occurred_at == body.occurred_at,
                ConsentRecord.method == (body.method or "import"),
                ConsentRecord.source == body.source,
            )
        ).first()
        is not None
    )


@app.command("import")
def import_command(file: Path = typer.Argument(..., help="CSV with a header line (see --help)")) -> None:
    """Import consent grants and withdrawals with their evidence.

    Columns: external_id (or contact_id / contact), channel, purpose, status, occurred_at (ISO 8601 with
    offset), and for grants method, source, notice_text; optional notice_version, lawful_basis, ip,
    agent_id, source_timezone. Bad rows are reported by line and field and skipped; good rows are kept.
    """
    from store.db import make_engine, make_session_factory

    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]error:[/red] cannot read {file}: {exc}")
        raise typer.Exit(2) from exc
    header, _ = read_rows(text)
    header_problems = check_header(header)
    if header_problems:
        for problem in header_problems:
            err.print(f"{file}:1: {problem}", markup=False, highlight=False)
        raise typer.Exit(2)
    settings = load_settings()
    sessions = make_session_factory(make_engine(settings.database_url))
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=True) as progress:
        report = import_consents(file, text, sessions, progress=progress)
    for problem in report.problems or []:
        err.print(f"{file}:{problem.line}: {problem.field}: {problem.message}", markup=False, highlight=False)
    bad_lines = len({p.line for p in report.problems or []})
    err.print(
        f"imported {report.imported} consent record(s); {report.duplicates} already recorded; "
        f"{bad_lines} row(s) refused"
    )
    if bad_lines:
        raise typer.Exit(1)
