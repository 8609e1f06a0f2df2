"""Unit costs for the reports (cost per lead, CAC), read from a small YAML file (default costs.yaml).

```yaml
currency: USD
per_message: {email: 0.001, sms: 0.0079, whatsapp: 0.005}   # per message; SMS per segment
per_call_minute: 0.014                                      # telephony, per minute talked
per_agent_hour: 18.0                                        # loaded cost of an agent hour
```
A missing file means "not configured": every cost is 0 and reports say so. A malformed file is an error
naming the file and field, raised at start-up rather than showing wrong money later.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.reports import Costs


class CostsError(ValueError):
    pass


class _CostsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: str = Field(default="USD", pattern=r"^[A-Z]{3}$")
    per_message: dict[str, float] = Field(default_factory=dict)
    per_call_minute: float = Field(default=0.0, ge=0)
    per_agent_hour: float = Field(default=0.0, ge=0)


CHANNELS = ("email", "sms", "whatsapp", "voice")


def load_costs(path: Path) -> Costs:
    """The costs in ``path``; ``Costs()`` (all zero) when the file does not exist."""
    if not path.is_file():
        return Costs()
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        parsed = _CostsFile.model_validate(document)
    except yaml.YAMLError as exc:
        raise CostsError(f"{path}: not valid YAML: {exc}") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "file"
        raise CostsError(f"{path}: {where}: {first['msg']}") from exc
    unknown = sorted(set(parsed.per_message) - set(CHANNELS))
    if unknown:
        raise CostsError(f"{path}: per_message.{unknown[0]}: not a channel; use {', '.join(CHANNELS)}")
    if any(v < 0 for v in parsed.per_message.values()):
        raise CostsError(f"{path}: per_message: costs must be zero or more")
    return Costs(parsed.currency, dict(parsed.per_message), parsed.per_call_minute, parsed.per_agent_hour)
