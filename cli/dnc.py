"""`omnireach dnc import FILE --list NAME --country CC --as-of DATE`: load a Do-Not-Call file.

One number per line (a CSV's first column; a header line and ``#`` comments are skipped). With ``--as-of``
the file is a national registry snapshot: it replaces the previous snapshot of the same list and country
in one transaction, and its date is what the freshness rule judges (US 31 days, SG 21: a stale copy blocks
calls to that country). Without it the list is a named company list that only grows; ``--list global``
is the global list. ``--hashed``: lines are hex SHA-256 digests of E.164 numbers instead of numbers.
Bad lines are reported as ``FILE:LINE: message`` and skipped; good lines are kept.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from cli.config import load_settings

app = typer.Typer(help="Do-Not-Call lists and national registries.", no_args_is_help=True)
err = Console(stderr=True)
_HEX64 = re.compile(r"^[0-9a-fA-F]{64}$")
_HEADER_WORDS = {"phone", "number", "phone_number", "telephone", "msisdn", "hash", "sha256", "value"}
_LIST_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


@dataclass
class Parsed:
    values: list[str] = field(default_factory=list)
    problems: list[tuple[int, str]] = field(default_factory=list)
    duplicates: int = 0


def parse_lines(text: str, *, country: str | None, hashed: bool) -> Parsed:
    """Normalise each line (E.164, or a lower-case hex digest); duplicates counted, bad lines reported."""
    from core.addresses import AddressError, normalize_phone

    parsed = Parsed()
    seen: set[str] = set()
    first = True
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        cell = line.split(",", 1)[0].strip().strip('"').strip()
        if first and cell.lower() in _HEADER_WORDS:
            first = False
            continue
        first = False
        if hashed:
            if not _HEX64.match(cell):
                parsed.problems.append((number, f"{cell[:40]!r} is not a SHA-256 hex digest (64 hex characters)"))
                continue
            value = cell.lower()
        else:
            try:
                value = normalize_phone(cell, country)
            except AddressError as exc:
                parsed.problems.append((number, str(exc)))
                continue
        if value in seen:
            parsed.duplicates += 1
            continue
        seen.add(value)
        parsed.values.append(value)
    return parsed


def _as_of(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date; write it as YYYY-MM-DD", param_hint="--as-of") from None
    if day > datetime.now(UTC).date():
        raise typer.BadParameter(f"{day} is in the future; use the date the registry copy was made", "--as-of")
    return day


@app.command("import")
def import_command(
    file: Path = typer.Argument(..., help="One number (or digest) per line; a CSV's first column"),
    list_name: str = typer.Option(..., "--list", help="List name, e.g. us-national-dnc; 'global' for the global list"),
    country: str = typer.Option(None, "--country", help="ISO country: reads national numbers; a registry's country"),
    as_of: str = typer.Option(None, "--as-of", help="Registry snapshot date YYYY-MM-DD (makes it a registry)"),
    hashed: bool = typer.Option(False, "--hashed", help="Lines are SHA-256 hex digests of E.164 numbers"),
) -> None:
    """Import a Do-Not-Call list or a national registry snapshot (see the module help)."""
    from core.addresses import AddressError, normalize_country
    from store.db import make_engine, make_session_factory
    from store.repos import dnc as dnc_repo

    if not _LIST_NAME.match(list_name):
        raise typer.BadParameter(f"{list_name!r}: use lower-case letters, digits, '.', '_' or '-'", param_hint="--list")
    try:
        code = normalize_country(country) if country else None
    except AddressError as exc:
        raise typer.BadParameter(str(exc), param_hint="--country") from None
    snapshot = _as_of(as_of)
    if snapshot is not None and code is None:
        raise typer.BadParameter("a registry snapshot (--as-of) needs the registry's --country", param_hint="--country")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]error:[/red] cannot read {file}: {exc}")
        raise typer.Exit(2) from exc
    parsed = parse_lines(text, country=code, hashed=hashed)
    for line, message in parsed.problems:
        err.print(f"{file}:{line}: {message}", markup=False, highlight=False)
    settings = load_settings()
    sessions = make_session_factory(make_engine(settings.database_url))
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, transient=True) as progress, sessions.begin() as session:
        task = progress.add_task(list_name, total=len(parsed.values))
        try:
            job = dnc_repo.start_import(
                session, list_name=list_name, country=code, as_of=snapshot, hashed=hashed, source_name=file.name
            )
        except ValueError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False)
            raise typer.Exit(2) from exc
        for start in range(0, len(parsed.values), dnc_repo.BATCH):
            chunk = parsed.values[start : start + dnc_repo.BATCH]
            dnc_repo.add_entries(session, job, chunk)
            progress.advance(task, len(chunk))
        job.refused = len(parsed.problems)
        kind = job.kind
    what = f"registry {code} as of {snapshot}" if kind == "registry" else f"{kind} list"
    err.print(
        f"imported {len(parsed.values)} entr{'y' if len(parsed.values) == 1 else 'ies'} into {list_name} ({what}); "
        f"{parsed.duplicates} duplicate(s) skipped; {len(parsed.problems)} line(s) refused"
    )
    if kind == "registry":
        _freshness(settings, code, snapshot)
    if parsed.problems:
        raise typer.Exit(1)


def _freshness(settings, country: str | None, snapshot: date | None) -> None:
    from content.policy import load_policy
    from core.jurisdiction import PolicyError

    try:
        policy = load_policy(settings.policy_file)
    except PolicyError as exc:
        err.print(f"[yellow]warning:[/yellow] policy file not usable, freshness not shown:\n{exc}")
        return
    rule = policy.for_country(country).registry
    if rule is None or snapshot is None:
        err.print(f"note: no registry rule for {country}; this list blocks its numbers but freshness is not judged")
        return
    age = (datetime.now(UTC).date() - snapshot).days
    if age > rule.max_age_days:
        err.print(
            f"[yellow]warning:[/yellow] this copy is {age} days old; {country} allows {rule.max_age_days}: "
            f"calls to {country} stay blocked until a fresher copy is imported"
        )
    else:
        err.print(f"{country} {rule.name}: fresh for {rule.max_age_days - age} more day(s)")
