"""Composition root: builds the database, channels, renderer and activities, and runs the worker.

Nothing imports this module except the CLI and tests; everything below it receives its
dependencies from here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities import metrics
from activities.bookkeeping import BookkeepingActivities
from activities.consent_actions import ConsentActivities
from activities.delivery import DeliveryActivities, Sender
from activities.outbound_webhooks import OutboundWebhookActivities
from activities.tasks import CallTaskActivities
from channels.base import Channel
from channels.registry import choose_channels
from content.policy import load_policy
from core.jurisdiction import JurisdictionPolicy
from core.messages import MessageCatalog
from core.queues import QueueBook
from core.settings import Settings
from workflows.call_task import CallTaskWorkflow
from workflows.contact_cadence import ContactCadenceWorkflow
from workflows.outbound_webhook import OutboundWebhookWorkflow

log = logging.getLogger("omnireach.worker")
WORKFLOWS = [ContactCadenceWorkflow, OutboundWebhookWorkflow, CallTaskWorkflow]
# Pure modules are passed through the sandbox: imported once, not per workflow run (DESIGN.md pitfalls).
PASSTHROUGH = (
    "core",
    "activities.types",
    "activities.task_types",
    "workflows.types",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "holidays",
    "yaml",
    "phonenumbers",
    "email_validator",
    "jinja2",
    "markupsafe",
)


def build_activities(
    settings: Settings,
    session_factory: sessionmaker[Session],
    catalog: MessageCatalog,
    channels: dict[str, Channel] | None = None,
    clock: Callable[[], datetime] | None = None,
    queues: QueueBook | None = None,
    policy: JurisdictionPolicy | None = None,
) -> list:
    """The activity callables, bound to one set of dependencies per process.

    ``policy``: the jurisdiction rules; default the shipped ones overridden by OMNIREACH_POLICY_FILE.
    """
    if policy is None:
        policy = load_policy(settings.policy_file)
    if channels is None:
        choices = choose_channels(settings)
        for choice in choices:
            log.info(choice.note)
        channels = {c.channel: c.adapter for c in choices}
    sender = Sender(settings.sender_name, settings.sender_address, settings.public_url, settings.secret_key)
    delivery = DeliveryActivities(session_factory, channels, catalog, sender, clock=clock, policy=policy)
    books = BookkeepingActivities(session_factory, clock=clock)
    webhooks = OutboundWebhookActivities(session_factory, settings.secret_key, clock=clock)
    tasks = CallTaskActivities(
        session_factory,
        catalog,
        queues if queues is not None else _load_queues(settings),
        secret_key=settings.secret_key,
        sender=settings.sender,
        public_url=settings.public_url,
        email=channels.get("email"),
        clock=clock,
        policy=policy,
    )
    return [
        delivery.deliver,
        ConsentActivities(session_factory, clock=clock).withdraw,
        books.load_profile,
        books.record_enrollment,
        books.record_decision,
        webhooks.emit,
        webhooks.deliver,
        webhooks.failed,
        tasks.open_task,
        tasks.status,
        tasks.sla_breach,
        tasks.notify_supervisor,
        tasks.finish,
        tasks.cancel,
    ]


def _load_queues(settings: Settings) -> QueueBook:
    """queues.yaml beside cadences/ (shipped defaults when absent); a broken file stops the worker."""
    from content.queues import load_queues, queues_path

    load = load_queues(queues_path(settings.cadences_dir))
    if load.book is None:
        raise SystemExit("queues.yaml is invalid:\n" + "\n".join(str(e) for e in load.errors))
    return load.book


def workflow_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH))


def build_worker(client: Client, settings: Settings, activities: list, *, task_queue: str | None = None) -> Worker:
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=metrics.instrument(activities),
        workflow_runner=workflow_runner(),
        max_concurrent_activities=50,
    )
