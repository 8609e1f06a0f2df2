"""A real worker on a real Temporal test server, a real SQLite store and the console channel."""

from __future__ import annotations

import io
import textwrap
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.client import Client, WorkflowHandle

from channels.base import Channel
from channels.console import ConsoleChannel
from core.cadence_loader import check_content, parse_cadence
from core.jurisdiction import JurisdictionPolicy, permissive_policy
from core.messages import MessageCatalog
from core.model import Cadence
from core.settings import Settings
from store.db import make_engine, make_session_factory, upgrade
from store.models import OutboxMessage, SendDecision
from store.repos.consent import append_consent
from store.repos.contacts import upsert_contact
from worker import build_activities, build_worker
from workflows.contact_cadence import WORKFLOW_TYPE, EnrollmentInput, EnrollmentResult, enrollment_id

TEMPLATES = {
    "invite/email.subject.j2": "{{ facts.title }}: you're invited, {{ contact.name }}",
    "invite/email.txt.j2": "Join {{ facts.title }}.\nUnsubscribe: {{ unsubscribe_url }}\n{{ sender.address }}",
    "reminder/sms.j2": "Reminder: {{ facts.title }} soon. Reply STOP to opt out",
    "reminder/email.subject.j2": "Reminder: {{ facts.title }}",
    "reminder/email.txt.j2": "Reminder: {{ facts.title }}\n{{ unsubscribe_url }}\n{{ sender.address }}",
    "last/sms.j2": "Last chance for {{ facts.title }}, {{ contact.name }}",
    "scripts/qualify.md.j2": "Hello {{ contact.name }}, about {{ facts.title }}",
}


def scheduled_time() -> datetime:
    """Activities see the server's (virtual) time, so windows and caps follow the skipped clock."""
    return activity.info().current_attempt_scheduled_time


@dataclass
class Harness:
    client: Client
    tmp_path: Path
    templates: dict[str, str] = field(default_factory=lambda: dict(TEMPLATES))
    channel_wrapper: type | None = None
    # Legal hours and registries are the permission engine's tests' business (tests/workflows/test_stop_*,
    # test_permission_*): elsewhere only the cadence's own window applies, so virtual "now" is never illegal.
    policy: JurisdictionPolicy = field(default_factory=permissive_policy)

    def __post_init__(self) -> None:
        engine = make_engine(f"sqlite:///{self.tmp_path / 'omnireach.db'}")
        upgrade(engine)
        self.sessions: sessionmaker[Session] = make_session_factory(engine)
        self.catalog = MessageCatalog(self.templates)
        self.console = ConsoleChannel(self.tmp_path / "console.jsonl", out=io.StringIO())
        channel: Channel = self.channel_wrapper(self.console) if self.channel_wrapper else self.console
        self.settings = Settings(database_url="sqlite://", secret_key="test-secret", var_dir=self.tmp_path)
        self.task_queue = f"tq-{uuid.uuid4().hex[:8]}"
        activities = build_activities(
            self.settings,
            self.sessions,
            self.catalog,
            channels=dict.fromkeys(("email", "sms", "whatsapp", "voice"), channel),
            clock=scheduled_time,
            policy=self.policy,
        )
        self.worker = build_worker(self.client, self.settings, activities, task_queue=self.task_queue)

    def cadence(self, yaml_text: str) -> Cadence:
        load = parse_cadence(textwrap.dedent(yaml_text), "test.yaml")
        check_content(load, self.catalog, queues={"telemarketing", "telesales"})
        assert load.ok, [str(e) for e in load.errors]
        assert load.cadence is not None
        return load.cadence

    def contact(
        self,
        *,
        timezone: str = "Asia/Jakarta",
        country: str = "ID",
        consents: tuple[tuple[str, str], ...] = (("email", "marketing"), ("sms", "marketing")),
    ) -> str:
        with self.sessions.begin() as session:
            contact, _ = upsert_contact(
                session,
                external_id=f"ext-{uuid.uuid4().hex[:8]}",
                name="Dewi",
                email="dewi@example.id",
                phone="+6281234567890",
                whatsapp="+6281234567890",
                country=country,
                timezone=timezone,
                locale="en",
            )
            session.flush()
            for channel, purpose in consents:
                self.grant(session, contact.id, channel, purpose)
            return contact.id

    def grant(
        self,
        session: Session,
        contact_id: str,
        channel: str,
        purpose: str,
        status: str = "granted",
        at: datetime | None = None,
    ) -> None:
        append_consent(
            session,
            contact_id=contact_id,
            channel=channel,
            purpose=purpose,
            status=status,
            method="web_form",
            source="https://example.id/signup",
            notice_text="You may contact me",
            notice_version="v1",
            lawful_basis="consent",
            ip="203.0.113.9",
            occurred_at=at or datetime(2020, 1, 1, tzinfo=UTC),
            source_timezone="Asia/Jakarta",
        )

    async def start(self, cadence: Cadence, contact_id: str) -> WorkflowHandle:
        return await self.client.start_workflow(
            WORKFLOW_TYPE,
            EnrollmentInput(cadence.snapshot(), contact_id),
            id=enrollment_id(cadence.id, contact_id),
            task_queue=self.task_queue,
            result_type=EnrollmentResult,
        )

    def sent(self, contact_id: str) -> list[OutboxMessage]:
        with self.sessions() as session:
            rows = session.scalars(
                select(OutboxMessage).where(OutboxMessage.contact_id == contact_id).order_by(OutboxMessage.sent_at)
            ).all()
            session.expunge_all()
            return list(rows)

    def decisions(self, contact_id: str) -> list[SendDecision]:
        with self.sessions() as session:
            rows = session.scalars(
                select(SendDecision).where(SendDecision.contact_id == contact_id).order_by(SendDecision.id)
            ).all()
            session.expunge_all()
            return list(rows)
