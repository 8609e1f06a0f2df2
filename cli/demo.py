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
