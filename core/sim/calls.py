"""What the `call-task` child workflow does for an enrollment, in the simulator.

In production a `CreateTask` starts a `call-task` child (workflows/call_task.py): its `open-call-task`
activity cancels the task at once when nobody may call the contact (no voice consent for the queue's
purpose, no usable number, suppressed; calling hours are not checked at opening), and a disposition comes
back to the enrollment with the queue's retry policy (queues.yaml). The simulator must do the same, or its
traces would differ from the workflow's: this module is that one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from core import engine
from core.permission import SendFacts, decide
from core.queues import DEFAULT_BOOK, QueueBook
from core.timewindow import DailyWindow

if TYPE_CHECKING:
    from core.sim.driver import Enrollment


class CallDesk:
    """Opens simulated call tasks and turns dispositions into engine happenings, per the queue book."""

    def __init__(self, queues: QueueBook | None = None):
        self.queues = queues or DEFAULT_BOOK

    def open(
        self, enrollment: Enrollment, command: engine.CreateTask, purpose: str, now: datetime
    ) -> engine.Happening | None:
        """None when the task opens; the cancellation the child would report when nobody may call."""
        spec = self.queues.get(command.queue)
        contact = enrollment.contact
        has_phone = "voice" in contact.reachable
        consent = "withdrawn" if "voice" in enrollment.withdrawn else ("granted" if has_phone else None)
        verdict = decide(
            SendFacts(
                channel="voice",
                purpose=spec.purpose or purpose,
                address=contact.contact_id if has_phone else None,
                address_unusable="bounced" if "voice" in enrollment.unusable else None,
                consent_status=consent,
                suppressed=None,
                now=now,
                zone=enrollment.zone,
                country=contact.country,
            )
        )
        if verdict.outcome == "skip":
            return engine.TaskCancelled(f"{verdict.reason}: {verdict.detail}")
        return None

    def disposed(self, queue: str, disposition: str, callback_at: datetime | None) -> engine.Happening:
        """The happening the enrollment hears when an agent records `disposition` on a task of `queue`."""
        return engine.DispositionRecorded(disposition, callback_at, self.queues.get(queue).retry_rule())

    def calling_hours(self, queue: str) -> Sequence[DailyWindow]:
        """The queue's calling hours (the contact's local time)."""
        return (self.queues.get(queue).calling_hours.daily(),)
