"""Activities of the `call-task` workflow: open the task with the contact's context, read its state,
record an SLA breach, tell the supervisor, record a disposition that arrived by signal, cancel.

The database is the task's source of truth: the API and the console change it (claim, release, dispose)
and nudge the workflow, which reads it back here. So a nudge that gets lost delays nothing for long,
and a claim that races the SLA timer is judged by the recorded claim time, not by who ran first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.call_checks import vet_call
from activities.task_types import (
    BreachResult,
    CallTaskOpened,
    CallTaskStatus,
    CancelCallTask,
    FinishCallTask,
    OpenCallTask,
    SupervisorNotice,
    TaskRef,
)
from channels.base import Channel, OutgoingMessage
from core import webhook_signing
from core.jurisdiction import JurisdictionPolicy
from core.messages import MessageCatalog, TemplateProblem, build_context
from core.queues import QueueBook
from store.models import Contact
from store.repos import tasks as task_repo
from store.task_models import CallTask

log = logging.getLogger("omnireach.tasks")
WEBHOOK_TIMEOUT = 10.0


def supervisor_webhook_secret(master_key: str, queue: str) -> str:
    """The ``whsec_...`` secret a queue's supervisor webhook verifies with (`omnireach queues secret`)."""
    return webhook_signing.endpoint_secret(master_key, f"queue-supervisor:{queue}")


