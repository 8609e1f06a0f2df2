"""Closed-loop reports, computed purely from facts: from campaign touches to revenue.

Inputs are plain facts read by store.report_queries: enrollments, messages (outbox rows), contact
events, and business milestones (the ``business_events`` journal: mql.created, sql.handed_off,
task.disposed, deal.won, deal.lost, sla.breached). No IO and no clock: ``now`` is a parameter.

Definitions (per enrollment, i.e. one contact's run of one cadence):
- contacted: a message went out (status sent or later, or unknown) or a call was made (task.disposed);
- engaged: a message opened or clicked, a replied event, or a custom event from another system;
- MQL, SQL, won, lost: the milestone was recorded; connected: a call with a disposition other than
  no_answer, busy or voicemail; revenue: the sum of deal.won ``amount``;
- cost: messages (per channel; SMS per segment) + call minutes (``talk_seconds``) + agent time
  (``handle_seconds``, else ``talk_seconds``) at the configured rates; cost per lead = cost / MQLs;
  CAC = cost / won;
- step conversion: of the enrollments sent a step's variant, the share that reached the goal (default:
  MQL) after that send; variants are compared with a two-sided two-proportion z-test against the
  control (the alphabetically first variant).
Events without an enrollment are attributed to the contact's enrollments running when they happened;
a reply or unsubscribe without a step to the enrollment's latest message sent before it.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.engine import RETRY_DISPOSITIONS, event_kind

SENT_STATUSES = frozenset({"sent", "unknown", "delivered", "undelivered", "bounced", "dropped", "opened", "clicked"})
DELIVERED_STATUSES = frozenset({"delivered", "opened", "clicked"})
BOUNCED_STATUSES = frozenset({"bounced", "undelivered", "dropped"})
NOT_ENGAGEMENT = frozenset(
    {"sent", "delivered", "bounced", "unsubscribed", "failed", "deferred", "dropped", "undelivered", "processed"}
)
ENGAGEMENT = frozenset({"opened", "clicked", "replied"})
GOALS = ("mql", "sql", "won", "clicked", "replied")
MILESTONE_OF_GOAL = {"mql": "mql.created", "sql": "sql.handed_off", "won": "deal.won"}
ALPHA = 0.05


# ---- facts ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnrollmentFact:
    id: str
    cadence_id: str
    contact_id: str
    started_at: datetime
    ended_at: datetime | None = None


@dataclass(frozen=True)
class MessageFact:
    enrollment_id: str
    step_id: str
    channel: str
    status: str
    sent_at: datetime | None
    variant: str | None = None
    segments: int | None = None
    message_key: str | None = None


@dataclass(frozen=True)
class EventFact:
    contact_id: str
    name: str
    occurred_at: datetime
    enrollment_id: str | None = None
    step_id: str | None = None
    message_key: str | None = None


@dataclass(frozen=True)
class MilestoneFact:
    kind: str
    occurred_at: datetime
    enrollment_id: str | None = None
    contact_id: str | None = None
    cadence_id: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Costs:
    """Configured unit costs (costs.yaml); all zero means "not configured"."""

    currency: str = "USD"
    per_message: Mapping[str, float] = field(default_factory=dict)  # channel -> cost (SMS: per segment)
    per_call_minute: float = 0.0
    per_agent_hour: float = 0.0

    @property
    def configured(self) -> bool:
        return any(self.per_message.values()) or bool(self.per_call_minute or self.per_agent_hour)


@dataclass(frozen=True)
class ReportData:
    enrollments: list[EnrollmentFact]
    messages: list[MessageFact] = field(default_factory=list)
    events: list[EventFact] = field(default_factory=list)
    milestones: list[MilestoneFact] = field(default_factory=list)


# ---- results -------------------------------------------------------------------------------------
@dataclass
class FunnelRow:
    cadence_id: str
    enrolled: int = 0
    contacted: int = 0
    engaged: int = 0
    mql: int = 0
    connected: int = 0
    sql: int = 0
    won: int = 0
    lost: int = 0
    revenue: float = 0.0
    cost_messages: float = 0.0
    cost_calls: float = 0.0
    cost_agents: float = 0.0
    cost: float = 0.0
    cost_per_lead: float | None = None
    cac: float | None = None
    response_rate: float | None = None  # engaged / contacted
    mql_to_sql: float | None = None
    call_to_sale: float | None = None  # won / connected
    median_days_to_close: float | None = None
    mean_days_to_close: float | None = None


@dataclass
class StepRow:
    cadence_id: str
    step_id: str
    variant: str | None
    channel: str
    sent: int = 0
    delivered: int = 0
    opened: int = 0
    clicked: int = 0
    replied: int = 0
    unsubscribed: int = 0
    bounced: int = 0
    conversions: int = 0
    conversion_rate: float | None = None
    control: str | None = None  # the variant this row is compared with
    z: float | None = None
    p_value: float | None = None
    significant: bool | None = None


@dataclass
class SlaRow:
    cadence_id: str
    stage: str  # mql (escalation to telemarketing) | sql (handoff to telesales)
    queue: str
    tasks: int = 0
    within_sla: int = 0
    breached: int = 0
    pending: int = 0
    share_within_sla: float | None = None
    median_seconds_to_first_call: float | None = None


def ratio(part: float, whole: float) -> float | None:
    return None if not whole else part / whole


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """(z, two-sided p) for H0: the two conversion rates are equal (pooled standard error)."""
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 0.0, 1.0
    z = (x2 / n2 - x1 / n1) / se
    return z, math.erfc(abs(z) / math.sqrt(2))


# ---- attribution ---------------------------------------------------------------------------------
@dataclass
class _Facts:
    """The input regrouped per enrollment, with every event attributed."""

    data: ReportData
    enrollments: dict[str, EnrollmentFact] = field(default_factory=dict)
    sent: dict[str, list[MessageFact]] = field(default_factory=lambda: defaultdict(list))
    events: dict[str, list[EventFact]] = field(default_factory=lambda: defaultdict(list))
    milestones: dict[str, list[MilestoneFact]] = field(default_factory=lambda: defaultdict(list))

    @classmethod
    def of(cls, data: ReportData) -> _Facts:
        facts = cls(data)
        by_contact: dict[str, list[EnrollmentFact]] = defaultdict(list)
        for e in data.enrollments:
            facts.enrollments[e.id] = e
            by_contact[e.contact_id].append(e)
        by_key: dict[str, MessageFact] = {}
        for m in data.messages:
            if m.enrollment_id in facts.enrollments and m.status in SENT_STATUSES:
                facts.sent[m.enrollment_id].append(m)
            if m.message_key:
                by_key[m.message_key] = m
        for ev in data.events:
            for target in _targets(ev, facts.enrollments, by_contact, by_key):
                step = ev.step_id or (by_key[ev.message_key].step_id if ev.message_key in by_key else None)
                facts.events[target].append(EventFact(ev.contact_id, ev.name, ev.occurred_at, target, step))
        for ms in data.milestones:
            target = ms.enrollment_id or (
                f"cadence:{ms.cadence_id}:{ms.contact_id}" if ms.cadence_id and ms.contact_id else None
            )
            if target in facts.enrollments:
                facts.milestones[target].append(ms)
        return facts

    def has(self, enrollment: str, kind: str) -> list[MilestoneFact]:
        return [m for m in self.milestones.get(enrollment, []) if m.kind == kind]


def _targets(
    ev: EventFact,
    enrollments: Mapping[str, EnrollmentFact],
    by_contact: Mapping[str, list[EnrollmentFact]],
    by_key: Mapping[str, MessageFact],
) -> list[str]:
    if ev.enrollment_id in enrollments:
        return [ev.enrollment_id]  # type: ignore[list-item]
    if ev.message_key in by_key and by_key[ev.message_key].enrollment_id in enrollments:  # type: ignore[index]
        return [by_key[ev.message_key].enrollment_id]  # type: ignore[index]
    return [
        e.id
        for e in by_contact.get(ev.contact_id, [])
        if e.started_at <= ev.occurred_at and (e.ended_at is None or ev.occurred_at <= e.ended_at)
    ]


def _engaging(name: str) -> bool:
    kind = event_kind(name)
    return kind in ENGAGEMENT or (kind == name and name not in NOT_ENGAGEMENT)


def _connected(ms: MilestoneFact) -> bool:
    if "connected" in ms.payload:
        return bool(ms.payload["connected"])
    return str(ms.payload.get("disposition", "")) not in RETRY_DISPOSITIONS


def _number(payload: Mapping[str, Any], *names: str) -> float:
    for name in names:
        value = payload.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return 0.0


# ---- funnel --------------------------------------------------------------------------------------
def funnel(data: ReportData, costs: Costs) -> list[FunnelRow]:
    """One row per cadence (sorted by id) from enrollment to revenue, with costs and ratios."""
    facts = _Facts.of(data)
    rows: dict[str, FunnelRow] = {}
    close_days: dict[str, list[float]] = defaultdict(list)
    for e in facts.enrollments.values():
        row = rows.setdefault(e.cadence_id, FunnelRow(e.cadence_id))
        row.enrolled += 1
        sent = facts.sent.get(e.id, [])
        calls = facts.has(e.id, "task.disposed")
        row.contacted += bool(sent or calls)
        row.engaged += any(m.status in ("opened", "clicked") for m in sent) or any(
            _engaging(ev.name) for ev in facts.events.get(e.id, [])
        )
        row.mql += bool(facts.has(e.id, "mql.created"))
        row.connected += any(_connected(c) for c in calls)
        row.sql += bool(facts.has(e.id, "sql.handed_off"))
        won = facts.has(e.id, "deal.won")
        row.won += bool(won)
        row.lost += bool(facts.has(e.id, "deal.lost")) and not won
        row.revenue += sum(_number(w.payload, "amount") for w in won)
        if won:
            first = min(w.occurred_at for w in won)
            close_days[e.cadence_id].append((first - e.started_at).total_seconds() / 86400)
        for m in sent:
            units = (m.segments or 1) if m.channel == "sms" else 1
            row.cost_messages += costs.per_message.get(m.channel, 0.0) * units
        for c in calls:
            talk = _number(c.payload, "talk_seconds")
            row.cost_calls += talk / 60 * costs.per_call_minute
            row.cost_agents += _number(c.payload, "handle_seconds", "talk_seconds") / 3600 * costs.per_agent_hour
    for row in rows.values():
        row.cost = row.cost_messages + row.cost_calls + row.cost_agents
        row.cost_per_lead = ratio(row.cost, row.mql)
        row.cac = ratio(row.cost, row.won)
        row.response_rate = ratio(row.engaged, row.contacted)
        row.mql_to_sql = ratio(row.sql, row.mql)
        row.call_to_sale = ratio(row.won, row.connected)
        days = close_days.get(row.cadence_id)
        if days:
            row.median_days_to_close = statistics.median(days)
            row.mean_days_to_close = statistics.fmean(days)
    return [rows[c] for c in sorted(rows)]


# ---- steps and variants --------------------------------------------------------------------------
def steps(data: ReportData, *, goal: str = "mql", alpha: float = ALPHA) -> list[StepRow]:
    """One row per cadence x step x variant: message outcomes, conversion to ``goal`` and the A/B test."""
    if goal not in GOALS:
        raise ValueError(f"goal must be one of {', '.join(GOALS)}; got {goal!r}")
    facts = _Facts.of(data)
    rows: dict[tuple[str, str, str], StepRow] = {}
    for enrollment_id, messages in facts.sent.items():
        enrollment = facts.enrollments[enrollment_id]
        events = _step_events(facts.events.get(enrollment_id, []), messages)
        for step_id, sent_rows in _by_step(messages).items():
            first = min(sent_rows, key=lambda m: m.sent_at or enrollment.started_at)
            variant = first.variant or ""
            row = rows.setdefault(
                (enrollment.cadence_id, step_id, variant),
                StepRow(enrollment.cadence_id, step_id, first.variant, first.channel),
            )
            statuses = {m.status for m in sent_rows}
            kinds = events.get(step_id, set())
            clicked = "clicked" in statuses or "clicked" in kinds
            opened = clicked or "opened" in statuses or "opened" in kinds
            row.sent += 1
            row.delivered += opened or bool(statuses & DELIVERED_STATUSES) or "delivered" in kinds
            row.opened += opened
            row.clicked += clicked
            row.replied += "replied" in kinds
            row.unsubscribed += "unsubscribed" in kinds
            row.bounced += bool(statuses & BOUNCED_STATUSES) or "bounced" in kinds
            outcome = {"clicked": clicked, "replied": "replied" in kinds}
            row.conversions += _converted(facts, enrollment_id, goal, outcome, first.sent_at or enrollment.started_at)
    ordered = [rows[k] for k in sorted(rows)]
    for row in ordered:
        row.conversion_rate = ratio(row.conversions, row.sent)
    _compare_variants(ordered, alpha)
    return ordered


def _by_step(messages: Iterable[MessageFact]) -> dict[str, list[MessageFact]]:
    grouped: dict[str, list[MessageFact]] = defaultdict(list)
    for m in messages:
        grouped[m.step_id].append(m)
    return grouped


def _step_events(events: list[EventFact], messages: list[MessageFact]) -> dict[str, set[str]]:
    """Event kinds per step; a reply or unsubscribe without a step goes to the latest earlier message."""
    kinds: dict[str, set[str]] = defaultdict(set)
    timed = sorted((m for m in messages if m.sent_at is not None), key=lambda m: m.sent_at)  # type: ignore[arg-type,return-value]
    for ev in events:
        kind = event_kind(ev.name)
        step = ev.step_id
        if step is None and kind in ("replied", "unsubscribed"):
            earlier = [m for m in timed if m.sent_at <= ev.occurred_at]  # type: ignore[operator]
            step = earlier[-1].step_id if earlier else None
        if step is not None:
            kinds[step].add(kind)
    return kinds


def _converted(facts: _Facts, enrollment_id: str, goal: str, outcome: dict[str, bool], sent_at: datetime) -> bool:
    if goal in outcome:
        return outcome[goal]
    return any(m.occurred_at >= sent_at for m in facts.has(enrollment_id, MILESTONE_OF_GOAL[goal]))


def _compare_variants(rows: list[StepRow], alpha: float) -> None:
    groups: dict[tuple[str, str], list[StepRow]] = defaultdict(list)
    for row in rows:
        if row.variant is not None:
            groups[(row.cadence_id, row.step_id)].append(row)
    for variants in groups.values():
        if len(variants) < 2:
            continue
        control = min(variants, key=lambda r: r.variant or "")
        for row in variants:
            if row is control:
                continue
            row.control = control.variant
            row.z, row.p_value = two_proportion_z(control.conversions, control.sent, row.conversions, row.sent)
            row.significant = row.p_value < alpha


# ---- SLA -----------------------------------------------------------------------------------------
STAGES = {"mql.created": "mql", "sql.handed_off": "sql"}


def _same_task(opened: MilestoneFact, other: MilestoneFact, queue: str) -> bool:
    """Whether ``other`` (a call, a breach) concerns the task ``opened`` created: by task id when both
    carry one, else by queue."""
    task, other_task = opened.payload.get("task_id"), other.payload.get("task_id")
    if task and other_task:
        return bool(task == other_task)
    return bool(other.payload.get("queue", queue) == queue)


def sla(data: ReportData, now: datetime) -> list[SlaRow]:
    """Per cadence, stage and queue: tasks followed up (first call) within their SLA, breached, pending."""
    facts = _Facts.of(data)
    rows: dict[tuple[str, str, str], SlaRow] = {}
    waits: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for enrollment_id, milestones in facts.milestones.items():
        cadence = facts.enrollments[enrollment_id].cadence_id
        for opened in milestones:
            stage = STAGES.get(opened.kind)
            if stage is None:
                continue
            queue = str(opened.payload.get("queue") or "-")
            key = (cadence, stage, queue)
            row = rows.setdefault(key, SlaRow(cadence, stage, queue))
            row.tasks += 1
            due = opened.occurred_at.timestamp() + _number(opened.payload, "sla_seconds")
            calls = [
                m.occurred_at
                for m in milestones
                if m.kind == "task.disposed" and m.occurred_at >= opened.occurred_at and _same_task(opened, m, queue)
            ]
            breach = any(
                m.kind == "sla.breached" and m.occurred_at >= opened.occurred_at and _same_task(opened, m, queue)
                for m in milestones
            )
            first = min(calls) if calls else None
            if first is not None:
                waits[key].append((first - opened.occurred_at).total_seconds())
            if not breach and first is not None and first.timestamp() <= due:
                row.within_sla += 1
            elif breach or first is not None or now.timestamp() > due:
                row.breached += 1
            else:
                row.pending += 1
    for key, row in rows.items():
        row.share_within_sla = ratio(row.within_sla, row.within_sla + row.breached)
        if waits.get(key):
            row.median_seconds_to_first_call = statistics.median(waits[key])
    return [rows[k] for k in sorted(rows)]
