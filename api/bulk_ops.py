"""Bulk enrollment: rows streamed from a JSONL or CSV file, checked, deduplicated and started in batches.

Shared by ``POST /v1/enrollments:bulk`` and ``omnireach enroll CADENCE --file FILE``. The file is read
as a stream (never whole in memory); every bad row is reported with its line number and the good ones
go on. Rows are taken in batches: one database query resolves a batch's contacts and finds the
enrollments that already exist, then the batch's workflow starts run concurrently (bounded), so a big
file is limited by how fast Temporal accepts starts, not by round trips of ours.

Rerun-safe: the workflow id ``cadence:{cadence}:{contact}`` is the idempotency key. A running
enrollment is reported ``already_running``; one that already ran (recorded in our database, or still
known to Temporal) is ``already_enrolled`` and not started again.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import json
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.temporal_gateway import TemporalGateway, TemporalUnavailable
from content.cadences import Library
from core.model import Cadence
from store.models import Contact, Enrollment
from workflows.contact_cadence import enrollment_id

log = logging.getLogger("omnireach.bulk")
BATCH_SIZE = 500
CONCURRENCY = 64
MAX_REPORTED_ERRORS = 10_000
MAX_LINE_CHARS = 10_000
FORMATS = ("jsonl", "csv")
EXT = "ext:"


@dataclass(frozen=True)
class RowError:
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.field}: {self.message}"


@dataclass(frozen=True)
class EnrollRow:
    line: int
    contact_ref: str
    cadence_id: str


@dataclass
class BulkResult:
    """Counts per outcome and the bad rows by line (the first MAX_REPORTED_ERRORS of them)."""

    rows: int = 0
    started: int = 0
    already_running: int = 0
    already_enrolled: int = 0
    duplicates: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)
    errors_truncated: bool = False

    def error(self, err: RowError) -> None:
        self.failed += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(err)
        else:
            self.errors_truncated = True

    @property
    def enrolled(self) -> int:
        return self.started + self.already_running + self.already_enrolled


# ---- reading ------------------------------------------------------------------------------------
async def lines_of(chunks: AsyncIterator[bytes]) -> AsyncIterator[tuple[int, str]]:
    """(line number, text) for each line of a UTF-8 byte stream, without holding it whole."""
    decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="strict")
    pending = ""
    number = 0
    async for chunk in chunks:
        try:
            pending += decoder.decode(chunk)
        except UnicodeDecodeError as exc:
            raise BadFile(
                number + pending.count("\n") + 1, f"the file is not UTF-8 ({exc.reason}); save it as UTF-8"
            ) from exc
        *complete, pending = pending.split("\n")
        for text in complete:
            number += 1
            yield number, text.rstrip("\r")
    pending += decoder.decode(b"", final=True)
    if pending:
        yield number + 1, pending.rstrip("\r")


class BadFile(ValueError):
    """The file as a whole cannot be read (wrong encoding, no CSV header): nothing was started."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.message = message


async def enroll_rows(
    lines: AsyncIterator[tuple[int, str]], fmt: str, default_cadence: str | None
) -> AsyncIterator[EnrollRow | RowError]:
    """Typed rows from JSONL (``{"contact_id": ..., "cadence_id": ...}``) or CSV with a header row.

    A row names its contact as ``contact_id`` (our id or ``ext:<external_id>``) or ``external_id``;
    ``cadence_id`` may come from the row or, for every row, from ``default_cadence``.
    """
    header: list[str] | None = None
    async for number, text in lines:
        if not text.strip():
            continue
        if len(text) > MAX_LINE_CHARS:
            yield RowError(number, "line", f"is longer than {MAX_LINE_CHARS} characters; one row per line")
            continue
        if fmt == "csv":
            cells = _csv_cells(text)
            if cells is None:
                yield RowError(number, "line", "is not valid CSV (an unclosed quote?); fields may not span lines")
                continue
            if header is None:
                header = [c.strip().lower() for c in cells]
                if not {"contact_id", "external_id"} & set(header):
                    raise BadFile(number, "the CSV header must name a contact_id or external_id column")
                continue
            if len(cells) > len(header):
                yield RowError(number, "line", f"has {len(cells)} cells but the header has {len(header)}")
                continue
            record: Any = dict(zip(header, cells, strict=False))
        else:
            try:
                record = json.loads(text)
            except ValueError as exc:
                yield RowError(number, "line", f"is not valid JSON ({exc}); one JSON object per line")
                continue
            if not isinstance(record, dict):
                yield RowError(number, "line", 'must be a JSON object such as {"contact_id": "ext:crm-1"}')
                continue
        yield _enroll_row(number, record, default_cadence)


