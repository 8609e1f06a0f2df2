"""Load and validate cadence files together with the templates they use."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from content.queues import load_queues, queues_path
from content.templates_dir import TemplateFileError, load_template_sources
from core.cadence_loader import DEFAULT_QUEUES, CadenceLoad, check_content, parse_cadence
from core.messages import MessageCatalog
from core.model import Cadence
from core.yamlsource import SourceError


@dataclass
class Library:
    """All cadences of a project, validated, with the message catalog they render from."""

    cadences: dict[str, Cadence] = field(default_factory=dict)
    errors: list[SourceError] = field(default_factory=list)
    catalog: MessageCatalog | None = None

    def get(self, cadence_id: str) -> Cadence:
        if cadence_id not in self.cadences:
            known = ", ".join(sorted(self.cadences)) or "none"
            raise KeyError(f"unknown cadence '{cadence_id}'; known cadences: {known}")
        return self.cadences[cadence_id]


def cadence_files(paths: list[Path]) -> list[Path]:
    """Expand folders to their *.yaml / *.yml files (sorted); files are taken as given."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()))
        else:
            found.append(path)
    return found


def load_catalog(templates_dir: Path) -> MessageCatalog:
    return MessageCatalog(load_template_sources(templates_dir) if templates_dir.is_dir() else {})


def load_cadence_file(
    path: Path,
    catalog: MessageCatalog,
    *,
    template_root: str = "templates",
    sources: dict[str, str] | None = None,
    queues: Iterable[str] | None = DEFAULT_QUEUES,
) -> CadenceLoad:
    if not path.exists():
        return _unreadable(path, "file not found; check the path")
    try:
        text = path.read_text(encoding="utf-8-sig")  # an editor's byte-order mark would shift every column
    except UnicodeDecodeError as exc:
        return _unreadable(path, f"not UTF-8 text ({exc.reason}); save it as UTF-8")
    except OSError as exc:
        return _unreadable(path, f"cannot read file: {exc.strerror or exc}")
    load = parse_cadence(text, str(path))
    check_content(load, catalog, template_root=template_root, sources=sources, queues=queues)
    return load


def _unreadable(path: Path, message: str) -> CadenceLoad:
    return CadenceLoad(str(path), errors=[SourceError(str(path), 1, 1, message)])


def load_library(paths: list[Path], templates_dir: Path, queues: Iterable[str] | None = None) -> Library:
    """Every cadence under `paths`, validated as a whole with its templates; duplicate ids are an error too.

    ``queues``: the call queues a cadence may route to; default the built-in telemarketing and telesales plus
    those of the project's queues.yaml (beside the first cadences folder), whose own errors are reported too.
    """
    errors: list[SourceError] = []
    known: frozenset[str] | None = frozenset(queues) if queues is not None else None
    if queues is None:
        known, queue_errors = project_queues(paths)
        errors.extend(queue_errors)
    try:
        sources = load_template_sources(templates_dir) if templates_dir.is_dir() else {}
    except TemplateFileError as exc:
        errors.append(SourceError(exc.path, exc.line, 1, exc.message))
        sources = {}
    catalog = MessageCatalog(sources)
    library = Library(catalog=catalog)
    first_file: dict[str, str] = {}
    for path in cadence_files(paths):
        load = load_cadence_file(path, catalog, template_root=str(templates_dir), sources=sources, queues=known)
        errors.extend(load.errors)
        if load.cadence is None:
            continue
        cadence_id = load.cadence.id
        if cadence_id in first_file:
            where = load.document.locate(("id",)) if load.document else None
            errors.append(
                SourceError(
                    str(path),
                    where.line if where else 1,
                    where.column if where else 1,
                    f"cadence id '{cadence_id}' is already used by {first_file[cadence_id]}; ids must be unique",
                )
            )
            continue
        first_file[cadence_id] = str(path)
        library.cadences[cadence_id] = load.cadence
    library.errors = list(dict.fromkeys(errors))  # a template shared by cadences fails once
    return library


def project_queues(paths: list[Path]) -> tuple[frozenset[str] | None, list[SourceError]]:
    """The built-in queues plus those named in queues.yaml beside the first cadences folder (if any).

    None (no queue check) with the file's errors when queues.yaml is broken."""
    folder = next((p for p in paths if p.is_dir()), None)
    if folder is None:
        return DEFAULT_QUEUES, []
    path = queues_path(folder)
    with contextlib.suppress(ValueError):  # errors name the file as the user knows it: relative when inside cwd
        path = path.relative_to(Path.cwd())
    load = load_queues(path)
    if load.book is None:
        return None, load.errors
    return DEFAULT_QUEUES | set(load.book.queues), []
