"""The demo `omnireach up` loads into an empty database: two consenting contacts, one short cadence."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from store.models import Contact
from store.repos.consent import append_consent
from store.repos.contacts import upsert_contact

DEMO_CADENCE = "demo-welcome"
DEMO_NOTICE = (
    "I agree that omnireach demo may contact me by email, SMS and WhatsApp about my account. "
    "Reply STOP to opt out at any time."
)
DEMO_CONTACTS = [
    {
        "external_id": "demo-jakarta",
        "name": "Siti Rahayu",
        "email": "siti@example.id",
        "phone": "+6281234567890",
        "whatsapp": "+6281234567890",
        "country": "ID",
        "timezone": "Asia/Jakarta",
        "locale": "id",
    },
    {
        "external_id": "demo-new-york",
        "name": "Alex Morgan",
        "email": "alex@example.com",
        "phone": "+12125550147",
        "whatsapp": "+12125550147",
        "country": "US",
        "timezone": "America/New_York",
        "locale": "en",
    },
]


def load_demo_if_empty(sessions: sessionmaker[Session]) -> list[str]:
    """Create the demo contacts with recorded consent; returns their ids ([] when data already exists)."""
    with sessions.begin() as session:
        if session.scalar(select(func.count()).select_from(Contact)):
            return []
        ids = []
        now = datetime.now(UTC)
        for fields in DEMO_CONTACTS:
            contact, _ = upsert_contact(session, **fields)
            session.flush()
            for channel in ("email", "sms", "whatsapp"):
                append_consent(
                    session,
                    contact_id=contact.id,
                    channel=channel,
                    purpose="service",
                    status="granted",
                    address=contact.email if channel == "email" else contact.phone,
                    method="web_form",
                    source="omnireach demo sign-up form",
                    notice_text=DEMO_NOTICE,
                    notice_version="demo-1",
                    lawful_basis="consent",
                    ip="127.0.0.1",
                    occurred_at=now,
                    source_timezone=contact.timezone,
                )
            ids.append(contact.id)
        return ids


DEMO_AGENT = "demo-agent"


def create_demo_agent(sessions: sessionmaker[Session], book, key_file) -> str:
    """A console agent for the demo's queues; its key is kept in `key_file` (shown once by `up`)."""
    from cli.agents import sync_queues
    from store.repos.api_keys import create_api_key
    from store.repos.tasks import upsert_agent

    with sessions.begin() as session:
        queues = sync_queues(session, book)
        upsert_agent(session, DEMO_AGENT, name="Demo Agent", queues=queues, role="supervisor")
        _, plaintext = create_api_key(session, "demo agent (omnireach up)", ["agent"], agent_id=DEMO_AGENT)
    key_file.write_text(plaintext + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    return plaintext