def _csv_cells(text: str) -> list[str] | None:
    try:
        rows = list(csv.reader([text], strict=True))
    except csv.Error:
        return None
    return rows[0] if rows else []


def _enroll_row(number: int, record: dict[str, Any], default_cadence: str | None) -> EnrollRow | RowError:
    unknown = sorted(set(record) - {"contact_id", "external_id", "cadence_id"})
    if unknown:
        return RowError(number, unknown[0], "is not a known column; use contact_id or external_id, and cadence_id")
    contact = _text(record.get("contact_id"))
    external = _text(record.get("external_id"))
    if contact is None and external is None:
        return RowError(
            number, "contact_id", "is required (our contact id, ext:<external_id>, or an external_id column)"
        )
    if contact is not None and external is not None:
        return RowError(number, "contact_id", "give contact_id or external_id, not both")
    cadence = _text(record.get("cadence_id")) or default_cadence
    if cadence is None:
        return RowError(number, "cadence_id", "is required (a cadence_id column, or one cadence for the whole file)")
    for name, value in (("contact_id", contact), ("external_id", external)):
        if value is not None and (len(value) > 300 or any(ord(c) < 32 for c in value)):
            return RowError(number, name, "must be at most 300 characters without control characters")
    ref = contact if contact is not None else EXT + str(external)
    return EnrollRow(number, ref, cadence)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        return "\x00"  # refused by the control-character check with a clear message
    return value.strip() or None


# ---- enrolling ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Resolved:
    contact_ids: dict[str, str]  # ref -> our id (live contacts)
    erased: set[str]  # refs of erased contacts
    enrolled: dict[str, str]  # workflow id -> status, for enrollments already in our database


