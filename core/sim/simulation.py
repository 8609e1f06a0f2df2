"""`omnireach simulate`: many contacts through one cadence on a virtual clock, with an engagement model.

The driver (core.sim.driver) runs the real engine and the deliver activity's send-time rules; this module
is the world around it: contacts react to what they receive (opens, clicks, replies, unsubscribes,
custom events such as `webinar.attended`, per core.sim.engagement), agents work call tasks and record
dispositions, and everything that happens is counted per day (core.sim.metrics). Same seed, same
settings, same numbers.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from core import engine
from core.durations import parse_duration
from core.model import Cadence
from core.queues import QueueBook
from core.sim.calls import CallDesk
from core.sim.driver import Driver, Enrollment, Observer, SendRules, SimContact
from core.sim.engagement import EngagementModel
from core.sim.metrics import DayBook, Tally, erlang_c_agents
from core.sim.population import enrollment_times, make_population
from core.timewindow import next_allowed

MINUTE = timedelta(minutes=1)
UNANSWERED_CALL = timedelta(minutes=1)  # ringing plus a short wrap-up
PROGRESS_STEP = timedelta(hours=6)


@dataclass(frozen=True)
class SimulationSettings:
    contacts: int
    days: int
    seed: int
    start: datetime
    timezones: Sequence[tuple[str, float]]
    ramp: timedelta = timedelta(0)
    report_timezone: str | None = None  # default: the first of `timezones`
    rules: SendRules = field(default_factory=SendRules)
    sms_segments: Mapping[str, int] = field(default_factory=dict)  # message -> SMS segments (default 1)
    traced: int = 0  # keep the action trace and the script of this many contacts (the first ones)
    population: Sequence[SimContact] | None = None  # the contacts to use instead of generated ones
    queues: QueueBook | None = None  # queues.yaml: calling hours and retry policy (default: the shipped book)
    enroll_at: Mapping[str, datetime] = field(default_factory=dict)  # contact id -> its own enrollment instant

    @property
    def end(self) -> datetime:
        return self.start + timedelta(days=self.days)


@dataclass
class SimulationResult:
    settings: SimulationSettings
    model: EngagementModel
    cadence_id: str
    tally: Tally
    book: DayBook
    agents: dict[str, list[int]]
    outcome: dict[str, int]
    enrolled: int
    advances: int
    elapsed_seconds: float
    traces: dict[str, list[str]]
    scripts: dict[str, list[tuple[datetime, engine.Happening]]]

    def cost(self) -> dict[str, float]:
        tally, model = self.tally, self.model
        costs = {channel: round(value, 4) for channel, value in tally.message_cost.items()}
        talk = sum(sum(minutes) for minutes in tally.talk_minutes.values())
        costs["voice"] = round(costs.get("voice", 0.0) + talk * model.voice_cost_per_minute, 4)
        shift = model.agents.shift.hours_per_day
        costs["agents"] = round(
            sum(sum(per_day) for per_day in self.agents.values()) * shift * model.agents.hourly_cost, 2
        )
        costs["total"] = round(sum(costs.values()), 2)
        return costs

    def to_json(self) -> dict[str, Any]:
        """The report `--out DIR/simulation.json` holds (per-day lists are aligned with `dates`)."""
        tally, s = self.tally, self.settings
        costs = self.cost()
        sql_total = sum(tally.sql)
        return {
            "cadence": self.cadence_id,
            "contacts": s.contacts,
            "enrolled": self.enrolled,
            "days": s.days,
            "seed": s.seed,
            "start": s.start.isoformat(),
            "report_timezone": str(self.book.zone),
            "timezones": {zone: weight for zone, weight in s.timezones},
            "currency": self.model.currency,
            "dates": [d.isoformat() for d in self.book.dates()],
            "sends": {channel: counts for channel, counts in tally.sends.items() if channel != "voice" or any(counts)},
            "mql": tally.mql,
            "sql": tally.sql,
            "call_tasks": dict(tally.tasks),
            "calls": dict(tally.calls),
            "agents_needed": self.agents,
            "won": tally.won,
            "revenue": [round(v, 2) for v in tally.revenue],
            "totals": {
                "sends": {channel: sum(counts) for channel, counts in tally.sends.items()},
                "mql": sum(tally.mql),
                "sql": sql_total,
                "call_tasks": {q: sum(v) for q, v in tally.tasks.items()},
                "calls": {q: sum(v) for q, v in tally.calls.items()},
                "won": sum(tally.won),
                "revenue": round(sum(tally.revenue), 2),
                "cost": costs,
                "cost_per_sql": round(costs["total"] / sql_total, 2) if sql_total else None,
            },
            "events": dict(sorted(tally.events.items())),
            "dispositions": dict(sorted(tally.dispositions.items())),
            "deferred": dict(sorted(tally.deferred.items())),
            "skipped": dict(sorted(tally.skipped.items())),
            "uncallable_tasks": dict(sorted(tally.uncallable.items())),
            "steps": {step: dict(sorted(counts.items())) for step, counts in tally.steps.items()},
            "outcome": dict(sorted(self.outcome.items())),
            "performance": {
                "engine_advances": self.advances,
                "seconds": round(self.elapsed_seconds, 3),
                "contacts_per_second": round(self.enrolled / self.elapsed_seconds, 1) if self.elapsed_seconds else None,
            },
            "assumptions": {
                "agents": "Erlang C per queue and day over the calls worked that day; see core/sim/metrics.py",
                "delays": "exponential with the model's mean, rounded up to whole minutes",
                "caps": "counted over this cadence's sends only (a real contact may be in other cadences too)",
                "permission": "consent and addresses per the model's audience; no suppression lists; Do-Not-Call "
                "registry copies assumed fresh; legal hours and queues.yaml as configured",
            },
        }


class _World(Observer):
    """Contacts and agents reacting to what the driver does, and the tally of it all."""

    def __init__(self, cadence: Cadence, model: EngagementModel, settings: SimulationSettings, book: DayBook):
        self.cadence = cadence
        self.model = model
        self.settings = settings
        self.book = book
        self.tally = Tally(book.days)
        self._rngs: dict[int, random.Random] = {}
        self.driver: Driver | None = None
        self.end = settings.end
        self._followers: dict[str, list] = defaultdict(list)
        for event in model.events:
            self._followers[event.after].append(event)
        self._planned: dict[int, set[str]] = defaultdict(set)
        # No agents.timezone: agents work the shift in each contact's local time (a follow-the-sun team).
        self.agent_zone = ZoneInfo(model.agents.timezone) if model.agents.timezone else None
        self.shift = model.agents.shift.window()
        self._delays: dict[str, float] = {}

    # -- helpers -------------------------------------------------------------------------------------
    def rng(self, e: Enrollment) -> random.Random:
        """Each contact draws from its own stream (seed and contact id): its story is the same whether it is
        simulated alone or among ten thousand, which is what lets a sample be replayed on Temporal."""
        found = self._rngs.get(e.index)
        if found is None:
            found = self._rngs[e.index] = random.Random(f"engagement:{self.settings.seed}:{e.contact.contact_id}")
        return found

    def _delay(self, e: Enrollment, mean: str) -> timedelta:
        seconds = self._delays.get(mean)
        if seconds is None:
            seconds = self._delays[mean] = parse_duration(mean).total_seconds()
        drawn = self.rng(e).expovariate(1.0 / seconds) if seconds > 0 else 0.0
        return timedelta(minutes=max(1, math.ceil(drawn / 60)))

    def _schedule(self, e: Enrollment, at: datetime, happening: engine.Happening) -> None:
        if at < self.end:
            assert self.driver is not None
            self.driver.schedule(e.contact.contact_id, at, happening)

    def _event(self, e: Enrollment, at: datetime, name: str, step_id: str | None, key: str) -> None:
        self._schedule(e, at, engine.EventArrived(name, step_id, key))

    def _stage(self, e: Enrollment, stage: str, at: datetime) -> None:
        """Custom events that follow a stage or another custom event, planned once per contact."""
        for event in self._followers.get(stage, ()):
            planned = self._planned[e.index]
            if event.once and event.name in planned:
                continue
            if self.rng(e).random() >= event.probability:
                continue
            planned.add(event.name)
            when = at + self._delay(e, event.delay)
            key = event.name if event.once else f"{event.name}@{when.isoformat()}"
            self._event(e, when, event.name, None, key)
            self._stage(e, event.name, when)

    # -- what the driver reports ---------------------------------------------------------------------
    def sent(self, e: Enrollment, command: engine.Send, channel: str, now: datetime) -> None:
        tally = self.tally
        day = self.book.index(now)
        if day is not None:
            tally.sends[channel][day] += 1
        tally.steps[command.step_id][f"sent_{channel}"] += 1
        units = self.settings.sms_segments.get(command.message, 1) if channel == "sms" else 1
        tally.message_cost[channel] += self.model.channel(channel).cost * units
        self._react(e, command.step_id, channel, now)

    def _react(self, e: Enrollment, step_id: str, channel: str, now: datetime) -> None:
        m, rng = self.model.channel(channel), self.rng(e)
        arrived = now + MINUTE
        if rng.random() >= m.delivered:
            self._event(e, arrived, f"{channel}.bounced", step_id, f"{step_id}:bounced")
            return
        self._event(e, arrived, f"{channel}.delivered", step_id, f"{step_id}:delivered")
        self._stage(e, "delivered", arrived)
        if rng.random() < m.open.probability:
            opened = arrived + self._delay(e, m.open.delay)
            if m.open.tracked:
                self._event(e, opened, f"{channel}.opened", step_id, f"{step_id}:opened")
            self._stage(e, "opened", opened)
            if rng.random() < m.click.probability:
                clicked = opened + self._delay(e, m.click.delay)
                self._event(e, clicked, f"{channel}.clicked", step_id, f"{step_id}:clicked")
                self._stage(e, "clicked", clicked)
        if rng.random() < m.reply.probability:
            replied = arrived + self._delay(e, m.reply.delay)
            self._event(e, replied, f"{channel}.replied", step_id, f"{step_id}:replied")
            self._stage(e, "replied", replied)
        if rng.random() < m.unsubscribe.probability:
            self._event(
                e,
                arrived + self._delay(e, m.unsubscribe.delay),
                f"{channel}.unsubscribed",
                step_id,
                f"{step_id}:unsubscribed",
            )

    def not_sent(self, e: Enrollment, report: engine.SendReported, now: datetime) -> None:
        counter = self.tally.deferred if report.outcome == "deferred" else self.tally.skipped
        counter[report.reason or report.outcome] += 1
        self.tally.steps[report.step_id][f"{report.outcome}:{report.reason}"] += 1

    def command(self, e: Enrollment, command: engine.Command, now: datetime) -> None:
        if not isinstance(command, engine.CreateTask):
            return
        tally, day = self.tally, self.book.index(now)
        if day is not None:
            tally.per_queue(tally.tasks, command.queue)[day] += 1
            if command.kind == "escalate":
                tally.mql[day] += 1
            elif command.kind == "handoff":
                tally.sql[day] += 1

    def happened(self, e: Enrollment, happening: engine.Happening, now: datetime) -> None:
        tally = self.tally
        if isinstance(happening, engine.EventArrived):
            tally.events[happening.name] += 1
            channel, _, kind = happening.name.partition(".")
            if kind == "unsubscribed":
                e.withdrawn.add(channel)  # the unsubscribe withdraws consent on that channel at once
            elif kind == "bounced":
                e.unusable.add(channel)
            elif kind == "replied":
                e.last_inbound = now  # opens WhatsApp's 24h customer-service window
        elif isinstance(happening, engine.DispositionRecorded):
            tally.dispositions[happening.disposition] += 1
            day = self.book.index(now)
            if happening.disposition == "won" and day is not None:
                tally.won[day] += 1
                tally.revenue[day] += self._deal_value(e)
            if happening.disposition == "do_not_call":
                e.withdrawn.add("voice")

    def _deal_value(self, e: Enrollment) -> float:
        task = e.state.open_task
        return self.model.queue(task.queue).deal_value if task else 0.0

    # -- call tasks ----------------------------------------------------------------------------------
    def task_opened(self, e: Enrollment, command: engine.CreateTask, now: datetime) -> None:
        """An agent calls after the pickup delay (callbacks and retries: at their time), inside hours."""
        tally, book = self.tally, self.book
        queue = self.model.queue(command.queue)
        sla = (
            command.sla_seconds / 60 or parse_duration(queue.sla or self.model.agents.default_sla).total_seconds() / 60
        )
        tally.queue_sla_minutes[command.queue] = min(sla, tally.queue_sla_minutes.get(command.queue, sla))
        scheduled = command.kind == "callback" or command.attempt > 1
        wanted = now if scheduled else now + self._delay(e, queue.pickup)
        call_at = self._calling_time(e, command.queue, wanted)
        if call_at is None:
            tally.uncallable[command.queue] += 1  # the shift and the calling hours never overlap
            return
        if call_at >= self.end:
            return  # still waiting for an agent when the simulation ends
        rng = self.rng(e)
        answered = rng.random() < queue.answer
        choices = queue.outcomes if answered else queue.unanswered
        disposition = rng.choices(list(choices), list(choices.values()))[0]
        handled = parse_duration(queue.handle_time) if answered else UNANSWERED_CALL
        done = call_at + handled
        callback_at = done + self._delay(e, queue.callback_delay) if disposition == "callback" else None
        call_day = book.index(call_at)
        if call_day is not None:
            tally.per_queue(tally.calls, command.queue)[call_day] += 1
            tally.per_queue(tally.talk_minutes, command.queue, 0.0)[call_day] += handled.total_seconds() / 60
        assert self.driver is not None
        self._schedule(e, done, self.driver.desk.disposed(command.queue, disposition, callback_at))

    def _calling_time(self, e: Enrollment, queue: str, wanted: datetime) -> datetime | None:
        """The first instant inside the agents' shift and the contact's calling hours (queue and legal)."""
        assert self.driver is not None
        legal = [*self.driver.desk.calling_hours(queue), *self.driver.legal_windows("voice", e.contact.country)]
        at: datetime | None = wanted
        for _ in range(14):
            assert at is not None
            in_shift = next_allowed(at, self.agent_zone or e.zone or ZoneInfo("UTC"), [self.shift], None)
            if in_shift is None:
                return None
            if not legal or e.zone is None:
                return in_shift
            callable_at = next_allowed(in_shift, e.zone, legal, e.contact.country)
            if callable_at is None or callable_at == in_shift:
                return callable_at
            at = callable_at
        return None

    def agents_needed(self) -> dict[str, list[int]]:
        agents = self.model.agents
        hours = agents.shift.hours_per_day
        result: dict[str, list[int]] = {}
        for queue, calls in self.tally.calls.items():
            talk = self.tally.talk_minutes.get(queue, [0.0] * len(calls))
            sla = self.tally.queue_sla_minutes.get(queue, parse_duration(agents.default_sla).total_seconds() / 60)
            result[queue] = [
                erlang_c_agents(n, hours, talk[i] / n if n else 0, sla, agents.service_level, agents.max_occupancy)
                for i, n in enumerate(calls)
            ]
        return result


def simulate(
    cadence: Cadence,
    model: EngagementModel,
    settings: SimulationSettings,
    progress: Callable[[float], None] | None = None,
) -> SimulationResult:
    """Run the whole simulation; `progress(fraction)` is called as the virtual clock advances."""
    began = time.perf_counter()
    report_zone = ZoneInfo(settings.report_timezone or settings.timezones[0][0])
    book = DayBook(settings.start.astimezone(report_zone).date(), settings.days, report_zone)
    contacts = (
        list(settings.population)
        if settings.population is not None
        else make_population(settings.contacts, settings.timezones, seed=settings.seed, audience=model.audience)
    )
    traced = {c.contact_id for c in contacts[: settings.traced]}
    world = _World(cadence, model, settings, book)
    driver = Driver(
        cadence, settings.rules, world, desk=CallDesk(settings.queues), traced=lambda contact_id: contact_id in traced
    )
    world.driver = driver
    for contact, at in zip(contacts, enrollment_times(len(contacts), settings.start, settings.ramp), strict=True):
        driver.enroll(contact, settings.enroll_at.get(contact.contact_id, at))
    clock, end = settings.start, settings.end
    while clock < end:
        clock = min(clock + PROGRESS_STEP, end)
        driver.run(until=clock)
        if progress is not None:
            progress((clock - settings.start) / (end - settings.start))
    outcome: Counter[str] = Counter()
    for enrollment in driver.enrollments:
        if enrollment.done:
            outcome[f"{enrollment.state.status}: {enrollment.state.end_reason}"] += 1
        elif enrollment.waiting is not None:
            outcome[f"running: {enrollment.waiting.reason}"] += 1
        else:
            outcome["not started"] += 1
    return SimulationResult(
        settings=settings,
        model=model,
        cadence_id=cadence.id,
        tally=world.tally,
        book=book,
        agents=world.agents_needed(),
        outcome=dict(outcome),
        enrolled=len(contacts),
        advances=driver.advances,
        elapsed_seconds=time.perf_counter() - began,
        traces={e.contact.contact_id: list(e.trace) for e in driver.enrollments if e.trace is not None},
        scripts={e.contact.contact_id: list(e.script) for e in driver.enrollments if e.script is not None},
    )
