"""May an agent call this task's contact right now? Asked at claim and again at dial.

The same permission check every automated send goes through (activities.permission_check): voice consent
for the task's purpose, a usable phone number, no suppression (company DNC, registries, erasure hashes),
and the time: the queue's calling hours in the contact's local time, intersected with whatever legal hours
that module applies. A "defer" keeps the task for later; a "skip" means nobody may call (the task is
cancelled and nurture resumes).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from activities.permission_check import Reachability, check_permission
from core.jurisdiction import JurisdictionPolicy
from core.model import Window
from core.permission import Verdict
from store.models import Contact
from store.task_models import CallQueue, CallTask


def calling_windows(queue: CallQueue | None) -> tuple:
    """The queue's calling hours as DailyWindows (none configured: no extra limit beyond legal hours)."""
    if queue is None or not queue.calling_hours:
        return ()
    return (Window.model_validate(queue.calling_hours).daily(),)


def vet_call(
    session: Session,
    task: CallTask,
    now: datetime,
    *,
    salt: str,
    hours: bool = True,
    policy: JurisdictionPolicy | None = None,
) -> Verdict:
    """The verdict for calling the task's contact at ``now`` (``hours=False``: consent and DNC only).

    ``policy``: the operator's jurisdiction rules (OMNIREACH_POLICY_FILE); None means the shipped defaults, so
    every caller with settings must pass the loaded policy or an override would not reach agents' calls."""
    contact = session.get(Contact, task.contact_id)
    if contact is None or contact.erased_at is not None:
        return Verdict("skip", "contact_gone", "the contact was erased or no longer exists")
    queue = session.get(CallQueue, task.queue)
    windows = calling_windows(queue) if hours else ()
    return check_permission(
        session, contact, Reachability("voice", task.purpose, windows), now, salt=salt, policy=policy
    )
