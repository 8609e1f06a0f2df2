"""The engagement model of `omnireach simulate`: how contacts react, how agents work, what it costs.

A marketer edits it as YAML (`content/engagement_default.yaml` holds the shipped defaults); every
number is a plain probability, a duration (`30m`, `4h`, `2d`) or an amount, so it can be argued
about in a review. It is validated strictly (unknown keys, probabilities outside 0..1, outcome
weights that add up to nothing) and every error names `path:line:col`.

Semantics (documented here because the simulator relies on them):
- per channel, `delivered` is the share of sent messages that arrive; `open` is of delivered ones,
  `click` of opened ones (an untracked open, e.g. SMS, still lets the contact click), `reply` and
  `unsubscribe` of delivered ones. Each reaction happens after a delay drawn from an exponential
  distribution with the given mean, rounded up to whole minutes (at least one minute).
- `events` are custom events other systems would send (`webinar.registered`, `webinar.attended`,
  `purchased`): each follows a stage (`delivered`, `opened`, `clicked`, `replied`) or another custom
  event, with a probability and a mean delay; by default a contact produces each custom event once.
- `queues` say how a call task ends: after a pickup delay (mean, then moved into the agents' shift
  and the contact's calling hours) an agent calls; the contact answers with probability `answer`
  and the disposition is drawn from `outcomes` (weights), else from `unanswered`.
- `agents` turn the calls worked per day into agents needed (Erlang C, see core.sim.metrics).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.durations import parse_duration
from core.engine import DISPOSITIONS, RETRY_DISPOSITIONS
from core.timewindow import END_OF_DAY, DailyWindow, parse_days, parse_hours
from core.yamlsource import SourceError, YamlSourceError, load_located

STAGES = ("delivered", "opened", "clicked", "replied")


def _duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[str, AfterValidator(_duration)]
Probability = Annotated[float, Field(ge=0.0, le=1.0)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Reaction(_Strict):
    """A reaction with its probability and mean delay."""

    probability: Probability = 0.0
    delay: Duration = "1h"
    tracked: bool = True  # False: it happens (and enables a click) but the provider reports no event

    @property
    def mean_delay(self) -> timedelta:
        return parse_duration(self.delay)


class ChannelModel(_Strict):
    delivered: Probability = 1.0
    open: Reaction = Reaction()
    click: Reaction = Reaction()
    reply: Reaction = Reaction()
    unsubscribe: Reaction = Reaction()
    cost: float = Field(default=0.0, ge=0.0)  # per message (SMS: per segment)


class CustomEvent(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]
    after: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")]
    probability: Probability
    delay: Duration = "1h"
    once: bool = True

    @property
    def mean_delay(self) -> timedelta:
        return parse_duration(self.delay)


def _weights(value: dict[str, float]) -> dict[str, float]:
    unknown = sorted(set(value) - DISPOSITIONS)
    if unknown:
        raise ValueError(f"unknown disposition '{unknown[0]}'; dispositions: {', '.join(sorted(DISPOSITIONS))}")
    if any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
        raise ValueError("weights must be >= 0 and add up to more than 0, e.g. {qualified: 0.3, not_interested: 0.7}")
    return value


Weights = Annotated[dict[str, float], AfterValidator(_weights)]


class QueueModel(_Strict):
    """How the call tasks of one queue end."""

    pickup: Duration = "2h"  # mean time from task creation to the call, before shift/calling hours
    handle_time: Duration = "6m"  # average handle time: talk plus wrap-up
    answer: Probability = 0.5
    outcomes: Weights = Field(default_factory=lambda: {"not_interested": 1.0})
    unanswered: Weights = Field(default_factory=lambda: {"no_answer": 0.6, "busy": 0.1, "voicemail": 0.3})
    callback_delay: Duration = "1d"
    deal_value: float = Field(default=0.0, ge=0.0)  # revenue of a `won` disposition
    sla: Duration | None = None  # for tasks that carry none (call steps); routes carry their own

    @field_validator("unanswered")
    @classmethod
    def _retry_only(cls, value: dict[str, float]) -> dict[str, float]:
        wrong = sorted(set(value) - RETRY_DISPOSITIONS)
        if wrong:
            raise ValueError(
                f"'{wrong[0]}' is not an unanswered disposition; use {', '.join(sorted(RETRY_DISPOSITIONS))}"
            )
        return value


class Shift(_Strict):
    days: list[str] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])
    hours: str = "08:00-17:00"

    @field_validator("days")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        parse_days(value)
        return value

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        parse_hours(value)
        return value

    def window(self) -> DailyWindow:
        start, end = parse_hours(self.hours)
        return DailyWindow(parse_days(self.days), start, end)

    @property
    def hours_per_day(self) -> float:
        start, end = parse_hours(self.hours)
        end_minutes = 24 * 60 if end == END_OF_DAY else end.hour * 60 + end.minute
        return (end_minutes - (start.hour * 60 + start.minute)) / 60


class Agents(_Strict):
    timezone: str | None = None  # the call centre's zone; None: the shift is in each contact's local time
    shift: Shift = Shift()
    service_level: Probability = 0.8  # share of tasks claimed within their SLA
    max_occupancy: Annotated[float, Field(gt=0.0, le=1.0)] = 0.85
    hourly_cost: float = Field(default=0.0, ge=0.0)
    default_sla: Duration = "4h"


class EngagementModel(_Strict):
    """The whole model; defaults are a neutral starting point, the shipped YAML has realistic numbers."""

    version: Literal[1] = 1
    currency: str = "USD"
    audience: dict[Literal["email", "sms", "whatsapp", "voice"], Probability] = Field(default_factory=dict)
    channels: dict[Literal["email", "sms", "whatsapp", "voice"], ChannelModel] = Field(default_factory=dict)
    events: list[CustomEvent] = Field(default_factory=list)
    queues: dict[str, QueueModel] = Field(default_factory=dict)
    agents: Agents = Agents()
    voice_cost_per_minute: float = Field(default=0.0, ge=0.0)

    @model_validator(mode="after")
    def _check_events(self) -> EngagementModel:
        names = {e.name for e in self.events}
        for event in self.events:
            if event.after not in STAGES and event.after not in names:
                raise ValueError(
                    f"event '{event.name}' follows '{event.after}', which is neither a stage "
                    f"({', '.join(STAGES)}) nor another custom event"
                )
        return self

    def channel(self, name: str) -> ChannelModel:
        return self.channels.get(name) or ChannelModel()

    def queue(self, name: str) -> QueueModel:
        return self.queues.get(name) or self.queues.get("default") or QueueModel()

    def reachable_share(self, channel: str) -> float:
        """Share of contacts with consent and a usable address on the channel (1.0 unless the model says)."""
        return self.audience.get(channel, 1.0)  # type: ignore[call-overload]


class EngagementError(Exception):
    """The model file is unusable; `errors` are printable as `path:line:col: message`."""

    def __init__(self, errors: list[SourceError]):
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


def parse_engagement(text: str, path: str) -> EngagementModel:
    """Validate engagement YAML; raise EngagementError with every problem located in the file."""
    try:
        doc = load_located(text, path)
    except YamlSourceError as exc:
        raise EngagementError([exc.error]) from None
    if not isinstance(doc.data, dict):
        raise EngagementError([doc.error((), "an engagement model must be a mapping (channels, queues, agents...)")])
    try:
        return EngagementModel.model_validate(doc.data)
    except ValidationError as exc:
        raise EngagementError([_located(doc, err) for err in exc.errors(include_url=False)]) from None


def _located(doc: Any, err: dict) -> SourceError:
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    where = ".".join(str(p) for p in loc) or "model"
    if err["type"] == "extra_forbidden":
        return doc.error(loc, f"unknown key '{loc[-1]}'", key=True)
    if err["type"] == "missing":
        return doc.error(loc[:-1], f"missing required key '{loc[-1]}'")
    message = err["msg"].removeprefix("Value error, ")
    if not isinstance(err.get("input"), dict | list):
        message += f" (got {err['input']!r})"
    return doc.error(loc, f"{where}: {message}")
