"""The cadence model (SPEC section 3, version 1): what a marketer writes, as typed, strict data.

The model is also the snapshot a workflow receives at enrollment, so it must round-trip through
JSON (`Cadence.model_validate(cadence.model_dump(mode="json", by_alias=True))`).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from core.conditions import compile_condition
from core.durations import DURATION_HELP, DURATION_PATTERN, parse_duration
from core.timewindow import DailyWindow, parse_days, parse_hours

Channel = Literal["email", "sms", "whatsapp", "voice"]
CHANNELS: tuple[str, ...] = ("email", "sms", "whatsapp", "voice")
Purpose = Literal["marketing", "sales", "service"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ID = r"^[a-z0-9][a-z0-9-]{0,62}$"
_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"
CONDITION_HELP = (
    "A condition over score, disposition, attempts, contact.<field>, contact.attributes.<name>, facts.<name> "
    'and delivered(step), opened(step), clicked(step), replied(), event(name); e.g. "score >= 10"'
)


def _check_duration(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"bad duration {value!r}: {DURATION_HELP} (a number alone has no unit)")
    parse_duration(value)
    return value


def _check_condition(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f'a condition must be text in quotes, e.g. "score >= 10" (got {value!r})')
    compile_condition(value)
    return value


Duration = Annotated[
    str,
    BeforeValidator(_check_duration),
    Field(json_schema_extra={"pattern": DURATION_PATTERN, "description": f"A duration: {DURATION_HELP}."}),
]
ConditionText = Annotated[
    str,
    BeforeValidator(_check_condition),
    Field(json_schema_extra={"description": CONDITION_HELP, "minLength": 1}),
]
Identifier = Annotated[str, Field(pattern=_ID)]
Name = Annotated[str, Field(pattern=_NAME)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Window(Strict):
    """When automated sends may go out, in the contact's local time."""

    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: list(WEEKDAYS), min_length=1, description="Weekdays sends may go out on."
    )
    hours: str = Field(
        default="00:00-24:00",
        json_schema_extra={"pattern": r"^\d{1,2}:\d{2}-\d{1,2}:\d{2}$"},
        description="Daily local hours, 'HH:MM-HH:MM' on a 24-hour clock, e.g. '09:00-17:00' (end may be 24:00).",
    )
    skip_holidays: bool = Field(default=False, description="No sends on public holidays of the contact's country.")

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        parse_hours(value)
        return value

    def daily(self) -> DailyWindow:
        start, end = parse_hours(self.hours)
        return DailyWindow(parse_days(self.days), start, end, self.skip_holidays)


class Caps(Strict):
    """Frequency caps across ALL cadences the contact is in."""

    per_day: int | None = Field(default=None, ge=1, description="At most this many automated sends per day.")
    per_week: int | None = Field(default=None, ge=1, description="At most this many automated sends per week.")


class Route(Strict):
    """Escalation (MQL -> telemarketing) or handoff (SQL -> telesales): a call task once `when` is true."""

    when: ConditionText = Field(description='Open the call task once this condition is true, e.g. "score >= 10".')
    queue: Identifier = Field(description="The agent queue that gets the call task, e.g. telemarketing.")
    script: Identifier = Field(description="Agent call script: templates/scripts/<script>.md.j2.")
    sla: Duration = Field(default="24h", description="How long the task may wait before someone claims it.")


class StepBase(Strict):
    id: Identifier | None = Field(
        default=None, description="Step id, unique in the cadence; conditions name it (opened('invite'))."
    )
    if_: ConditionText | None = Field(
        default=None, alias="if", description="Skip this step unless the condition is true when it is reached."
    )


_LOCALE_LIKE = re.compile(r"^[A-Za-z]{2,3}(?:-(?:[A-Za-z]{2}|[0-9]{3}))?$")


