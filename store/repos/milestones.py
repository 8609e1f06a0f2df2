"""Business milestones of the call floor and the consent ledger, journaled where the fact becomes true.

Each function here is called inside the transaction that records the fact (a task opened for an MQL or SQL,
an SLA breach, a disposition, a won or lost deal, a consent withdrawal) and journals it as a business event
under a key derived from the fact, so it is committed with the fact or not at all, and at most once. The
webhook relay (activities.outbound_webhooks.WebhookRelay) then starts the deliveries to subscribers.

The payloads are the ones the reports read (store.report_queries derives the same milestones from the call
floor's tables where no event was journaled, e.g. data older than the journal), hence one builder per kind.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from store.models import ConsentRecord
from store.repos.webhooks import record_business_event
from store.task_models import CallDisposition, CallTask, RevenueRecord

STAGE_OF_KIND = {"escalate": "mql.created", "handoff": "sql.handed_off"}


def _common(task: CallTask) -> dict[str, Any]:
    return {"enrollment_id": task.enrollment_id, "contact_id": task.contact_id, "cadence_id": task.cadence_id}


# ---- payloads (shared with the reports) --------------------------------------------------------------------
def opened_payload(task: CallTask) -> dict[str, Any]:
    sla = int((task.due_at - task.created_at).total_seconds())
    return {"queue": task.queue, "sla_seconds": sla, "score": task.score, "task_id": task.id}


def breach_payload(task: CallTask) -> dict[str, Any]:
    return {"queue": task.queue, "task_id": task.id, "due_at": task.due_at.isoformat()}


def disposition_payload(task: CallTask, disposition: CallDisposition) -> dict[str, Any]:
    handled = (disposition.recorded_at - task.claimed_at).total_seconds() if task.claimed_at else 0
    return {
        "queue": task.queue,
        "task_id": task.id,
        "kind": task.kind,
        "attempt": task.attempt,
        "agent_id": disposition.agent_id,
        "disposition": disposition.disposition,
        "handle_seconds": max(handled, 0),
    }


def revenue_payload(record: RevenueRecord) -> dict[str, Any]:
    return {
        "task_id": record.task_id,
        "amount": float(record.amount or 0),
        "currency": record.currency,
        "reason": record.reason,
    }


# ---- journaling ---------------------------------------------------------------------------------------------
def task_opened(session: Session, task: CallTask) -> None:
    """MQL created (escalation) or SQL handed off (handoff): the first task of the route, not its retries."""
    kind = STAGE_OF_KIND.get(task.kind)
    if kind is None or task.attempt != 1:
        return
    record_business_event(
        session,
        kind=kind,
        key=f"{kind}:{task.id}",
        payload=opened_payload(task),
        occurred_at=task.created_at,
        **_common(task),
    )


def sla_breached(session: Session, task: CallTask) -> None:
    record_business_event(
        session,
        kind="sla.breached",
        key=f"sla.breached:{task.id}",
        payload=breach_payload(task),
        occurred_at=task.sla_breached_at,
        **_common(task),
    )


def task_disposed(session: Session, task: CallTask, disposition: CallDisposition) -> None:
    record_business_event(
        session,
        kind="task.disposed",
        key=f"task.disposed:{task.id}",
        payload=disposition_payload(task, disposition),
        occurred_at=disposition.recorded_at,
        **_common(task),
    )


def deal_closed(session: Session, record: RevenueRecord) -> None:
    kind = "deal.won" if record.outcome == "won" else "deal.lost"
    record_business_event(
        session,
        kind=kind,
        key=f"{kind}:{record.task_id}",
        payload=revenue_payload(record),
        occurred_at=record.recorded_at,
        enrollment_id=record.enrollment_id,
        contact_id=record.contact_id,
        cadence_id=record.cadence_id,
    )


def consent_withdrawn(session: Session, record: ConsentRecord) -> None:
    """One event per ledger entry (a STOP withdraws each purpose: one event per purpose). No address in the
    payload: subscribers look the contact up by id if they need more."""
    record_business_event(
        session,
        kind="consent.withdrawn",
        key=f"consent.withdrawn:{record.id}",
        payload={
            "channel": record.channel,
            "purpose": record.purpose,
            "method": record.method,
            "source": record.source,
        },
        occurred_at=record.occurred_at,
        contact_id=record.contact_id,
    )