class BulkEnroller:
    """Runs parsed rows through lookup, dedupe and concurrent starts; see the module docstring."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        gateway: TemporalGateway,
        library: Library,
        *,
        batch_size: int = BATCH_SIZE,
        concurrency: int = CONCURRENCY,
        progress: Callable[[BulkResult], None] | None = None,
    ):
        self.sessions = sessions
        self.gateway = gateway
        self.library = library
        self.batch_size = batch_size
        self.limit = asyncio.Semaphore(concurrency)
        self.progress = progress
        self._snapshots: dict[str, dict] = {}
        self._seen: dict[str, int] = {}  # workflow id -> first line (duplicates inside the file)

    async def run(self, rows: AsyncIterator[EnrollRow | RowError]) -> BulkResult:
        result = BulkResult()
        batch: list[EnrollRow] = []
        async for row in rows:
            result.rows += 1
            if isinstance(row, RowError):
                result.error(row)
                continue
            batch.append(row)
            if len(batch) >= self.batch_size:
                await self._batch(batch, result)
                batch = []
        if batch:
            await self._batch(batch, result)
        result.errors.sort(key=lambda e: e.line)  # file errors are found at once, contact errors per batch
        log.info(
            "event=bulk_enroll rows=%d started=%d running=%d enrolled_before=%d duplicates=%d failed=%d",
            result.rows,
            result.started,
            result.already_running,
            result.already_enrolled,
            result.duplicates,
            result.failed,
        )
        return result

    async def _batch(self, batch: list[EnrollRow], result: BulkResult) -> None:
        known = [r for r in batch if self._cadence(r, result) is not None]
        resolved = await run_in_threadpool(_resolve, self.sessions, known)
        starts: list[tuple[EnrollRow, Cadence, str]] = []
        for row in known:
            cadence = self.library.cadences[row.cadence_id]
            if row.contact_ref in resolved.erased:
                result.error(RowError(row.line, "contact_id", f"{row.contact_ref!r} was erased; it cannot be enrolled"))
                continue
            contact_id = resolved.contact_ids.get(row.contact_ref)
            if contact_id is None:
                result.error(RowError(row.line, "contact_id", f"{row.contact_ref!r}: no such contact; import it first"))
                continue
            workflow_id = enrollment_id(cadence.id, contact_id)
            if workflow_id in self._seen:
                result.duplicates += 1
                continue
            self._seen[workflow_id] = row.line
            status = resolved.enrolled.get(workflow_id)
            if status == "running":
                result.already_running += 1
                continue
            if status is not None:
                result.already_enrolled += 1
                continue
            starts.append((row, cadence, contact_id))
        await asyncio.gather(*(self._start(row, cadence, contact_id, result) for row, cadence, contact_id in starts))
        if self.progress is not None:
            self.progress(result)

    def _cadence(self, row: EnrollRow, result: BulkResult) -> Cadence | None:
        cadence = self.library.cadences.get(row.cadence_id)
        if cadence is None:
            known = ", ".join(sorted(self.library.cadences)) or "none are loaded"
            result.error(RowError(row.line, "cadence_id", f"unknown cadence {row.cadence_id!r}; known: {known}"))
        return cadence

    async def _start(self, row: EnrollRow, cadence: Cadence, contact_id: str, result: BulkResult) -> None:
        snapshot = self._snapshots.setdefault(cadence.id, cadence.snapshot())
        async with self.limit:
            try:
                started = await self.gateway.start_enrollment(cadence, contact_id, snapshot=snapshot, reenroll=False)
            except TemporalUnavailable as exc:
                del self._seen[enrollment_id(cadence.id, contact_id)]
                result.error(RowError(row.line, "contact_id", f"not started, rerun the file: {exc}"))
                return
        if started is None:
            result.already_enrolled += 1
        elif started.started:
            result.started += 1
        else:
            result.already_running += 1


def _resolve(sessions: sessionmaker[Session], rows: Iterable[EnrollRow]) -> _Resolved:
    refs = {r.contact_ref for r in rows}
    ids = [r for r in refs if not r.startswith(EXT)]
    externals = [r[len(EXT) :] for r in refs if r.startswith(EXT)]
    contact_ids: dict[str, str] = {}
    erased: set[str] = set()
    with sessions() as session:
        found: list[tuple[str, str, Any]] = []
        if ids:
            found += [("id", *t) for t in session.execute(_contacts().where(Contact.id.in_(ids))).tuples()]
        if externals:
            found += [
                ("ext", *t) for t in session.execute(_contacts().where(Contact.external_id.in_(externals))).tuples()
            ]
        for how, contact_id, external_id, erased_at in found:
            ref = contact_id if how == "id" else EXT + external_id
            if erased_at is not None:
                erased.add(ref)
            else:
                contact_ids[ref] = contact_id
        cadence_ids = {r.cadence_id for r in rows}
        wanted = [enrollment_id(c, i) for c in cadence_ids for i in set(contact_ids.values())]
        enrolled: dict[str, str] = {}
        if wanted:
            query = select(Enrollment.id, Enrollment.status).where(Enrollment.id.in_(wanted))
            enrolled = dict(session.execute(query).tuples().all())
    return _Resolved(contact_ids, erased, enrolled)


def _contacts() -> Any:
    return select(Contact.id, Contact.external_id, Contact.erased_at)
