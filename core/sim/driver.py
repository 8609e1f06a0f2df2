"""The simulator's driver of `core.engine.advance`: the `contact-cadence` workflow's twin on a virtual clock.

The workflow (workflows/contact_cadence.py) and this driver run the same loop: ask the engine for the
next command, execute it, feed back what happened. Here "executing" is instantaneous and in memory:

- `Send`: the send-time rules the deliver activity applies (core.permission.decide: consent and address,
  cadence window plus legal hours, frequency caps; WhatsApp outside its 24h session needs an approved
  template), first the channel then its fallback, reported back as sent / deferred / skipped;
- `Wait`: a timer in a heap (heapq) of virtual instants; an event or disposition for the contact
  cancels it and wakes the contact, exactly as a signal wakes the workflow's `wait_condition`;
- `CreateTask`: the call desk (core.sim.calls) opens the task or cancels it when nobody may call, as the
  `call-task` child does; then the engine is advanced at once with `TimerFired`, as the workflow does;
- `Finish`: the enrollment is done; later happenings for it are dropped.

Each command is written to the contact's trace with `core.trace.describe`, the function the workflow's
`state` query uses, so a test can compare both drivers line by line. No IO, no wall clock.
"""

from __future__ import annotations

import functools
import heapq
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from core import engine
from core.engine import ContactProfile, EnrollmentState
from core.model import CHANNELS, Cadence, Window
from core.permission import SendFacts, Verdict, decide, local_day_bounds, local_week_bounds, most_telling
from core.sim.calls import CallDesk
from core.timewindow import DailyWindow, resolve_timezone
from core.trace import describe

WHATSAPP_SESSION = timedelta(hours=24)
_START, _TIMER, _HAPPEN = 0, 1, 2


@dataclass(frozen=True)
class SimContact:
    """A simulated contact: where they live and which channels may reach them (consent + usable address)."""

    contact_id: str
    timezone: str | None = None
    country: str | None = None
    reachable: frozenset[str] = frozenset(CHANNELS)
    locale: str | None = None
    attributes: Mapping[str, object] = field(default_factory=dict)


#: Legal hours hook: (channel, country) -> the jurisdiction's windows (e.g. core.jurisdiction's legal_windows).
LegalHours = Callable[[str, str | None], Sequence[DailyWindow]]


@dataclass(frozen=True)
class SendRules:
    """Send-time rules beyond the cadence window, as the deliver activity applies them.

    `legal_hours` gives the jurisdiction's windows for a channel in a country (None: none); they intersect
    with the cadence window, and a deferral they cause says `outside_legal_hours`, as in core.permission.
    `whatsapp_templates`: messages that have an approved WhatsApp template (None: assume every message has one).
    """

    legal_hours: LegalHours | None = None
    whatsapp_templates: frozenset[str] | None = None
    whatsapp_session: timedelta = WHATSAPP_SESSION

    def legal_windows(self, channel: str, country: str | None) -> tuple[DailyWindow, ...]:
        return tuple(self.legal_hours(channel, country)) if self.legal_hours is not None else ()

    @staticmethod
    def table(windows: Mapping[tuple[str, str], Sequence[DailyWindow]]) -> LegalHours:
        """A legal-hours hook from a table: (channel, country) -> windows; country "*" for any other."""

        def lookup(channel: str, country: str | None) -> Sequence[DailyWindow]:
            own = windows.get((channel, (country or "").upper()))
            return own if own is not None else windows.get((channel, "*"), ())

        return lookup


class _Window(Window):
    """The cadence window with its parsed form kept: the engine asks for it at every send."""

    @functools.cached_property
    def _daily(self) -> DailyWindow:
        return super().daily()

    def daily(self) -> DailyWindow:
        return self._daily


def with_cached_window(cadence: Cadence) -> Cadence:
    """The same cadence, whose window parses its days and hours once instead of at every send."""
    if cadence.window is None:
        return cadence
    return cadence.model_copy(update={"window": _Window.model_validate(cadence.window.model_dump())})