class CallTaskActivities:
    """Dependencies are injected by worker.py; one object per process."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        catalog: MessageCatalog,
        queues: QueueBook,
        *,
        secret_key: str,
        sender: Mapping[str, str],
        public_url: str,
        email: Channel | None = None,
        clock: Callable[[], datetime] | None = None,
        http_timeout: float = WEBHOOK_TIMEOUT,
        policy: JurisdictionPolicy | None = None,
    ):
        self.sessions = session_factory
        self.catalog = catalog
        self.queues = queues
        self.secret_key = secret_key
        self.sender = dict(sender)
        self.public_url = public_url.rstrip("/")
        self.email = email
        self.clock = clock or (lambda: datetime.now(UTC))
        self.http_timeout = http_timeout
        self.policy = policy  # the operator's legal hours / registries; None: the shipped defaults

    @activity.defn(name="open-call-task")
    async def open_task(self, request: OpenCallTask) -> CallTaskOpened:
        """Create the task (idempotent under its id) with the score, facts and the rendered script."""
        spec = self.queues.get(request.queue)
        created_at = datetime.fromisoformat(request.created_at) if request.created_at else self.clock()
        sla_seconds = request.sla_seconds or spec.sla_seconds
        with self.sessions.begin() as session:
            task_repo.upsert_queue(
                session,
                request.queue,
                title=spec.title,
                purpose=spec.purpose,
                sla_seconds=spec.sla_seconds,
                calling_hours=spec.calling_hours.model_dump(mode="json"),
                max_attempts=spec.retry.max_attempts,
                retry_spacing_seconds=spec.retry_rule().spacing_seconds,
                supervisor=spec.supervisor.model_dump(exclude_none=True) if spec.supervisor else {},
            )
            contact = session.get(Contact, request.contact_id)
            if contact is None or contact.erased_at is not None:
                return CallTaskOpened("cancelled", "contact_gone: the contact was erased or no longer exists")
            task, created = task_repo.create_task(
                session,
                id=request.task_id,
                created_at=created_at,
                due_at=created_at + timedelta(seconds=sla_seconds),
                workflow_id=request.workflow_id,
                enrollment_id=request.enrollment_id,
                cadence_id=request.cadence_id,
                cadence_name=request.cadence_name,
                contact_id=contact.id,
                queue=request.queue,
                kind=request.kind,
                step_id=request.step_id,
                attempt=request.attempt,
                purpose=spec.purpose or request.purpose,
                locale=contact.locale or request.locale,
                script=request.script,
                script_text=self._script(request, contact),
                facts=dict(request.facts),
                score=request.score,
                reason=request.reason,
                status="open",
                priority=0,
            )
            if created:
                verdict = vet_call(session, task, self.clock(), salt=self.secret_key, hours=False, policy=self.policy)
                if verdict.outcome == "skip":
                    task_repo.close_task(
                        session, task, "cancelled", self.clock(), reason=f"{verdict.reason}: {verdict.detail}"
                    )
            opened = _opened(
                task,
                spec.retry.max_attempts,
                spec.retry_rule().spacing_seconds,
                spec.calling_hours.model_dump(mode="json"),
            )
        log.info(
            "event=call_task_opened task=%s queue=%s kind=%s attempt=%d status=%s",
            request.task_id,
            request.queue,
            request.kind,
            request.attempt,
            opened.status,
        )
        return opened

    def _script(self, request: OpenCallTask, contact: Contact) -> str:
        context = build_context(
            contact={
                "external_id": contact.external_id,
                "name": contact.name,
                "email": contact.email,
                "phone": contact.phone,
                "whatsapp": contact.whatsapp,
                "country": contact.country,
                "timezone": contact.timezone,
                "locale": contact.locale,
                "attributes": dict(contact.attributes or {}),
            },
            facts=request.facts,
            cadence={"id": request.cadence_id, "name": request.cadence_name},
            step={"id": request.step_id, "channel": "voice"},
            sender=self.sender,
            unsubscribe_url="",
        )
        try:
            return self.catalog.render_script(request.script, context, locale=contact.locale or request.locale)
        except TemplateProblem as problem:
            # The agent still gets the task and its context; the broken script says where to fix it.
            log.error("event=call_script_failed task=%s script=%s problem=%s", request.task_id, request.script, problem)
            return f"(the call script could not be rendered: {problem})"

    @activity.defn(name="call-task-status")
    async def status(self, ref: TaskRef) -> CallTaskStatus:
        with self.sessions() as session:
            task = task_repo.get_task(session, ref.task_id)
            if task is None:
                raise ApplicationError(
                    f"call task {ref.task_id} does not exist", type="UnknownTask", non_retryable=True
                )
            return _status(session, task)

    @activity.defn(name="call-task-sla-breach")
    async def sla_breach(self, ref: TaskRef) -> BreachResult:
        """At the SLA deadline: record the breach and raise the priority if nobody claimed the task in time."""
        now = self.clock()
        with self.sessions.begin() as session:
            task = task_repo.mark_breached(session, ref.task_id, now=now)
            if task is None:
                return BreachResult(False)
            queue = task_repo.get_queue(session, task.queue)
            supervisor = dict(queue.supervisor or {}) if queue else {}
            payload = {
                "type": "sla.breached",
                "id": f"sla-breach/{task.id}",
                "task_id": task.id,
                "queue": task.queue,
                "kind": task.kind,
                "attempt": task.attempt,
                "contact_id": task.contact_id,
                "enrollment_id": task.enrollment_id,
                "cadence_id": task.cadence_id,
                "created_at": task.created_at.isoformat(),
                "due_at": task.due_at.isoformat(),
                "breached_at": now.isoformat(),
                "priority": task.priority,
                "console_url": f"{self.public_url}/console/tasks/{task.id}",
            }
            notice = None
            if supervisor.get("email") or supervisor.get("webhook"):
                notice = SupervisorNotice(
                    task.id, task.queue, payload, supervisor.get("email"), supervisor.get("webhook")
                )
            result = BreachResult(True, now.isoformat(), task.priority, notice)
        log.warning("event=sla_breached task=%s queue=%s priority=%d", ref.task_id, payload["queue"], result.priority)
        return result

    @activity.defn(name="notify-supervisor")
    async def notify_supervisor(self, notice: SupervisorNotice) -> None:
        """POST the signed breach to the supervisor's webhook and/or email them. Retried by Temporal; the
        webhook-id and the email's message key stay the same on every attempt, so receivers dedupe."""
        body = json.dumps(notice.payload, separators=(",", ":"), sort_keys=True).encode()
        message_id = str(notice.payload.get("id") or f"sla-breach/{notice.task_id}")
        done: list[str] = []
        if notice.webhook:
            secret = supervisor_webhook_secret(self.secret_key, notice.queue)
            headers = {
                "content-type": "application/json",
                "user-agent": "omnireach-sla/1",
                **webhook_signing.signed_headers(secret, message_id, int(_wall_clock().timestamp()), body),
            }
            try:
                async with httpx.AsyncClient(timeout=self.http_timeout) as client:
                    response = await client.post(notice.webhook, content=body, headers=headers)
            except httpx.HTTPError as exc:
                raise ApplicationError(
                    f"supervisor webhook unreachable: {type(exc).__name__}", type="WebhookFailed"
                ) from exc
            if response.status_code >= 300:
                raise ApplicationError(f"supervisor webhook answered {response.status_code}", type="WebhookFailed")
            done.append("webhook")
        if notice.email and self.email is not None:
            payload = notice.payload
            text = (
                f"A {payload.get('kind')} call task in queue '{notice.queue}' was not claimed within its SLA.\n"
                f"Created {payload.get('created_at')}, due {payload.get('due_at')}, "
                f"breached {payload.get('breached_at')}.\n"
                f"Its priority is now {payload.get('priority')}. Open it: {payload.get('console_url')}\n"
            )
            key = f"sla-breach/{notice.task_id}/email"
            if await self.email.lookup(key) is None:
                await self.email.send(
                    OutgoingMessage(
                        message_key=key,
                        channel="email",
                        to=notice.email,
                        text=text,
                        subject=f"[omnireach] SLA breached in queue {notice.queue}",
                        from_name=self.sender.get("name"),
                        metadata={"kind": "sla_breach", "queue": notice.queue},
                    )
                )
            done.append("email")
        with self.sessions.begin() as session:
            task_repo.log_task(session, notice.task_id, "supervisor_notified", self.clock(), detail=", ".join(done))

    @activity.defn(name="finish-call-task")
    async def finish(self, request: FinishCallTask) -> CallTaskStatus:
        """Record a disposition that came by signal (the API records its own before nudging). The first
        recorded disposition wins; the task's state as stored is returned."""
        now = self.clock()
        with self.sessions.begin() as session:
            task = task_repo.lock_task(session, request.task_id)
            if task is None:
                raise ApplicationError(
                    f"call task {request.task_id} does not exist", type="UnknownTask", non_retryable=True
                )
            if task.status in ("open", "claimed"):
                data = task_repo.DispositionData(
                    disposition=request.disposition,
                    agent_id=request.agent_id or task.claimed_by,
                    note=request.note,
                    callback_at=datetime.fromisoformat(request.callback_at) if request.callback_at else None,
                    amount=Decimal(request.amount) if request.amount else None,
                    currency=request.currency,
                    reason=request.reason,
                    source="workflow",
                )
                try:
                    task_repo.record_disposition(session, task, data, now=now)
                except ValueError as exc:  # an unknown disposition name: nothing recorded
                    raise ApplicationError(str(exc), type="BadDisposition", non_retryable=True) from exc
            return _status(session, task)

    @activity.defn(name="cancel-call-task")
    async def cancel(self, request: CancelCallTask) -> None:
        with self.sessions.begin() as session:
            task_repo.cancel_task(session, request.task_id, reason=request.reason, now=self.clock())


