"""The `withdraw-consent` activity: a workflow records that the person said stop (an agent's do_not_call
disposition, a spoken opt-out), in the ledger with its evidence, and optionally on the company DNC list.

It never sends anything: the deliver activity stays the one place that sends, and re-checks consent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.types import WithdrawConsentRequest, WithdrawConsentResult
from store.models import CHANNELS, PURPOSES, Contact
from store.repos import consent_changes
from store.repos.suppressions import suppress_once


class ConsentActivities:
    """Dependencies are injected by worker.py; one object per process."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Callable[[], datetime] | None = None):
        self.sessions = session_factory
        self.clock = clock or (lambda: datetime.now(UTC))

    @activity.defn(name="withdraw-consent")
    async def withdraw(self, request: WithdrawConsentRequest) -> WithdrawConsentResult:
        """Idempotent: a retry finds the withdrawal (and the suppression) already recorded."""
        if request.channel not in CHANNELS or any(p not in PURPOSES for p in request.purposes):
            raise ApplicationError(
                f"unknown channel {request.channel!r} or purpose in {request.purposes!r}",
                type="BadRequest",
                non_retryable=True,
            )
        # In a thread: the worker's event loop runs workflow tasks and other activities meanwhile.
        return await asyncio.to_thread(self._withdraw, request)

    def _withdraw(self, request: WithdrawConsentRequest) -> WithdrawConsentResult:
        with self.sessions.begin() as session:
            contact = session.get(Contact, request.contact_id)
            if contact is None or contact.erased_at is not None:
                return WithdrawConsentResult()  # nothing to withdraw: erased people are never contacted
            withdrawn = consent_changes.withdraw(
                session,
                contact,
                request.channel,
                purposes=request.purposes or PURPOSES,
                method=request.method,
                source=request.source or "workflow",
                occurred_at=self.clock(),
                evidence=dict(request.evidence),
                agent_id=request.agent_id,
            )
            suppressed = bool(request.suppress_phone and contact.phone and _company_dnc(session, contact.phone))
        return WithdrawConsentResult(withdrawn, suppressed)


def _company_dnc(session: Session, phone: str) -> bool:
    suppress_once(session, kind="company_dnc", channel_scope="phone", value=phone, reason="do_not_call request")
    return True
