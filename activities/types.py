"""Inputs and outputs of activities: the only part of activities/ that workflows import.

One dataclass in, one out (DESIGN.md convention 1); new fields get defaults so old histories decode.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ProfileRequest:
    contact_id: str


@dataclass
class DeliverRequest:
    enrollment_id: str
    message_key: str  # "{workflow_id}/{step_id}/{attempt}": the outbox row's unique key
    cadence_id: str
    cadence_name: str
    purpose: str
    contact_id: str
    step_id: str
    channel: str
    message: str
    locale: str
    facts: dict = field(default_factory=dict)
    variant: str | None = None
    fallback: str | None = None
    window: dict | None = None  # the cadence window {days, hours, skip_holidays}, re-checked at send time
    per_day: int | None = None
    per_week: int | None = None


@dataclass
class DeliverResult:
    outcome: str  # sent | deferred | skipped | failed
    reason: str
    detail: str = ""
    channel: str | None = None
    until: str | None = None  # ISO UTC, when deferred
    message_key: str = ""


@dataclass
class EnrollmentRecord:
    enrollment_id: str
    cadence_id: str
    contact_id: str
    status: str = "running"
    reason: str = ""
    snapshot_hash: str = ""


@dataclass
class DecisionRecord:
    enrollment_id: str
    contact_id: str
    step_id: str
    decision: str  # skipped | task_opened | ...
    reason: str
    detail: str = ""
    channel: str | None = None


@dataclass
class OutboundEvent:
    """A business milestone for the journal, the reports and outbound webhooks (activity "emit-event").

    ``kind``: mql.created, sql.handed_off, task.disposed, deal.won, deal.lost, sla.breached,
    consent.withdrawn. ``key`` makes it idempotent: derive it from the fact, e.g. f"{workflow_id}/mql".
    ``payload`` holds ids and numbers only (never addresses or names); docs/temporal-contract.md lists the
    fields each kind carries.
    """

    kind: str
    key: str
    payload: dict = field(default_factory=dict)
    contact_id: str | None = None
    enrollment_id: str | None = None
    cadence_id: str | None = None
    occurred_at: str | None = None  # ISO 8601 with offset; default: when the activity runs


@dataclass
class OutboundEventResult:
    event_id: int
    duplicate: bool = False
    deliveries: list[int] = field(default_factory=list)


@dataclass
class WebhookDeliveryRequest:
    delivery_id: int
    final_error: str = ""  # set for "webhook-delivery-failed": why the retries ended


@dataclass
class WithdrawConsentRequest:
    """Activity "withdraw-consent": the person said stop (e.g. disposition do_not_call); recorded at once.

    ``purposes`` empty: every purpose. ``suppress_phone``: also put the contact's number on the company
    Do-Not-Call list, blocking it for every cadence and channel at once.
    """

    contact_id: str
    channel: str
    purposes: list[str] = field(default_factory=list)
    method: str = "agent_call"
    source: str = ""
    agent_id: str | None = None
    suppress_phone: bool = False
    evidence: dict = field(default_factory=dict)


@dataclass
class WithdrawConsentResult:
    withdrawn: list[str] = field(default_factory=list)
    suppressed: bool = False