class Enrollment:
    """One contact's run of the cadence inside the driver (what the workflow instance holds)."""

    __slots__ = (
        "contact",
        "done",
        "inbox",
        "index",
        "last_inbound",
        "profile",
        "script",
        "sends",
        "state",
        "token",
        "trace",
        "unusable",
        "waiting",
        "withdrawn",
        "zone",
    )

    def __init__(self, index: int, contact: SimContact, traced: bool):
        self.index = index
        self.contact = contact
        self.profile = ContactProfile(
            contact.contact_id,
            country=contact.country,
            timezone=contact.timezone,
            locale=contact.locale,
            attributes=dict(contact.attributes),
        )
        self.zone: ZoneInfo | None = resolve_timezone(contact.timezone, contact.country)
        self.state: EnrollmentState = EnrollmentState()
        self.trace: list[str] | None = [] if traced else None
        self.script: list[tuple[datetime, engine.Happening]] | None = [] if traced else None
        self.inbox: deque[engine.Happening] = deque()
        self.waiting: engine.Wait | None = None
        self.token = 0
        self.done = False
        self.sends: list[datetime] = []
        self.withdrawn: set[str] = set()  # consent withdrawn during the run (unsubscribe, do_not_call)
        self.unusable: set[str] = set()  # address became unusable (bounce)
        self.last_inbound: datetime | None = None


class Observer:
    """What a driver reports while it runs; the simulation's engagement model and metrics subclass it."""

    def command(self, enrollment: Enrollment, command: engine.Command, now: datetime) -> None:
        """Every command the engine returned (after it was traced)."""

    def sent(self, enrollment: Enrollment, command: engine.Send, channel: str, now: datetime) -> None:
        """A message went out on `channel` (the step's channel or its fallback)."""

    def not_sent(self, enrollment: Enrollment, report: engine.SendReported, now: datetime) -> None:
        """A send was deferred or skipped, with the reason."""

    def task_opened(self, enrollment: Enrollment, command: engine.CreateTask, now: datetime) -> None:
        """A call task is open for agents (it was not cancelled at opening)."""

    def happened(self, enrollment: Enrollment, happening: engine.Happening, now: datetime) -> None:
        """An external happening reached the contact (also after the enrollment ended)."""


