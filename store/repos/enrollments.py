"""Enrollments: a projection of the contact-cadence workflows, for reports, exports and erasure."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import ENROLLMENT_STATUSES, Enrollment
from store.repos._common import check_choice, insert_or_get
from store.types import utcnow

ENDED_STATUSES = tuple(s for s in ENROLLMENT_STATUSES if s != "running")


def enrollment_id(cadence_id: str, contact_id: str) -> str:
    """The deterministic workflow id of a contact's enrollment in a cadence."""
    return f"cadence:{cadence_id}:{contact_id}"


def record_enrollment_started(
    session: Session,
    id: str,
    cadence_id: str,
    contact_id: str,
    snapshot_hash: str | None,
    *,
    started_at: datetime | None = None,
    reopen: bool = False,
) -> tuple[Enrollment, bool]:
    """Record that an enrollment runs; idempotent (a retried activity gets the existing row, created False).

    An ended enrollment is left as it is unless ``reopen`` is True (a new run reusing the workflow id):
    then it becomes running again with the new snapshot hash.
    """
    row, created = insert_or_get(
        session,
        Enrollment(
            id=id,
            cadence_id=cadence_id,
            contact_id=contact_id,
            status="running",
            cadence_snapshot_hash=snapshot_hash,
            started_at=started_at or utcnow(),
        ),
        lambda: session.get(Enrollment, id),
    )
    if not created and reopen and row.status != "running":
        row.status = "running"
        row.cadence_snapshot_hash = snapshot_hash
        row.started_at = started_at or utcnow()
        row.ended_at = None
        row.end_reason = None
        session.flush()
    return row, created


def mark_enrollment_ended(
    session: Session, id: str, status: str, reason: str | None = None, *, ended_at: datetime | None = None
) -> Enrollment | None:
    """End a running enrollment (completed / exited / stopped / failed); the first end wins.

    Returns None when the enrollment is unknown.
    """
    check_choice("status", status, ENDED_STATUSES)
    row = session.get(Enrollment, id)
    if row is None:
        return None
    if row.status == "running":
        row.status = status
        row.end_reason = reason
        row.ended_at = ended_at or utcnow()
        session.flush()
    return row


def get_enrollment(session: Session, id: str) -> Enrollment | None:
    """The enrollment with this workflow id, or None."""
    return session.get(Enrollment, id)


def running_enrollments_for_contact(session: Session, contact_id: str) -> list[Enrollment]:
    """The contact's running enrollments, oldest first (erasure and do-not-call stop them)."""
    return list(
        session.scalars(
            select(Enrollment)
            .where(Enrollment.contact_id == contact_id, Enrollment.status == "running")
            .order_by(Enrollment.started_at, Enrollment.id)
        )
    )
