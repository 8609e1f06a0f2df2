"""Load and validate cadence files together with the templates they use."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from content.templates_dir import load_template_sources
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
            found.extend(sorted(p for p in path.rglob("*") if p.suffix in (".yaml", ".yml")))
        else:
            found.append(path)
    return found


def load_catalog(templates_dir: Path) -> MessageCatalog:
    return MessageCatalog(load_template_sources(templates_dir) if templates_dir.is_dir() else {})


def load_cadence_file(path: Path, catalog: MessageCatalog, *, template_root: str = "templates") -> CadenceLoad:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return CadenceLoad(str(path), errors=[SourceError(str(path), 1, 1, f"cannot read file: {exc}")])
    load = parse_cadence(text, str(path))
    check_content(load, catalog, template_root=template_root)
    return load


def load_library(paths: list[Path], templates_dir: Path) -> Library:
    """Every cadence under `paths`, validated as a whole; duplicate ids are an error too."""
    catalog = load_catalog(templates_dir)
    library = Library(catalog=catalog)
    for path in cadence_files(paths):
        load = load_cadence_file(path, catalog, template_root=str(templates_dir))
        library.errors.extend(load.errors)
        if load.cadence is not None:
            if load.cadence.id in library.cadences:
                library.errors.append(
                    SourceError(
                        str(path),
                        1,
                        1,
                        f"cadence id '{load.cadence.id}' is already used by another file; ids must be unique",
                    )
                )
                continue
            library.cadences[load.cadence.id] = load.cadence
    return library
