"""What `simulate`, `preview` and `lint` share: read-only settings and finding a cadence by id or path."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import typer
from rich.console import Console

from cli.config import read_dotenv
from content.cadences import load_cadence_file, load_library
from content.templates_dir import TemplateFileError, load_template_sources
from core.messages import MessageCatalog
from core.model import Cadence
from core.settings import Settings, SettingsError

err = Console(stderr=True, soft_wrap=True)  # long paths and messages stay on one line


def content_settings() -> Settings:
    """Settings for commands that only read cadences and templates: no secrets needed, nothing written."""
    try:
        return Settings.from_env({**read_dotenv(Path(".env")), **os.environ})
    except SettingsError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc


@dataclass
class Content:
    sources: dict[str, str]
    catalog: MessageCatalog
    templates_dir: Path


def load_content(templates: Path | None, settings: Settings) -> Content:
    """The templates folder as sources and a catalog; an unreadable file stops the command with its path."""
    folder = templates or settings.templates_dir
    if not folder.is_dir():
        err.print(f"[red]error:[/red] templates folder {folder} not found (use --templates DIR)")
        raise typer.Exit(2)
    try:
        sources = load_template_sources(folder)
    except TemplateFileError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc
    return Content(sources, MessageCatalog(sources), folder)


def find_cadence(ref: str, settings: Settings, content: Content) -> Cadence:
    """A cadence by file path or by id (from the cadences folder), validated with its templates."""
    path = Path(ref)
    if path.suffix in (".yaml", ".yml") or path.is_file():
        load = load_cadence_file(path, content.catalog, template_root=str(content.templates_dir))
        if load.cadence is None or load.errors:
            for error in load.errors:
                print(error)
            err.print(f"[red]error:[/red] {ref} is not a valid cadence; fix the errors above")
            raise typer.Exit(1)
        return load.cadence
    library = load_library([settings.cadences_dir], content.templates_dir)
    if ref in library.cadences:
        return library.cadences[ref]
    for error in library.errors:
        print(error)
    known = ", ".join(sorted(library.cadences)) or "none"
    err.print(
        f"[red]error:[/red] no valid cadence '{ref}' in {settings.cadences_dir}; known: {known} (or give a file path)"
    )
    raise typer.Exit(1)
