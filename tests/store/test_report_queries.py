"""Report facts read from the store: the journal and the call floor's own tables, each fact once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from core.reports import Costs, funnel, sla
from store.report_queries import load_report_data
from store.repos.enrollments import record_enrollment_started
from store.repos.outbox import claim_outbox, mark_outbox_sent
from store.repos.webhooks import record_business_event
from store.task_models import CallDisposition, CallQueue, CallTask, RevenueRecord
from tests.store.conftest import MigratedDatabase

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_funnel_and_sla_from_tasks_dispositions_revenue_and_the_journal(db: MigratedDatabase, contact_id: str) -> None:
    cadence = f"rq-{uuid.uuid4().hex[:6]}"
    enrollment = f"cadence:{cadence}:{contact_id}"
    queue = f"tm-{uuid.uuid4().hex[:6]}"
    with db.session_factory.begin() as session:
        record_enrollment_started(session, enrollment, cadence, contact_id, None, started_at=T0)
        claim_outbox(
            session,
            message_key=f"{enrollment}/a/1",
            enrollment_id=enrollment,
            contact_id=contact_id,
            cadence_id=cadence,
            step_id="a",
            channel="sms",
            to_address="+6281234567890",
            segments=2,
        )
        mark_outbox_sent(session, f"{enrollment}/a/1", "console", None, sent_at=T0)
        session.add(CallQueue(name=queue, sla_seconds=3600))
        session.flush()
        common = {"enrollment_id": enrollment, "cadence_id": cadence, "contact_id": contact_id, "purpose": "sales"}
        escalate = CallTask(
            queue=queue,
            kind="escalate",
            created_at=T0 + timedelta(hours=1),
            due_at=T0 + timedelta(hours=2),
            claimed_at=T0 + timedelta(hours=1, minutes=30),
            status="disposed",
            **common,
        )
        handoff = CallTask(
            queue=queue,
            kind="handoff",
            created_at=T0 + timedelta(hours=3),
            due_at=T0 + timedelta(hours=4),
            sla_breached_at=T0 + timedelta(hours=4),
            claimed_at=T0 + timedelta(hours=5),
            status="disposed",
            **common,
        )
        session.add_all([escalate, handoff])
        session.flush()
        session.add_all(
            [
                CallDisposition(
                    task_id=escalate.id, disposition="qualified", recorded_at=T0 + timedelta(hours=1, minutes=40)
                ),
                CallDisposition(task_id=handoff.id, disposition="won", recorded_at=T0 + timedelta(hours=5, minutes=30)),
                RevenueRecord(
                    task_id=handoff.id,
                    enrollment_id=enrollment,
                    cadence_id=cadence,
                    contact_id=contact_id,
                    outcome="won",
                    amount=Decimal("900.00"),
                    currency="USD",
                    recorded_at=T0 + timedelta(hours=5, minutes=30),
                ),
            ]
        )
        # The same win, also emitted to the journal by the task workflow: counted once.
        record_business_event(
            session,
            kind="deal.won",
            key=f"task:{handoff.id}/won",
            enrollment_id=enrollment,
            cadence_id=cadence,
            contact_id=contact_id,
            occurred_at=T0 + timedelta(hours=5, minutes=30),
            payload={"task_id": handoff.id, "amount": 900.0},
        )

    with db.session_factory() as session:
        data = load_report_data(session, cadence_id=cadence)
    [row] = funnel(data, Costs(per_message={"sms": 0.05}, per_agent_hour=60.0))
    assert (row.enrolled, row.contacted, row.mql, row.connected, row.sql, row.won) == (1, 1, 1, 1, 1, 1)
    assert row.revenue == 900.0  # once, though both the journal and the revenue table have it
    # SMS 2 segments x 0.05 + agent time (10 min + 30 min) x 60/h
    assert abs(row.cost - (0.10 + 40.0)) < 1e-9
    mql, sql_row = sla(data, T0 + timedelta(days=1))
    assert (mql.stage, mql.within_sla, mql.breached) == ("mql", 1, 0)  # disposed 40 min after, SLA 1h
    assert (sql_row.stage, sql_row.within_sla, sql_row.breached) == ("sql", 0, 1)  # breach recorded