class Driver:
    """Runs many enrollments of one cadence on one virtual clock."""

    def __init__(
        self,
        cadence: Cadence,
        rules: SendRules | None = None,
        observer: Observer | None = None,
        *,
        desk: CallDesk | None = None,
        traced: Callable[[str], bool] | bool = True,
    ):
        self.cadence = with_cached_window(cadence)
        self.rules = rules or SendRules()
        self.observer = observer or Observer()
        self.desk = desk or CallDesk()
        self._traced = traced
        self._heap: list[tuple[datetime, int, int, int, object]] = []
        self._seq = itertools.count()
        self.enrollments: list[Enrollment] = []
        self._by_id: dict[str, Enrollment] = {}
        self.advances = 0
        self.now: datetime | None = None
        self._window = (cadence.window.daily(),) if cadence.window else ()
        caps = cadence.caps
        self._per_day = caps.per_day if caps else None
        self._per_week = caps.per_week if caps else None
        self._legal: dict[tuple[str, str | None], tuple[DailyWindow, ...]] = {}

    # -- feeding the clock -------------------------------------------------------------------------
    def enroll(self, contact: SimContact, at: datetime) -> Enrollment:
        """Start an enrollment at `at` (the workflow's start)."""
        if contact.contact_id in self._by_id:
            raise ValueError(f"contact '{contact.contact_id}' is already enrolled")
        traced = self._traced(contact.contact_id) if callable(self._traced) else self._traced
        enrollment = Enrollment(len(self.enrollments), contact, traced)
        self.enrollments.append(enrollment)
        self._by_id[contact.contact_id] = enrollment
        self._push(_aware(at), _START, enrollment.index, None)
        return enrollment

    def schedule(self, contact_id: str, at: datetime, happening: engine.Happening) -> None:
        """An external happening (event, disposition, stop) for a contact at a virtual instant."""
        enrollment = self._by_id[contact_id]
        self._push(_aware(at), _HAPPEN, enrollment.index, happening)

    def enrollment(self, contact_id: str) -> Enrollment:
        return self._by_id[contact_id]

    def next_instant(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None

    def _push(self, at: datetime, kind: int, index: int, payload: object) -> None:
        heapq.heappush(self._heap, (at, next(self._seq), kind, index, payload))

    # -- running -----------------------------------------------------------------------------------
    def run(self, until: datetime | None = None) -> None:
        """Process everything scheduled before `until` (everything when None), in time order."""
        heap = self._heap
        while heap:
            if until is not None and heap[0][0] >= until:
                break
            at, _, kind, index, payload = heapq.heappop(heap)
            enrollment = self.enrollments[index]
            self.now = at
            if kind == _HAPPEN:
                assert payload is not None
                self.observer.happened(enrollment, payload, at)
                if enrollment.done:
                    continue
                if enrollment.script is not None:
                    enrollment.script.append((at, payload))  # what a replay must signal, in order
                if enrollment.waiting is not None:
                    enrollment.waiting = None
                    enrollment.token += 1  # the pending timer is void: the signal woke the contact
                    self._step(enrollment, payload, at)
                else:
                    enrollment.inbox.append(payload)  # not started yet: the workflow's pending events
            elif enrollment.done:
                continue
            elif kind == _START:
                self._step(enrollment, engine.Started(), at)
            elif payload == enrollment.token and enrollment.waiting is not None:
                enrollment.waiting = None
                self._step(enrollment, engine.TimerFired(), at)

    def _step(self, e: Enrollment, happened: engine.Happening, now: datetime) -> None:
        """The workflow's run loop, from one happening until the contact waits or finishes."""
        cadence, observer = self.cadence, self.observer
        while True:
            e.state, command = engine.advance(cadence, e.profile, e.state, happened, now)
            self.advances += 1
            if e.trace is not None:
                e.trace.append(describe(command, now))
            observer.command(e, command, now)
            if isinstance(command, engine.Finish):
                e.done = True
                return
            if isinstance(command, engine.Send):
                happened = self._deliver(e, command, now)
                continue
            if isinstance(command, engine.CreateTask):
                cancelled = self.desk.open(e, command, cadence.purpose, now)
                if cancelled is None:
                    observer.task_opened(e, command, now)
                else:
                    self._push(now, _HAPPEN, e.index, cancelled)  # the child reports back right away
                happened = engine.TimerFired()
                continue
            if e.inbox:
                happened = e.inbox.popleft()
                continue
            if command.until is None:
                e.waiting = command
                return
            if command.until <= now:
                happened = engine.TimerFired()
                continue
            e.waiting = command
            e.token += 1
            self._push(command.until, _TIMER, e.index, e.token)
            return

    # -- the deliver activity's rules ----------------------------------------------------------------
    def _deliver(self, e: Enrollment, command: engine.Send, now: datetime) -> engine.SendReported:
        verdicts: list[tuple[str, Verdict]] = []
        for channel in filter(None, (command.channel, command.fallback)):
            verdict = self._verdict(e, channel, now)
            if verdict.allowed and channel == "whatsapp" and not self._whatsapp_possible(e, command.message, now):
                verdict = Verdict(
                    "skip",
                    "whatsapp_no_template",
                    "outside the 24h WhatsApp session and the message has no approved template (whatsapp.yaml)",
                )
            if verdict.allowed:
                e.sends.append(now)
                self.observer.sent(e, command, channel, now)
                return engine.SendReported(command.step_id, "sent", channel)
            verdicts.append((channel, verdict))
        channel, verdict = most_telling(verdicts)
        outcome = "deferred" if verdict.outcome == "defer" else "skipped"
        report = engine.SendReported(command.step_id, outcome, channel, verdict.until, verdict.reason)
        self.observer.not_sent(e, report, now)
        return report

    def legal_windows(self, channel: str, country: str | None) -> tuple[DailyWindow, ...]:
        """The legal hours of the channel in the contact's country (cached: the hook may be slow)."""
        key = (channel, country)
        found = self._legal.get(key)
        if found is None:
            found = self._legal[key] = self.rules.legal_windows(channel, country)
        return found

    def _verdict(self, e: Enrollment, channel: str, now: datetime) -> Verdict:
        contact = e.contact
        has_address = channel in contact.reachable
        consent = "withdrawn" if channel in e.withdrawn else ("granted" if has_address else None)
        sent_today = sent_week = 0
        zone = e.zone
        if zone is not None and (self._per_day or self._per_week) and e.sends:
            sent_today = _count(e.sends, *local_day_bounds(now, zone))
            sent_week = _count(e.sends, *local_week_bounds(now, zone))
        return decide(
            SendFacts(
                channel=channel,
                purpose=self.cadence.purpose,
                address=contact.contact_id if has_address else None,
                address_unusable="bounced" if channel in e.unusable else None,
                consent_status=consent,
                suppressed=None,
                now=now,
                zone=zone,
                country=contact.country,
                windows=self._window,
                per_day=self._per_day,
                per_week=self._per_week,
                sent_today=sent_today,
                sent_this_week=sent_week,
                legal_windows=self.legal_windows(channel, contact.country),
            )
        )

    def _whatsapp_possible(self, e: Enrollment, message: str, now: datetime) -> bool:
        if e.last_inbound is not None and now - e.last_inbound < self.rules.whatsapp_session:
            return True  # free-form inside the customer-service window
        templates = self.rules.whatsapp_templates
        return templates is None or message in templates


def _count(instants: Iterable[datetime], start: datetime, end: datetime) -> int:
    return sum(1 for t in instants if start <= t < end)


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"virtual instant {at.isoformat()} must be timezone-aware")
    return at.astimezone(UTC)
