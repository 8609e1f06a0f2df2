"""Call queues (``queues.yaml``): how fast a task must be claimed (SLA), when calls may be placed, how
unanswered calls are retried and which supervisor hears about a breach.

Pure: the text is parsed here (safe YAML with positions, like cadences) and every error names
``path:line:col``; ``content.queues`` reads the file. A queue the file does not mention gets the defaults
below, so a cadence naming ``telemarketing`` works before anyone writes a queues.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import Field, ValidationError, field_validator

from core.durations import parse_duration
from core.engine import RetryRule
from core.model import Duration, Identifier, Purpose, Strict, Window
from core.yamlsource import SourceError, YamlSourceError, load_located

DEFAULT_CALLING_HOURS = Window(days=["mon", "tue", "wed", "thu", "fri", "sat"], hours="09:00-20:00", skip_holidays=True)


class RetrySpec(Strict):
    """Unanswered calls (no_answer, busy, voicemail): at most `max_attempts` calls in all, `spacing` apart."""

    max_attempts: int = Field(default=3, ge=1, le=20)
    spacing: Duration = "2h"


class SupervisorSpec(Strict):
    """Who hears about an SLA breach: an email address and/or a URL that receives a signed JSON POST."""

    name: str | None = None
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    webhook: str | None = None

    @field_validator("webhook")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("webhook must be an http:// or https:// URL")
        return value


class QueueSpec(Strict):
    """One queue. `purpose` is the consent purpose its calls need (default: the cadence's purpose)."""

    title: str | None = None
    purpose: Purpose | None = None
    sla: Duration = "24h"
    calling_hours: Window = DEFAULT_CALLING_HOURS
    retry: RetrySpec = RetrySpec()
    supervisor: SupervisorSpec | None = None

    @property
    def sla_seconds(self) -> int:
        return int(parse_duration(self.sla).total_seconds())

    def retry_rule(self) -> RetryRule:
        spacing = int(parse_duration(self.retry.spacing).total_seconds())
        return RetryRule(self.retry.max_attempts, spacing, (self.calling_hours.daily(),))


DEFAULT_QUEUE = QueueSpec()


class QueueBook(Strict):
    """Every configured queue by name."""

    queues: dict[Identifier, QueueSpec] = Field(default_factory=dict)

    def get(self, name: str) -> QueueSpec:
        """The queue's settings, or the defaults for a queue the file does not mention."""
        return self.queues.get(name, DEFAULT_QUEUE)


DEFAULT_BOOK = QueueBook(
    queues={"telemarketing": QueueSpec(title="Telemarketing"), "telesales": QueueSpec(title="Telesales", sla="4h")}
)


@dataclass
class QueueLoad:
    path: str
    book: QueueBook | None = None
    errors: list[SourceError] = field(default_factory=list)


def parse_queues(text: str, path: str) -> QueueLoad:
    """Parse queues.yaml text into a QueueBook, or every problem as ``path:line:col: message``."""
    result = QueueLoad(path)
    try:
        doc = load_located(text, path)
    except YamlSourceError as exc:
        result.errors.append(exc.error)
        return result
    result.errors.extend(doc.errors)
    if not isinstance(doc.data, dict) or "queues" not in doc.data:
        result.errors.append(doc.error((), "queues.yaml must be a mapping with a 'queues:' key naming each queue"))
        return result
    try:
        book = QueueBook.model_validate(doc.data)
    except ValidationError as exc:
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            where = ".".join(str(p) for p in loc) or "document"
            message = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                result.errors.append(doc.error(loc, f"unknown key '{loc[-1]}' in {where.rsplit('.', 1)[0]}", key=True))
            elif err["type"] == "missing":
                result.errors.append(doc.error(loc[:-1], f"missing required key '{loc[-1]}'"))
            else:
                result.errors.append(doc.error(loc, f"{where}: {message}"))
        return result
    if not result.errors:
        result.book = book
    return result