def _wall_clock() -> datetime:
    """Receivers check the signature's timestamp against their own clock: always the real time."""
    return datetime.now(UTC)


def _opened(task: CallTask, max_attempts: int, spacing: int, hours: dict) -> CallTaskOpened:
    sla = int((task.due_at - task.created_at).total_seconds())
    if task.status == "cancelled":
        return CallTaskOpened("cancelled", task.close_reason or "cancelled", task.due_at.isoformat(), sla)
    return CallTaskOpened("open", "", task.due_at.isoformat(), sla, max_attempts, spacing, hours)


def _status(session: Session, task: CallTask) -> CallTaskStatus:
    disposition = task_repo.get_disposition(session, task.id)
    return CallTaskStatus(
        task_id=task.id,
        status=task.status,
        claimed_by=task.claimed_by,
        first_claimed_at=task.first_claimed_at.isoformat() if task.first_claimed_at else None,
        sla_breached_at=task.sla_breached_at.isoformat() if task.sla_breached_at else None,
        close_reason=task.close_reason,
        disposition=disposition.disposition if disposition else None,
        callback_at=disposition.callback_at.isoformat() if disposition and disposition.callback_at else None,
        note=disposition.note if disposition else None,
        amount=str(disposition.amount) if disposition and disposition.amount is not None else None,
        currency=disposition.currency if disposition else None,
        reason=disposition.reason if disposition else None,
        agent_id=disposition.agent_id if disposition else None,
    )
