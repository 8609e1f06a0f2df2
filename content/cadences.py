"""Load and validate cadence files together with the templates they use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from content.templates_dir import TemplateFileError, load_template_sources
from core.cadence_loader import CadenceLoad, check_content, parse_cadence
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
    check_content(load, catalog, template_root=template_root, sources=sources)
    return load


def _unreadable(path: Path, message: str) -> CadenceLoad:
    return CadenceLoad(str(path), errors=[SourceError(str(path), 1, 1, message)])


def load_library(paths: list[Path], templates_dir: Path) -> Library:
    """Every cadence under `paths`, validated as a whole with its templates; duplicate ids are an error too."""
    errors: list[SourceError] = []
    try:
        sources = load_template_sources(templates_dir) if templates_dir.is_dir() else {}
    except TemplateFileError as exc:
        errors.append(SourceError(exc.path, exc.line, 1, exc.message))
        sources = {}
    catalog = MessageCatalog(sources)
    library = Library(catalog=catalog)
    first_file: dict[str, str] = {}
    for path in cadence_files(paths):
        load = load_cadence_file(path, catalog, template_root=str(templates_dir), sources=sources)
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
