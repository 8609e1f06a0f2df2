"""Reads the facts core.reports computes from: a cohort of enrollments and everything that touched it.

The cohort is the enrollments of one cadence (or all) started in [since, until). Rows are streamed as
plain tuples into core.reports' frozen facts; the computation itself stays pure and testable.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from core.reports import EnrollmentFact, EventFact, MessageFact, MilestoneFact, ReportData
from store.models import Enrollment, Event, OutboxMessage
from store.repos import milestones
from store.webhook_models import BusinessEvent

MILESTONE_KINDS = ("mql.created", "sql.handed_off", "task.disposed", "deal.won", "deal.lost", "sla.breached")
YIELD = 2000


def _cohort(column: Any, cadence_id: str | None, since: datetime | None, until: datetime | None) -> Select[Any]:
    query = select(column)
    if cadence_id is not None:
        query = query.where(Enrollment.cadence_id == cadence_id)
    if since is not None:
        query = query.where(Enrollment.started_at >= since)
    if until is not None:
        query = query.where(Enrollment.started_at < until)
    return query


def load_report_data(
    session: Session, *, cadence_id: str | None = None, since: datetime | None = None, until: datetime | None = None
) -> ReportData:
    """The cohort's enrollments, their messages, their contacts' events and the business milestones."""
    ids = _cohort(Enrollment.id, cadence_id, since, until)
    contacts = _cohort(Enrollment.contact_id, cadence_id, since, until)
    enrollments = [
        EnrollmentFact(i, c, k, s, e)
        for i, c, k, s, e in session.execute(
            _cohort(Enrollment.id, cadence_id, since, until).add_columns(
                Enrollment.cadence_id, Enrollment.contact_id, Enrollment.started_at, Enrollment.ended_at
            )
        ).tuples()
    ]
    messages = [
        MessageFact(*row)
        for row in session.execute(
            select(
                OutboxMessage.enrollment_id,
                OutboxMessage.step_id,
                OutboxMessage.channel,
                OutboxMessage.status,
                OutboxMessage.sent_at,
                OutboxMessage.variant,
                OutboxMessage.segments,
                OutboxMessage.message_key,
            )
            .where(OutboxMessage.enrollment_id.in_(ids), OutboxMessage.step_id.is_not(None))
            .execution_options(yield_per=YIELD)
        ).tuples()
    ]
    events = [
        EventFact(contact_id=k, name=n, occurred_at=at, enrollment_id=e, step_id=s, message_key=m)
        for k, n, at, e, s, m in session.execute(
            select(
                Event.contact_id, Event.name, Event.occurred_at, Event.enrollment_id, Event.step_id, Event.message_key
            )
            .where(Event.contact_id.in_(contacts))
            .execution_options(yield_per=YIELD)
        ).tuples()
    ]
    milestones = [
        MilestoneFact(kind, at, enrollment_id=e, contact_id=k, cadence_id=c, payload=p or {})
        for kind, at, e, k, c, p in session.execute(
            select(
                BusinessEvent.kind,
                BusinessEvent.occurred_at,
                BusinessEvent.enrollment_id,
                BusinessEvent.contact_id,
                BusinessEvent.cadence_id,
                BusinessEvent.payload,
            )
            .where(
                BusinessEvent.kind.in_(MILESTONE_KINDS),
                or_(BusinessEvent.enrollment_id.in_(ids), BusinessEvent.contact_id.in_(contacts)),
            )
            .execution_options(yield_per=YIELD)
        ).tuples()
    ]
    milestones = _merge(milestones, _call_floor_milestones(session, ids))
    return ReportData(enrollments, messages, events, milestones)


def _merge(journal: list[MilestoneFact], derived: list[MilestoneFact]) -> list[MilestoneFact]:
    """The journal wins: a derived milestone is dropped when the journal has the same kind for its task."""
    seen = {(m.kind, m.payload.get("task_id")) for m in journal if m.payload.get("task_id")}
    return journal + [m for m in derived if (m.kind, m.payload.get("task_id")) not in seen]


def _call_floor_milestones(session: Session, ids: Select[Any]) -> list[MilestoneFact]:
    """Milestones read from the call floor's own tables (call tasks, dispositions, revenue), so the reports
    are right even where no business event was emitted. Agent time is claim to disposition."""
    from sqlalchemy import inspect

    from store.task_models import CallDisposition, CallTask, RevenueRecord

    if not inspect(session.connection()).has_table(CallTask.__tablename__):
        return []
    found: list[MilestoneFact] = []
    tasks = session.execute(select(CallTask).where(CallTask.enrollment_id.in_(ids))).scalars().all()
    for t in tasks:
        common = {"enrollment_id": t.enrollment_id, "contact_id": t.contact_id, "cadence_id": t.cadence_id}
        stage = milestones.STAGE_OF_KIND.get(t.kind)
        if stage is not None and t.attempt == 1:
            found.append(MilestoneFact(stage, t.created_at, payload=milestones.opened_payload(t), **common))
        if t.sla_breached_at is not None:
            found.append(
                MilestoneFact("sla.breached", t.sla_breached_at, payload=milestones.breach_payload(t), **common)
            )
    by_id = {t.id: t for t in tasks}
    if by_id:
        for d in session.execute(select(CallDisposition).where(CallDisposition.task_id.in_(list(by_id)))).scalars():
            t = by_id[d.task_id]
            common = {"enrollment_id": t.enrollment_id, "contact_id": t.contact_id, "cadence_id": t.cadence_id}
            found.append(
                MilestoneFact("task.disposed", d.recorded_at, payload=milestones.disposition_payload(t, d), **common)
            )
        for r in session.execute(select(RevenueRecord).where(RevenueRecord.task_id.in_(list(by_id)))).scalars():
            payload = milestones.revenue_payload(r)
            kind = "deal.won" if r.outcome == "won" else "deal.lost"
            found.append(
                MilestoneFact(
                    kind,
                    r.recorded_at,
                    enrollment_id=r.enrollment_id,
                    contact_id=r.contact_id,
                    cadence_id=r.cadence_id,
                    payload=payload,
                )
            )
    return found
