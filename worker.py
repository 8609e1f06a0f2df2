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

from activities.bookkeeping import BookkeepingActivities
from activities.delivery import DeliveryActivities, Sender
from channels.base import Channel
from channels.registry import choose_channels
from core.messages import MessageCatalog
from core.settings import Settings
from workflows.contact_cadence import ContactCadenceWorkflow

log = logging.getLogger("omnireach.worker")
WORKFLOWS = [ContactCadenceWorkflow]
# Pure modules are passed through the sandbox: imported once, not per workflow run (DESIGN.md pitfalls).
PASSTHROUGH = (
    "core",
    "activities.types",
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
) -> list:
    """The activity callables, bound to one set of dependencies per process."""
    if channels is None:
        choices = choose_channels(settings.var_dir)
        for choice in choices:
            log.info(choice.note)
        channels = {c.channel: c.adapter for c in choices}
    sender = Sender(settings.sender_name, settings.sender_address, settings.public_url, settings.secret_key)
    delivery = DeliveryActivities(session_factory, channels, catalog, sender, clock=clock)
    books = BookkeepingActivities(session_factory, clock=clock)
    return [delivery.deliver, books.load_profile, books.record_enrollment, books.record_decision]


def workflow_runner() -> SandboxedWorkflowRunner:
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH))


def build_worker(client: Client, settings: Settings, activities: list, *, task_queue: str | None = None) -> Worker:
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=WORKFLOWS,
        activities=activities,
        workflow_runner=workflow_runner(),
        max_concurrent_activities=50,
    )