class SendStep(StepBase):
    """Send a message on a channel (with A/B variants and a fallback channel)."""

    send: Channel = Field(description="The channel: email, sms, whatsapp or voice.")
    message: Identifier = Field(description="The message folder under templates/.")
    variants: dict[Name, Annotated[int, Field(ge=0, le=100)]] | None = Field(
        default=None,
        description="A/B split, variant name -> weight, e.g. {a: 50, b: 50}; deterministic per contact.",
    )
    fallback: Channel | None = Field(
        default=None, description="Channel used when the first is not permitted or not possible."
    )

    @field_validator("variants")
    @classmethod
    def _variants(cls, value: dict[str, int] | None) -> dict[str, int] | None:
        if value is None:
            return value
        if not value:
            raise ValueError("variants must name at least one variant, e.g. {a: 50, b: 50}")
        if sum(value.values()) <= 0:
            raise ValueError("variant weights must add up to more than 0, e.g. {a: 50, b: 50}")
        for name in value:
            if _LOCALE_LIKE.match(name):
                raise ValueError(
                    f"variant name '{name}' looks like a locale folder (en, id, pt-BR) and would be read as one; "
                    "name variants a, b, v2 or short"
                )
        return value

    @field_validator("fallback")
    @classmethod
    def _fallback(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and value == info.data.get("send"):
            raise ValueError(f"fallback must be another channel than '{value}'; remove it or pick another channel")
        return value


class WaitStep(StepBase):
    """Wait for a duration, or until a condition becomes true (at most the duration)."""

    wait: Duration
    until: ConditionText | None = Field(
        default=None, description="End the wait early as soon as this condition is true."
    )

    @property
    def delay(self) -> timedelta:
        return parse_duration(self.wait)


class CallStep(StepBase):
    """Open a call task for a human agent in a queue, and wait for its disposition."""

    call: Identifier = Field(description="The agent queue, e.g. telemarketing.")
    script: Identifier = Field(description="Agent call script: templates/scripts/<script>.md.j2.")


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        present = [k for k in ("send", "wait", "call") if k in value]
        return present[0] if len(present) == 1 else None
    for kind, cls in (("send", SendStep), ("wait", WaitStep), ("call", CallStep)):
        if isinstance(value, cls):
            return kind
    return None


STEP_KIND_HELP = "a step needs exactly one of send, wait or call"
Step = Annotated[
    Annotated[SendStep, Tag("send")] | Annotated[WaitStep, Tag("wait")] | Annotated[CallStep, Tag("call")],
    Discriminator(_step_kind, custom_error_type="step_kind", custom_error_message=STEP_KIND_HELP),
]


class Cadence(Strict):
    """A validated cadence. Step ids are filled in (`send-1`, `wait-2`) where the author left them out."""

    id: Identifier = Field(description="Unique cadence id: lower-case letters, digits and '-'.")
    name: str = Field(min_length=1, max_length=200, description="A readable name for reports.")
    purpose: Purpose = Field(description="The consent purpose every automated step needs.")
    locale: str = Field(
        default="en", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$", description="Default template locale (BCP 47)."
    )
    facts: dict[str, Any] = Field(
        default_factory=dict, description="Shared by every channel's template and every agent script."
    )
    window: Window | None = None
    caps: Caps | None = None
    score: dict[Name, int] = Field(
        default_factory=dict, description="Engagement points per event, e.g. {email.opened: 1, email.clicked: 3}."
    )
    exit_on: list[Name] = Field(
        default_factory=list, description="Events that end the enrollment: replied, unsubscribed, or custom names."
    )
    escalate: Route | None = Field(default=None, description="MQL -> telemarketing call task.")
    handoff: Route | None = Field(default=None, description="SQL -> telesales call task.")
    steps: list[Step] = Field(min_length=1, description="What happens, in order.")

    @model_validator(mode="after")
    def _fill_step_ids(self) -> Cadence:
        filled = []
        for index, step in enumerate(self.steps, start=1):
            if step.id is None:
                kind = _step_kind(step) or "step"
                step = step.model_copy(update={"id": f"{kind}-{index}"})
            filled.append(step)
        object.__setattr__(self, "steps", filled)
        return self

    def step(self, step_id: str) -> SendStep | WaitStep | CallStep | None:
        return next((s for s in self.steps if s.id == step_id), None)

    def snapshot(self) -> dict[str, Any]:
        """JSON-ready form carried by the workflow; editing the YAML later never changes it."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def cadence_json_schema() -> dict[str, Any]:
    """The JSON Schema of the cadence format (for editors; `omnireach schema` prints it)."""
    document = Cadence.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "omnireach cadence (version 1)",
        **{k: v for k, v in document.items() if k != "title"},
    }
