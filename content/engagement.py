"""Read the engagement model of `omnireach simulate`: the shipped defaults or the marketer's YAML file."""

from __future__ import annotations

from pathlib import Path

from core.sim.engagement import EngagementError, EngagementModel, parse_engagement
from core.yamlsource import SourceError

DEFAULT_MODEL = Path(__file__).with_name("engagement_default.yaml")

__all__ = ["DEFAULT_MODEL", "EngagementError", "load_engagement"]


def load_engagement(path: Path | None = None) -> EngagementModel:
    """The model in `path` (default: the shipped defaults); EngagementError names file:line:col."""
    path = Path(path) if path is not None else DEFAULT_MODEL
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EngagementError([SourceError(str(path), 1, 1, f"cannot read the engagement model: {exc}")]) from exc
    return parse_engagement(text, str(path))
