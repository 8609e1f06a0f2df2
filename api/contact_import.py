"""Contacts from a CSV or JSONL file: each row checked exactly like POST /v1/contacts, good rows kept.

CSV: a header row; columns are the fields of POST /v1/contacts (external_id required); an empty cell
leaves that field as it is; ``attributes.<name>`` columns (or one ``attributes`` column holding a JSON
object) set free attributes. JSONL: one POST /v1/contacts body per line. Rerun-safe: rows are upserted
by external_id, so importing a file twice creates nobody twice.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from api.bulk_ops import MAX_REPORTED_ERRORS, BadFile, RowError
from api.erasure_guard import refuse_erased
from api.problems import ProblemError
from api.routes.contacts import _fields
from api.schemas import ContactIn
from store.repos.contacts import get_contact_by_external_id, upsert_contact

BATCH_SIZE = 500


@dataclass
class ImportResult:
    rows: int = 0
    created: int = 0
    updated: int = 0
    failed: int = 0
    errors: list[RowError] = field(default_factory=list)

    def error(self, err: RowError, *, same_row: bool = False) -> None:
        """Report a bad row (``same_row``: one more problem of the row just reported)."""
        self.failed += 0 if same_row else 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(err)


def contact_records(lines: Iterable[tuple[int, str]], fmt: str) -> Iterator[tuple[int, dict[str, Any] | RowError]]:
    """(line, record or error) per non-blank row. CSV quoted fields may not span lines."""
    header: list[str] | None = None
    for number, text in lines:
        if not text.strip():
            continue
        if fmt == "jsonl":
            try:
                record = json.loads(text)
            except ValueError as exc:
                yield number, RowError(number, "line", f"is not valid JSON ({exc}); one JSON object per line")
                continue
            if not isinstance(record, dict):
                yield number, RowError(number, "line", "must be a JSON object like a POST /v1/contacts body")
                continue
            yield number, record
            continue
        try:
            cells = next(csv.reader([text], strict=True), [])
        except csv.Error:
            yield number, RowError(number, "line", "is not valid CSV (an unclosed quote?); fields may not span lines")
            continue
        if header is None:
            header = [c.strip() for c in cells]
            if "external_id" not in header:
                raise BadFile(number, "the CSV header must have an external_id column")
            continue
        if len(cells) > len(header):
            yield number, RowError(number, "line", f"has {len(cells)} cells but the header has {len(header)}")
            continue
        yield number, _csv_record(number, dict(zip(header, cells, strict=False)))


def _csv_record(number: int, cells: dict[str, str]) -> dict[str, Any] | RowError:
    record: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    for name, value in cells.items():
        if value == "":
            continue  # an empty cell changes nothing
        if name.startswith("attributes."):
            attributes[name[len("attributes.") :]] = value
        elif name == "attributes":
            try:
                parsed = json.loads(value)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                return RowError(number, "attributes", 'must be a JSON object, e.g. {"plan": "pro"}')
            attributes.update(parsed)
        else:
            record[name] = value
    if attributes:
        record["attributes"] = attributes
    return record


def import_contacts(
    sessions: sessionmaker[Session],
    records: Iterable[tuple[int, dict[str, Any] | RowError]],
    *,
    progress: Any = None,
    salt: str | None = None,
) -> ImportResult:
    """Validate and upsert every record, a batch per transaction; ``progress(result)`` after each batch.

    ``salt`` (the secret key): refuse rows carrying the phone or email of a person erased at their request.
    """
    result = ImportResult()
    batch: list[tuple[int, ContactIn]] = []
    for number, record in records:
        result.rows += 1
        if isinstance(record, RowError):
            result.error(record)
            continue
        try:
            batch.append((number, ContactIn.model_validate(record)))
        except ValidationError as exc:
            for i, err in enumerate(exc.errors(include_url=False)[:5]):
                where = ".".join(str(p) for p in err["loc"]) or "line"
                result.error(RowError(number, where, _message(err)), same_row=i > 0)
            continue
        if len(batch) >= BATCH_SIZE:
            _write(sessions, batch, result, salt)
            batch = []
            if progress is not None:
                progress(result)
    if batch:
        _write(sessions, batch, result, salt)
    if progress is not None:
        progress(result)
    return result


def _message(err: dict[str, Any]) -> str:
    if err.get("type") == "extra_forbidden":
        return "is not a contact field; use external_id, name, email, phone, whatsapp, country, timezone, locale"
    if err.get("type") == "missing":
        return "is required"
    return str(err.get("msg", "is invalid")).removeprefix("Value error, ")


def _write(
    sessions: sessionmaker[Session], batch: list[tuple[int, ContactIn]], result: ImportResult, salt: str | None = None
) -> None:
    with sessions.begin() as session:
        for number, body in batch:
            existing = get_contact_by_external_id(session, body.external_id)
            if existing is not None and existing.erased_at is not None:
                result.error(RowError(number, "external_id", f"{body.external_id!r} belongs to an erased contact"))
                continue
            try:
                fields = _fields(body, existing)
                if salt:
                    refuse_erased(session, salt=salt, **{k: fields.get(k) for k in ("email", "phone", "whatsapp")})
                with session.begin_nested():
                    _, created = upsert_contact(session, external_id=body.external_id, **fields)
            except ProblemError as exc:
                for i, err in enumerate(exc.errors or []):
                    result.error(RowError(number, err.field, err.message), same_row=i > 0)
                if not exc.errors:
                    result.error(RowError(number, "contact", exc.detail))
                continue
            if created:
                result.created += 1
            else:
                result.updated += 1
