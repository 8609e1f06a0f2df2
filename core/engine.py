"""The cadence engine: a pure, deterministic function of (cadence, contact, state, what happened, now).

Two drivers run it: the `contact-cadence` Temporal workflow and the simulator. Each asks
`advance(...)` what to do next and reports back what happened (a timer fired, an event arrived, a
send finished, an agent recorded a disposition). The engine never does IO and never reads a clock,
which is what lets a test replay the same story through both drivers and compare their traces.
"""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, is_dataclass
from datetime import datetime, timedelta
from typing import Any

from core.durations import parse_duration
from core.model import CHANNELS, Cadence, CallStep, Route, SendStep, WaitStep
from core.timewindow import DailyWindow, next_allowed, resolve_timezone

# Dispositions and what they mean for the enrollment (SPEC section 3).
HANDOFF_DISPOSITIONS = frozenset({"qualified", "appointment_set"})
ENDING_DISPOSITIONS = {"not_interested": "not_interested", "do_not_call": "do_not_call", "won": "won", "lost": "lost"}
RETRY_DISPOSITIONS = frozenset({"no_answer", "busy", "voicemail"})
DISPOSITIONS = frozenset({*HANDOFF_DISPOSITIONS, *ENDING_DISPOSITIONS, *RETRY_DISPOSITIONS, "callback"})
STEP_EVENT_KINDS = ("delivered", "opened", "clicked", "replied", "bounced", "unsubscribed")
MAX_DEFERRALS_PER_STEP = 60  # a send deferred this often (e.g. no usable timezone for weeks) is skipped
SEEN_EVENT_IDS_KEPT = 500


@dataclass(frozen=True)
class ContactProfile:
    """What the engine may know of a contact: no addresses, only what conditions and windows read."""

    contact_id: str
    external_id: str = ""
    country: str | None = None
    timezone: str | None = None
    locale: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def as_condition_data(self) -> dict[str, Any]:
        return {
            "external_id": self.external_id,
            "country": self.country,
            "timezone": self.timezone,
            "locale": self.locale,
            "attributes": dict(self.attributes),
        }


@dataclass
class OpenTask:
    kind: str  # call | escalate | handoff | callback
    queue: str
    script: str
    sla_seconds: int
    step_id: str
    attempt: int = 1  # 2, 3, ...: a retry of an unanswered call (no_answer / busy / voicemail)
    due_at: str | None = None  # ISO UTC: a retry waits until then (inside the queue's calling hours)


@dataclass
class EnrollmentState:
    """Everything an enrollment remembers; JSON-friendly so it survives continue-as-new."""

    step_index: int = 0
    status: str = "running"  # running | completed | exited | stopped
    end_reason: str | None = None
    score: int = 0
    disposition: str | None = None
    attempts: int = 0
    variants: dict[str, str] = field(default_factory=dict)
    step_events: dict[str, list[str]] = field(default_factory=dict)
    events: list[str] = field(default_factory=list)
    seen_event_ids: list[str] = field(default_factory=list)
    sent: dict[str, str] = field(default_factory=dict)  # step id -> channel actually used
    skipped: dict[str, str] = field(default_factory=dict)  # step id -> reason
    wait_deadline: str | None = None  # ISO UTC, while a wait step runs
    deferred_until: str | None = None  # ISO UTC, while a send waits for its window
    deferrals: int = 0
    in_flight: str | None = None  # step id of a send issued and not yet reported
    escalated: bool = False
    handed_off: bool = False
    open_task: OpenTask | None = None
    pending_tasks: list[OpenTask] = field(default_factory=list)
    callback_at: str | None = None

    def __deepcopy__(self, memo: dict) -> EnrollmentState:
        # `advance` copies the state on every call; the generic deepcopy of a dataclass was half of the
        # simulator's time. This is still a full deep copy of the plain data the state holds.
        clone = copy.copy(self)
        clone.__dict__.update({name: _plain_copy(value) for name, value in self.__dict__.items()})
        return clone


_ATOMIC = frozenset({str, int, float, bool, type(None)})


