"""Read the operator's jurisdiction overrides (OMNIREACH_POLICY_FILE) on top of the shipped defaults."""

from __future__ import annotations

from pathlib import Path

from core.jurisdiction import JurisdictionPolicy, PolicyError, default_policy, parse_policy
from core.yamlsource import SourceError


def load_policy(path: Path | None) -> JurisdictionPolicy:
    """The shipped defaults, overridden by the YAML file at ``path`` when one is given.

    Raises PolicyError (``path:line:col: message`` lines) for a missing, unreadable or invalid file, so a
    worker or API refuses to start rather than reaching people under rules nobody meant.
    """
    if path is None:
        return default_policy()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise PolicyError(
            [SourceError(str(path), 1, 1, f"cannot read the policy file ({reason}); fix OMNIREACH_POLICY_FILE")]
        ) from exc
    return parse_policy(text, str(path))
