"""Reports as JSON: the funnel per cadence, steps and A/B variants, and SLA follow-up (core.reports)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Developer, ServicesDep
from api.problems import ProblemError, problem_responses
from api.schemas import ID_PATTERN
from core import reports
from store.report_queries import load_report_data

router = APIRouter(prefix="/v1/reports", tags=["reports"])
CadenceFilter = Annotated[
    str | None, Query(pattern=ID_PATTERN, description="Only this cadence (default: every cadence).")
]
_INSTANT = {"format": "date-time", "examples": ["2026-01-01T00:00:00Z"]}
Since = Annotated[
    str | None,
    Query(
        description="Cohort: enrollments started at or after this instant (ISO 8601 with offset).",
        json_schema_extra=_INSTANT,
    ),
]
Until = Annotated[
    str | None,
    Query(
        description="Cohort: enrollments started before this instant (ISO 8601 with offset).",
        json_schema_extra=_INSTANT,
    ),
]
ERRORS = problem_responses(401, 403, 422, 500)


class _Row(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class FunnelRowOut(_Row):
    cadence_id: str
    enrolled: int
    contacted: int = Field(description="A message went out or a call was made.")
    engaged: int = Field(description="Opened, clicked, replied, or a custom event from another system.")
    mql: int
    connected: int = Field(description="A call reached the person (not no_answer, busy or voicemail).")
    sql: int
    won: int
    lost: int
    revenue: float = Field(description="Sum of deal.won amounts.")
    cost_messages: float
    cost_calls: float
    cost_agents: float
    cost: float
    cost_per_lead: float | None = Field(description="cost / MQL; null without MQLs.")
    cac: float | None = Field(description="Customer acquisition cost: cost / won; null without wins.")
    response_rate: float | None = Field(description="engaged / contacted.")
    mql_to_sql: float | None
    call_to_sale: float | None = Field(description="won / connected.")
    median_days_to_close: float | None
    mean_days_to_close: float | None


class FunnelReportOut(BaseModel):
    currency: str = Field(examples=["USD"])
    costs_configured: bool = Field(description="False: no costs file, every cost is 0.")
    since: datetime | None
    until: datetime | None
    cadences: list[FunnelRowOut]


class StepRowOut(_Row):
    cadence_id: str
    step_id: str
    variant: str | None
    channel: str
    sent: int
    delivered: int
    opened: int
    clicked: int
    replied: int
    unsubscribed: int
    bounced: int
    conversions: int = Field(description="Enrollments sent this step and variant that reached the goal after it.")
    conversion_rate: float | None
    control: str | None = Field(description="The variant this row is tested against (null for the control).")
    z: float | None
    p_value: float | None = Field(description="Two-sided two-proportion z-test against the control.")
    significant: bool | None = Field(description="p_value < alpha.")


class StepsReportOut(BaseModel):
    goal: str
    alpha: float
    since: datetime | None
    until: datetime | None
    steps: list[StepRowOut]


class SlaRowOut(_Row):
    cadence_id: str
    stage: Literal["mql", "sql"] = Field(description="mql: escalation to telemarketing; sql: handoff to telesales.")
    queue: str
    tasks: int
    within_sla: int = Field(description="First call at or before the deadline, no breach recorded.")
    breached: int
    pending: int = Field(description="Not called yet, deadline still ahead.")
    share_within_sla: float | None
    median_seconds_to_first_call: float | None


class SlaReportOut(BaseModel):
    as_of: datetime
    since: datetime | None
    until: datetime | None
    rows: list[SlaRowOut]


def _instant(field: str, value: str | None) -> datetime | None:
    """Strict ISO 8601 with a UTC offset (pydantic would also take a bare number as a Unix time)."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None or "T" not in value.upper():
        raise ProblemError.invalid(field, "must be an ISO 8601 date-time with an offset, e.g. 2026-01-01T00:00:00Z")
    return parsed


def _period(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    start, end = _instant("since", since), _instant("until", until)
    if start is not None and end is not None and end <= start:
        raise ProblemError.invalid("until", "must be later than since")
    return start, end


@router.get("/funnel", response_model=FunnelReportOut, summary="Funnel per cadence, to revenue", responses=ERRORS)
async def funnel(
    services: ServicesDep, _: Developer, cadence_id: CadenceFilter = None, since: Since = None, until: Until = None
) -> FunnelReportOut:
    """Enrolled, contacted, engaged, MQL, connected, SQL, won and revenue per cadence, with cost per lead,
    CAC, response rate, MQL-to-SQL, call-to-sale and time to close (costs from the costs file)."""
    start, end = _period(since, until)
    data = await services.db.run(lambda s: load_report_data(s, cadence_id=cadence_id, since=start, until=end))
    costs = services.costs
    rows = [FunnelRowOut.model_validate(r) for r in reports.funnel(data, costs)]
    return FunnelReportOut(
        currency=costs.currency, costs_configured=costs.configured, since=start, until=end, cadences=rows
    )


@router.get("/steps", response_model=StepsReportOut, summary="Per step and A/B variant", responses=ERRORS)
async def steps(
    services: ServicesDep,
    _: Developer,
    cadence_id: CadenceFilter = None,
    since: Since = None,
    until: Until = None,
    goal: Annotated[
        Literal["mql", "sql", "won", "clicked", "replied"], Query(description="What counts as a conversion.")
    ] = "mql",
    alpha: Annotated[float, Query(gt=0, lt=1, description="Significance level of the A/B test.")] = reports.ALPHA,
) -> StepsReportOut:
    """Sent, delivered, opened, clicked, replied, unsubscribed, bounced and conversions per step and
    variant; variants are compared with the control by a two-proportion z-test."""
    start, end = _period(since, until)
    data = await services.db.run(lambda s: load_report_data(s, cadence_id=cadence_id, since=start, until=end))
    rows = [StepRowOut.model_validate(r) for r in reports.steps(data, goal=goal, alpha=alpha)]
    return StepsReportOut(goal=goal, alpha=alpha, since=start, until=end, steps=rows)


@router.get("/sla", response_model=SlaReportOut, summary="SLA follow-up of MQLs and SQLs", responses=ERRORS)
async def sla(
    services: ServicesDep, _: Developer, cadence_id: CadenceFilter = None, since: Since = None, until: Until = None
) -> SlaReportOut:
    """Share of MQLs (and SQL handoffs) called within their SLA, breaches, pending ones, and the median
    time from MQL to first call."""
    start, end = _period(since, until)
    data = await services.db.run(lambda s: load_report_data(s, cadence_id=cadence_id, since=start, until=end))
    now = datetime.now(UTC)
    rows = [SlaRowOut.model_validate(r) for r in reports.sla(data, now)]
    return SlaReportOut(as_of=now, since=start, until=end, rows=rows)
