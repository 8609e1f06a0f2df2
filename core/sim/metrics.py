"""What a simulation counts, per day: sends per channel, MQLs, SQLs, call tasks, calls, agents needed, cost.

Agents needed (per queue and day) use Erlang C, the standard call-centre staffing formula:
calls worked that day arrive at rate lambda = calls / shift hours; traffic A = lambda * AHT (average handle
time) in Erlangs; the smallest number of agents N > A is chosen such that

    service level = 1 - C(N, A) * exp(-(N - A) * SLA / AHT) >= target     (C = Erlang C wait probability)

and the planned occupancy A / N stays at or below `max_occupancy` (people cannot talk 100% of a shift).
With the long SLAs of outbound follow-up (hours) the occupancy bound usually decides; with short SLAs
Erlang C does. A day without calls needs no agents. This is a planning figure, not a roster.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from core.model import CHANNELS


def erlang_c_agents(
    calls: float, shift_hours: float, handle_minutes: float, sla_minutes: float, target: float, max_occupancy: float
) -> int:
    """Agents needed to work `calls` in a shift (see the module docstring); 0 when there are no calls."""
    if calls <= 0 or shift_hours <= 0 or handle_minutes <= 0:
        return 0
    traffic = calls / (shift_hours * 60) * handle_minutes  # Erlangs
    agents = max(1, math.ceil(traffic / max_occupancy - 1e-9))
    if agents <= traffic:
        agents = math.floor(traffic) + 1
    while agents < 100_000:
        if service_level(agents, traffic, handle_minutes, sla_minutes) >= target:
            return agents
        agents += 1
    return agents


def service_level(agents: int, traffic: float, handle_minutes: float, sla_minutes: float) -> float:
    """Share of tasks answered within the SLA with `agents` agents and `traffic` Erlangs (Erlang C)."""
    if agents <= traffic:
        return 0.0
    blocking = 1.0  # Erlang B by the stable recurrence
    for k in range(1, agents + 1):
        blocking = traffic * blocking / (k + traffic * blocking)
    wait_probability = agents * blocking / (agents - traffic * (1 - blocking))
    return 1.0 - wait_probability * math.exp(-(agents - traffic) * sla_minutes / handle_minutes)


@dataclass
class DayBook:
    """Counters by report day (the calendar date in the report timezone, day 0 = the start date)."""

    start: date
    days: int
    zone: ZoneInfo

    def index(self, at: datetime) -> int | None:
        day = (at.astimezone(self.zone).date() - self.start).days
        return day if 0 <= day < self.days else None

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]


@dataclass
class Tally:
    """Everything counted while the simulation runs (plain numbers; `core.sim.simulation` fills it)."""

    days: int
    sends: dict[str, list[int]] = field(default_factory=dict)
    mql: list[int] = field(default_factory=list)
    sql: list[int] = field(default_factory=list)
    tasks: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    calls: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    talk_minutes: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    won: list[int] = field(default_factory=list)
    revenue: list[float] = field(default_factory=list)
    events: Counter[str] = field(default_factory=Counter)
    dispositions: Counter[str] = field(default_factory=Counter)
    deferred: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    steps: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    message_cost: dict[str, float] = field(default_factory=lambda: dict.fromkeys(CHANNELS, 0.0))
    queue_sla_minutes: dict[str, float] = field(default_factory=dict)
    uncallable: Counter[str] = field(default_factory=Counter)  # tasks whose shift and calling hours never meet

    def __post_init__(self) -> None:
        self.sends = {c: [0] * self.days for c in CHANNELS}
        self.mql = [0] * self.days
        self.sql = [0] * self.days
        self.won = [0] * self.days
        self.revenue = [0.0] * self.days

    def per_queue(self, table: dict[str, list], queue: str, zero: float = 0) -> list:
        if queue not in table:
            table[queue] = [zero] * self.days
        return table[queue]
