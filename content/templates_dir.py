"""Read a templates/ directory into the name -> source mapping that `core.messages.MessageCatalog` renders.

The catalog is pure; this is the one place that touches the files. Names are paths relative to the
templates directory with "/" separators on every OS ("webinar-invite/en/sms.j2"), so a cadence validated
on Windows and run on Linux finds the same templates.
"""

from __future__ import annotations

from pathlib import Path

from core.messages import TemplateProblem

__all__ = ["TEMPLATE_SUFFIXES", "TemplateFileError", "load_template_sources"]

#: Message templates and scripts (*.j2) and approved WhatsApp templates (whatsapp.yaml).
TEMPLATE_SUFFIXES = (".j2", ".yaml")


class TemplateFileError(TemplateProblem):
    """A template file that cannot be read; ``str()`` names the real path, line and how to fix it."""

    def __init__(self, template: str, line: int, message: str, path: str = "") -> None:
        super().__init__(template, line, message)
        self.args = (template, line, message, path)
        self.path = path or template

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:1: {self.message}"


def load_template_sources(root: Path) -> dict[str, str]:
    """Every *.j2 and *.yaml file under ``root`` (the templates directory itself), by relative posix name.

    Hidden files and folders (editor swap files, .git) are skipped. A leading UTF-8 byte-order mark is
    dropped so it never reaches a customer. A file that is not UTF-8 or cannot be read raises
    TemplateFileError naming the file (and, for bad bytes, the line).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: templates directory not found")
    sources: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if not path.name.endswith(TEMPLATE_SUFFIXES) or not path.is_file():
            continue
        name = relative.as_posix()
        sources[name] = _read(path, name)
    return sources


def _read(path: Path, name: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TemplateFileError(name, 1, f"cannot read the file: {exc.strerror or exc}", str(path)) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise TemplateFileError(
            name,
            line,
            f"not UTF-8 text (byte 0x{data[exc.start]:02x} at column {column}); save the file as UTF-8",
            str(path),
        ) from None
    return text.removeprefix("\ufeff")
