"""The cadence model (SPEC section 3, version 1): what a marketer writes, as typed, strict data.

The model is also the snapshot a workflow receives at enrollment, so it must round-trip through
JSON (`Cadence.model_validate(cadence.model_dump(mode="json", by_alias=True))`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from core.conditions import compile_condition
from core.durations import parse_duration
from core.timewindow import DailyWindow, parse_days, parse_hours

Channel = Literal["email", "sms", "whatsapp", "voice"]
CHANNELS: tuple[str, ...] = ("email", "sms", "whatsapp", "voice")
Purpose = Literal["marketing", "sales", "service"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ID = r"^[a-z0-9][a-z0-9-]{0,62}$"
_NAME = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


def _check_condition(value: str) -> str:
    compile_condition(value)
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]
ConditionText = Annotated[str, AfterValidator(_check_condition)]
Identifier = Annotated[str, Field(pattern=_ID)]
Name = Annotated[str, Field(pattern=_NAME)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Window(Strict):
    """When automated sends may go out, in the contact's local time."""

    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(default_factory=lambda: list(WEEKDAYS))
    hours: str = "00:00-24:00"
    skip_holidays: bool = False

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

    per_day: int | None = Field(default=None, ge=1)
    per_week: int | None = Field(default=None, ge=1)


class Route(Strict):
    """Escalation (MQL -> telemarketing) or handoff (SQL -> telesales)."""

    when: ConditionText
    queue: Identifier
    script: Identifier
    sla: Duration = "24h"


class StepBase(Strict):
    id: Identifier | None = None
    if_: ConditionText | None = Field(default=None, alias="if")


class SendStep(StepBase):
    send: Channel
    message: Identifier
    variants: dict[Name, Annotated[int, Field(ge=0, le=100)]] | None = None
    fallback: Channel | None = None

    @model_validator(mode="after")
    def _check(self) -> SendStep:
        if self.fallback == self.send:
            raise ValueError(f"fallback must be another channel than '{self.send}'")
        if self.variants is not None:
            if not self.variants:
                raise ValueError("variants must name at least one variant, e.g. {a: 50, b: 50}")
            if sum(self.variants.values()) <= 0:
                raise ValueError("variant weights must add up to more than 0")
        return self


class WaitStep(StepBase):
    wait: Duration
    until: ConditionText | None = None

    @property
    def delay(self) -> timedelta:
        return parse_duration(self.wait)


class CallStep(StepBase):
    call: Identifier
    script: Identifier


def _step_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        present = [k for k in ("send", "wait", "call") if k in value]
        return present[0] if len(present) == 1 else None
    for kind, cls in (("send", SendStep), ("wait", WaitStep), ("call", CallStep)):
        if isinstance(value, cls):
            return kind
    return None


Step = Annotated[
    Annotated[SendStep, Tag("send")] | Annotated[WaitStep, Tag("wait")] | Annotated[CallStep, Tag("call")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message="a step needs exactly one of send, wait or call",
    ),
]


class Cadence(Strict):
    """A validated cadence. Step ids are filled in (`send-1`, `wait-2`) where the author left them out."""

    id: Identifier
    name: str = Field(min_length=1, max_length=200)
    purpose: Purpose
    locale: str = Field(default="en", pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
    facts: dict[str, Any] = Field(default_factory=dict)
    window: Window | None = None
    caps: Caps | None = None
    score: dict[Name, int] = Field(default_factory=dict)
    exit_on: list[Name] = Field(default_factory=list)
    escalate: Route | None = None
    handoff: Route | None = None
    steps: list[Step] = Field(min_length=1)

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
