"""Small activities that read the contact profile and keep the enrollment record and decision log."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.types import DecisionRecord, EnrollmentRecord, ProfileRequest
from core.engine import ContactProfile
from store.models import Contact
from store.repos import decisions as decision_repo
from store.repos import enrollments as enrollment_repo


class BookkeepingActivities:
    def __init__(self, session_factory: sessionmaker[Session], clock: Callable[[], datetime] | None = None):
        self.sessions = session_factory
        self.clock = clock or (lambda: datetime.now(UTC))

    # The database work runs in a thread (asyncio.to_thread carries the activity's context): the worker's event
    # loop also runs workflow tasks and the other activities, and must not wait on a query.
    @activity.defn(name="load-contact-profile")
    async def load_profile(self, request: ProfileRequest) -> ContactProfile:
        """What the engine may see of a contact: no addresses, so they never enter workflow history."""
        return await asyncio.to_thread(self._load_profile, request)

    @activity.defn(name="record-enrollment")
    async def record_enrollment(self, record: EnrollmentRecord) -> None:
        await asyncio.to_thread(self._record_enrollment, record)

    @activity.defn(name="record-decision")
    async def record_decision(self, record: DecisionRecord) -> None:
        await asyncio.to_thread(self._record_decision, record)

    def _load_profile(self, request: ProfileRequest) -> ContactProfile:
        with self.sessions() as session:
            contact = session.get(Contact, request.contact_id)
            if contact is None:
                raise ApplicationError(
                    f"contact {request.contact_id} does not exist", type="UnknownContact", non_retryable=True
                )
            return ContactProfile(
                contact_id=contact.id,
                external_id=contact.external_id,
                country=contact.country,
                timezone=contact.timezone,
                locale=contact.locale,
                attributes=dict(contact.attributes or {}),
            )

    def _record_enrollment(self, record: EnrollmentRecord) -> None:
        with self.sessions.begin() as session:
            if record.status == "running":
                enrollment_repo.record_enrollment_started(
                    session,
                    record.enrollment_id,
                    record.cadence_id,
                    record.contact_id,
                    record.snapshot_hash,
                    reopen=True,
                )
            else:
                enrollment_repo.mark_enrollment_ended(session, record.enrollment_id, record.status, record.reason)

    def _record_decision(self, record: DecisionRecord) -> None:
        with self.sessions.begin() as session:
            decision_repo.record_decision(
                session,
                contact_id=record.contact_id,
                enrollment_id=record.enrollment_id,
                step_id=record.step_id,
                message_key=None,
                channel=record.channel,
                decision=record.decision,
                reason=record.reason,
                detail=record.detail,
                decided_at=self.clock(),
            )
