"""Read queues.yaml (call queues, SLAs, calling hours, retry policy, supervisors) from the project."""

from __future__ import annotations

from pathlib import Path

from core.queues import DEFAULT_BOOK, QueueLoad, parse_queues
from core.yamlsource import SourceError

QUEUES_FILE = "queues.yaml"


def queues_path(cadences_dir: Path) -> Path:
    """queues.yaml sits beside the cadences/ folder (the project root), not inside it: the cadence loader
    reads every YAML file under cadences/ as a cadence."""
    return cadences_dir.resolve().parent / QUEUES_FILE


def load_queues(path: Path) -> QueueLoad:
    """The queue book in ``path``; a missing file means the shipped defaults (telemarketing, telesales)."""
    if not path.is_file():
        return QueueLoad(str(path), book=DEFAULT_BOOK)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return QueueLoad(str(path), errors=[SourceError(str(path), 1, 1, f"cannot read file: {exc}")])
    return parse_queues(text, str(path))
