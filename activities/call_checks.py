"""May an agent call this task's contact right now? Asked at claim and again at dial.

The same permission check every automated send goes through (activities.permission_check): voice consent
for the task's purpose, a usable phone number, no suppression (company DNC, registries, erasure hashes),
and the time: the queue's calling hours in the contact's local time, intersected with whatever legal hours
that module applies. A "defer" keeps the task for later; a "skip" means nobody may call (the task is
cancelled and nurture resumes).
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from activities.permission_check import UNREAD, Reachability, check_permission
from core.jurisdiction import JurisdictionPolicy
from core.model import Window
from core.permission import Verdict
from store.repos.claims import Candidate, candidate_for
from store.task_models import CallTask


def calling_windows(calling_hours: dict[str, Any] | None) -> tuple:
    """A queue's calling hours as DailyWindows (none configured: no extra limit beyond legal hours)."""
    if not calling_hours:
        return ()
    return _windows(json.dumps(calling_hours, sort_keys=True))


# A handful of queues: validating their hours on every claim would cost more than the check itself.
@functools.lru_cache(maxsize=256)
def _windows(calling_hours_json: str) -> tuple:
    return (Window.model_validate(json.loads(calling_hours_json)).daily(),)


def vet_call(
    session: Session,
    task: CallTask,
    now: datetime,
    *,
    salt: str,
    hours: bool = True,
    policy: JurisdictionPolicy | None = None,
) -> Verdict:
    """The verdict for calling the task's contact at ``now`` (``hours=False``: consent and DNC only)."""
    candidate = candidate_for(session, task, salt=salt)
    return vet_candidate(session, candidate, now, salt=salt, hours=hours, policy=policy)


def vet_candidate(
    session: Session,
    candidate: Candidate,
    now: datetime,
    *,
    salt: str,
    hours: bool = True,
    policy: JurisdictionPolicy | None = None,
) -> Verdict:
    """``vet_call`` for a task read with its facts (store.repos.claims.claim_next hands these out).

    ``policy``: the operator's jurisdiction rules (OMNIREACH_POLICY_FILE); None means the shipped defaults, so
    every caller with settings must pass the loaded policy or an override would not reach agents' calls."""
    callee = candidate.callee
    if callee is None or callee.erased_at is not None:
        return Verdict("skip", "contact_gone", "the contact was erased or no longer exists")
    windows = calling_windows(candidate.calling_hours) if hours else ()
    task = candidate.task
    return check_permission(
        session,
        callee,
        Reachability("voice", task.purpose, windows),
        now,
        salt=salt,
        policy=policy,
        consent_status=candidate.voice_consent,
        suppression=candidate.suppression if candidate.suppression_read else UNREAD,
    )
