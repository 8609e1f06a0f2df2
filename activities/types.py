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