def _plain_copy(value: Any) -> Any:
    """Deep copy of JSON-like data and dataclasses of it; anything else falls back to copy.deepcopy."""
    kind = type(value)
    if kind in _ATOMIC:
        return value
    if kind is list:
        return [_plain_copy(v) for v in value]
    if kind is dict:
        return {k: _plain_copy(v) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        clone = copy.copy(value)
        clone.__dict__.update({name: _plain_copy(v) for name, v in value.__dict__.items()})
        return clone
    return copy.deepcopy(value)


# ---- what the engine asks the driver to do -------------------------------------------------
@dataclass(frozen=True)
class Send:
    step_id: str
    channel: str
    message: str
    variant: str | None
    fallback: str | None
    attempt: int = 1


@dataclass(frozen=True)
class Wait:
    """Sleep until `until` (None: until something happens); events always wake the driver."""

    until: datetime | None
    reason: str


@dataclass(frozen=True)
class CreateTask:
    kind: str
    step_id: str
    queue: str
    script: str
    sla_seconds: int
    attempt: int = 1


@dataclass(frozen=True)
class Finish:
    status: str
    reason: str


Command = Send | Wait | CreateTask | Finish


# ---- what happened --------------------------------------------------------------------------
@dataclass(frozen=True)
class Started:
    pass


@dataclass(frozen=True)
class TimerFired:
    pass


@dataclass(frozen=True)
class EventArrived:
    name: str
    step_id: str | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class SendReported:
    step_id: str
    outcome: str  # sent | deferred | skipped | failed
    channel: str | None = None
    until: datetime | None = None
    reason: str = ""


@dataclass(frozen=True)
class RetryRule:
    """A queue's retry policy for unanswered calls: at most `max_attempts` calls in all (the first
    included), each retry at least `spacing_seconds` after the last, and only inside `windows` (the
    queue's calling hours, in the contact's local time)."""

    max_attempts: int
    spacing_seconds: int
    windows: tuple[DailyWindow, ...] = ()


@dataclass(frozen=True)
class DispositionRecorded:
    disposition: str
    callback_at: datetime | None = None
    retry: RetryRule | None = None  # the task's queue policy; None: no retries (nurture resumes at once)


@dataclass(frozen=True)
class TaskCancelled:
    """The open call task closed without a call (no voice consent, number suppressed, ...)."""

    reason: str


@dataclass(frozen=True)
class StopRequested:
    reason: str = "stopped"


Happening = Started | TimerFired | EventArrived | SendReported | DispositionRecorded | TaskCancelled | StopRequested


def assign_variant(variants: Mapping[str, int], cadence_id: str, step_id: str, contact_id: str) -> str:
    """The same contact always gets the same variant of a step; weights split contacts proportionally."""
    total = sum(variants.values())
    digest = hashlib.sha256(f"{cadence_id}\x1f{step_id}\x1f{contact_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") % total
    for name in sorted(variants):
        point -= variants[name]
        if point < 0:
            return name
    raise AssertionError("unreachable: weights sum to total")


def event_kind(name: str) -> str:
    """`email.opened` -> `opened`; custom events (`webinar.attended`) are their own kind."""
    channel, _, kind = name.partition(".")
    return kind if channel in CHANNELS and kind else name


class _View:
    """What conditions see (core.conditions.ConditionFacts)."""

    def __init__(self, cadence: Cadence, contact: ContactProfile, state: EnrollmentState):
        self.score = state.score
        self.disposition = state.disposition
        self.attempts = state.attempts
        self.contact = contact.as_condition_data()
        self.facts = cadence.facts
        self._state = state

    def step_has(self, what: str, step_id: str) -> bool:
        kinds = self._state.step_events.get(step_id, [])
        if what == "delivered":
            # Opening or clicking proves delivery even when the provider's receipt got lost.
            return any(k in kinds for k in ("delivered", "opened", "clicked"))
        if what == "opened":
            return "opened" in kinds or "clicked" in kinds
        return what in kinds

    def has_event(self, name: str) -> bool:
        if name == "replied":
            return any(event_kind(e) == "replied" for e in self._state.events)
        return name in self._state.events


def _iso(moment: datetime) -> str:
    return moment.isoformat()


def _parse(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def advance(
    cadence: Cadence, contact: ContactProfile, state: EnrollmentState, happened: Happening, now: datetime
) -> tuple[EnrollmentState, Command]:
    """Apply what happened, then decide the single next command. Never mutates its inputs."""
    state = copy.deepcopy(state)
    _apply(cadence, contact, state, happened, now)
    return state, _next(cadence, contact, state, now)


def _apply(
    cadence: Cadence, contact: ContactProfile, state: EnrollmentState, happened: Happening, now: datetime
) -> None:
    if isinstance(happened, EventArrived):
        _on_event(cadence, contact, state, happened)
    elif isinstance(happened, SendReported):
        _on_send(state, happened)
    elif isinstance(happened, DispositionRecorded):
        _on_disposition(cadence, contact, state, happened, now)
    elif isinstance(happened, TaskCancelled):
        _on_task_cancelled(state, happened)
    elif isinstance(happened, StopRequested) and state.status == "running":
        state.status, state.end_reason = "stopped", happened.reason


def _on_event(cadence: Cadence, contact: ContactProfile, state: EnrollmentState, event: EventArrived) -> None:
    if event.event_id:
        if event.event_id in state.seen_event_ids:
            return  # the same event delivered twice counts once
        state.seen_event_ids = [*state.seen_event_ids, event.event_id][-SEEN_EVENT_IDS_KEPT:]
    kind = event_kind(event.name)
    if event.step_id:
        kinds = state.step_events.setdefault(event.step_id, [])
        if kind not in kinds:
            kinds.append(kind)
    if event.name not in state.events:
        state.events.append(event.name)
    state.score += cadence.score.get(event.name, 0)
    if state.status != "running":
        return
    if any(event.name == name or kind == name for name in cadence.exit_on):
        state.status, state.end_reason = "exited", f"exit_on:{event.name}"
        return
    _check_routes(cadence, contact, state)


def _check_routes(cadence: Cadence, contact: ContactProfile, state: EnrollmentState) -> None:
    """Escalate (MQL) or hand off (SQL) once, when their conditions become true."""
    from core.conditions import compile_condition

    view = _View(cadence, contact, state)
    if cadence.escalate and not state.escalated and compile_condition(cadence.escalate.when)(view):
        state.escalated = True
        state.pending_tasks.append(_task("escalate", "escalate", cadence.escalate))
    if cadence.handoff and not state.handed_off and compile_condition(cadence.handoff.when)(view):
        state.handed_off = True
        state.pending_tasks.append(_task("handoff", "handoff", cadence.handoff))


def _task(kind: str, step_id: str, route: Route) -> OpenTask:
    return OpenTask(kind, route.queue, route.script, int(parse_duration(route.sla).total_seconds()), step_id)


def _on_send(state: EnrollmentState, report: SendReported) -> None:
    if state.in_flight != report.step_id:
        return  # a stale report (e.g. replayed) changes nothing
    state.in_flight = None
    if report.outcome == "deferred" and report.until is not None:
        state.deferrals += 1
        if state.deferrals <= MAX_DEFERRALS_PER_STEP:
            state.deferred_until = _iso(report.until)
            return
        report = SendReported(report.step_id, "skipped", reason="deferred_too_long")
    if report.outcome == "sent":
        state.sent[report.step_id] = report.channel or ""
    else:
        state.skipped[report.step_id] = report.reason or report.outcome
    state.deferrals = 0
    state.deferred_until = None
    state.step_index += 1


def _on_disposition(
    cadence: Cadence, contact: ContactProfile, state: EnrollmentState, result: DispositionRecorded, now: datetime
) -> None:
    task, state.open_task = state.open_task, None
    state.disposition = result.disposition
    if task is not None and task.kind == "call" and task.attempt == 1:
        state.step_index += 1  # a call step is done once its (first) task is disposed
    if result.disposition in ENDING_DISPOSITIONS:
        state.status = "completed" if result.disposition in ("won", "lost") else "exited"
        state.end_reason = ENDING_DISPOSITIONS[result.disposition]
        return
    if result.disposition in RETRY_DISPOSITIONS:
        state.attempts += 1
        if task is not None and result.retry is not None:
            _schedule_retry(contact, state, task, result.retry, now)
    if result.disposition == "callback" and task is not None and result.callback_at is not None:
        state.callback_at = _iso(result.callback_at)
        state.pending_tasks.append(OpenTask("callback", task.queue, task.script, task.sla_seconds, task.step_id))
    _check_routes(cadence, contact, state)


def _schedule_retry(
    contact: ContactProfile, state: EnrollmentState, task: OpenTask, rule: RetryRule, now: datetime
) -> None:
    """Queue the next call attempt, spaced and inside calling hours; after the last, nurture resumes."""
    if task.attempt >= rule.max_attempts:
        return
    due: datetime | None = now + timedelta(seconds=max(0, rule.spacing_seconds))
    zone = resolve_timezone(contact.timezone, contact.country)
    if rule.windows and zone is not None:
        due = next_allowed(due, zone, rule.windows, contact.country)
    if due is None:
        return  # the calling hours never open: no retry is possible
    # Without a usable timezone the claim-time check refuses to call at a guessed hour, not the engine.
    state.pending_tasks.append(
        OpenTask(task.kind, task.queue, task.script, task.sla_seconds, task.step_id, task.attempt + 1, _iso(due))
    )


def _on_task_cancelled(state: EnrollmentState, cancelled: TaskCancelled) -> None:
    task, state.open_task = state.open_task, None
    if task is not None and task.kind == "call" and task.attempt == 1:
        state.skipped[task.step_id] = cancelled.reason
        state.step_index += 1


def _next(cadence: Cadence, contact: ContactProfile, state: EnrollmentState, now: datetime) -> Command:
    if state.status != "running":
        return Finish(state.status, state.end_reason or state.status)
    if state.in_flight is not None:
        return Wait(None, "send_in_flight")
    if state.open_task is not None:
        return Wait(None, "task_open")  # automated marketing pauses while an agent owns the contact
    if state.pending_tasks:
        return _open_task(state, now)
    deferred = _parse(state.deferred_until)
    if deferred is not None and now < deferred:
        return Wait(deferred, "deferred")
    while state.step_index < len(cadence.steps):
        step = cadence.steps[state.step_index]
        command = _step_command(cadence, contact, state, step, now)
        if command is not None:
            return command
    state.status, state.end_reason = "completed", "all steps done"
    return Finish("completed", "all steps done")


def _open_task(state: EnrollmentState, now: datetime) -> Command:
    task = state.pending_tasks[0]
    due = _parse(task.due_at)
    if due is not None and now < due:
        return Wait(due, "retry_scheduled")
    callback = _parse(state.callback_at)
    if task.kind == "callback" and callback is not None and now < callback:
        return Wait(callback, "callback_scheduled")
    state.pending_tasks.pop(0)
    state.callback_at = None if task.kind == "callback" else state.callback_at
    state.open_task = task
    return CreateTask(task.kind, task.step_id, task.queue, task.script, task.sla_seconds, task.attempt)


def _step_command(
    cadence: Cadence,
    contact: ContactProfile,
    state: EnrollmentState,
    step: SendStep | WaitStep | CallStep,
    now: datetime,
) -> Command | None:
    """The command for the current step, or None after moving past it (skipped / wait over)."""
    from core.conditions import compile_condition

    view = _View(cadence, contact, state)
    # A running wait keeps going; a deferred send is judged again when it would really go out, so a
    # reminder "if not opened" is not sent to someone who opened during the deferral.
    if state.wait_deadline is None and step.if_ and not compile_condition(step.if_)(view):
        state.skipped[step.id] = "condition_false"
        state.deferred_until, state.deferrals = None, 0
        state.step_index += 1
        return None
    if isinstance(step, WaitStep):
        return _wait_command(state, step, view, now)
    if isinstance(step, CallStep):
        state.open_task = OpenTask("call", step.call, step.script, 0, step.id)
        return CreateTask("call", step.id, step.call, step.script, 0)
    return _send_command(cadence, contact, state, step, now)


def _wait_command(state: EnrollmentState, step: WaitStep, view: _View, now: datetime) -> Command | None:
    from core.conditions import compile_condition

    if state.wait_deadline is None:
        state.wait_deadline = _iso(now + step.delay)
    deadline = _parse(state.wait_deadline)
    assert deadline is not None
    if (step.until and compile_condition(step.until)(view)) or now >= deadline:
        state.wait_deadline = None
        state.step_index += 1
        return None
    return Wait(deadline, "until" if step.until else "wait")


def _send_command(
    cadence: Cadence, contact: ContactProfile, state: EnrollmentState, step: SendStep, now: datetime
) -> Command | None:
    state.deferred_until = None
    if cadence.window is not None:
        zone = resolve_timezone(contact.timezone, contact.country)
        if zone is not None:
            opening = next_allowed(now, zone, [cadence.window.daily()], contact.country)
            if opening is None:
                state.skipped[step.id] = "window_never_opens"
                state.step_index += 1
                return None
            if opening > now:
                state.deferred_until = _iso(opening)
                return Wait(opening, "outside_window")
        # No usable timezone: the deliver activity defers and reports it; we never guess an hour.
    variant = None
    if step.variants:
        variant = state.variants.get(step.id) or assign_variant(step.variants, cadence.id, step.id, contact.contact_id)
        state.variants[step.id] = variant
    state.in_flight = step.id
    return Send(step.id, step.send, step.message, variant, step.fallback)
