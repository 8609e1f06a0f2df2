"""POST /webhooks/sendgrid/events: ECDSA-signed, replay-proof, order-proof, and acting on opt-outs."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import select

from core.settings import Settings
from store.models import Event, OutboxMessage
from store.repos.outbox import claim_outbox, mark_outbox_sent
from tests.api.conftest import Api, problem_of
from tests.api.webhook_helpers import (
    consent_in_force,
    consent_rows,
    contact_row,
    counts,
    grant,
    sendgrid_headers,
    sendgrid_post,
    webhook_settings,
    write_project,
)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("sendgrid"))


@pytest.fixture(scope="module")
def settings(project: Path) -> Settings:
    return webhook_settings(project)


async def email_contact(api: Api) -> tuple[str, str]:
    email = f"ana.{uuid.uuid4().hex[:8]}@example.com"
    contact = await api.new_contact(email=email)
    for purpose in ("marketing", "sales"):
        await grant(api, contact["id"], "email", purpose)
    return contact["id"], email


def sent_email(api: Api, contact_id: str, email: str, purpose: str = "marketing") -> tuple[str, str]:
    key = f"cadence:test:{contact_id}/hello/{uuid.uuid4().hex[:6]}"
    x_message_id = uuid.uuid4().hex[:22]
    with api.sessions.begin() as session:
        claim_outbox(
            session, message_key=key, contact_id=contact_id, channel="email", purpose=purpose, to_address=email
        )
        mark_outbox_sent(session, key, provider="sendgrid", provider_message_id=x_message_id)
    return key, x_message_id


def event(name: str, key: str, x_id: str, email: str, at: int | None = None, **extra) -> dict:
    return {
        "email": email,
        "timestamp": at or int(time.time()),
        "event": name,
        "sg_event_id": uuid.uuid4().hex,
        "sg_message_id": f"{x_id}.filterdrecv-5645d9c87f-abcde-1-6789-0",
        "message_key": key,
        **extra,
    }


def status(api: Api, key: str) -> str:
    with api.sessions() as session:
        return session.scalars(select(OutboxMessage.status).where(OutboxMessage.message_key == key)).one()


def current(api: Api, contact_id: str) -> dict[str, str]:
    return consent_in_force(api, contact_id, "email")


async def test_events_apply_once_and_status_never_moves_backwards(api: Api) -> None:
    contact_id, email = await email_contact(api)
    key, x_id = sent_email(api, contact_id, email)
    now = int(time.time())
    batch = [event("delivered", key, x_id, email, now - 60), event("click", key, x_id, email, now - 10)]
    response = await sendgrid_post(api, batch)
    assert response.status_code == 204, response.text
    assert status(api, key) == "clicked"

    late = [event("open", key, x_id, email, now - 30), event("delivered", key, x_id, email, now - 5)]
    assert (await sendgrid_post(api, late)).status_code == 204
    assert status(api, key) == "clicked"

    before = counts(api)
    assert (await sendgrid_post(api, batch)).status_code == 204  # SendGrid retried the same batch
    assert counts(api) == before
    with api.sessions() as session:
        names = session.scalars(select(Event.name).where(Event.message_key == key).order_by(Event.id)).all()
    assert names == ["email.delivered", "email.click", "email.open", "email.delivered"]


async def test_unsubscribe_withdraws_the_message_purpose_and_spamreport_every_purpose(api: Api) -> None:
    contact_id, email = await email_contact(api)
    key, x_id = sent_email(api, contact_id, email, purpose="marketing")
    assert (await sendgrid_post(api, [event("unsubscribe", key, x_id, email)])).status_code == 204
    assert current(api, contact_id) == {"marketing": "withdrawn", "sales": "granted"}
    withdrawal = consent_rows(api, contact_id, "email")[-1]
    assert withdrawal.method == "provider_unsubscribe" and withdrawal.evidence["event"] == "unsubscribe"

    other_id, other_email = await email_contact(api)
    key2, x2 = sent_email(api, other_id, other_email)
    assert (await sendgrid_post(api, [event("spamreport", key2, x2, other_email)])).status_code == 204
    assert current(api, other_id) == {"marketing": "withdrawn", "sales": "withdrawn", "service": "withdrawn"}

    third_id, third_email = await email_contact(api)
    key3, x3 = sent_email(api, third_id, third_email, purpose="sales")
    await sendgrid_post(api, [event("group_unsubscribe", key3, x3, third_email, asm_group_id=42)])
    assert current(api, third_id) == {"marketing": "granted", "sales": "withdrawn"}
    await sendgrid_post(api, [event("group_resubscribe", key3, x3, third_email, asm_group_id=42)])
    assert current(api, third_id) == {"marketing": "granted", "sales": "granted"}


async def test_hard_bounce_marks_the_address_unusable_and_a_soft_one_does_not(api: Api) -> None:
    contact_id, email = await email_contact(api)
    key, x_id = sent_email(api, contact_id, email)
    soft = event("bounce", key, x_id, email, type="blocked", reason="450 mailbox busy")
    assert (await sendgrid_post(api, [soft])).status_code == 204
    assert contact_row(api, contact_id).email_unusable_reason is None
    hard = event("bounce", key, x_id, email, int(time.time()) + 1, type="bounce", reason="550 5.1.1 no such user")
    assert (await sendgrid_post(api, [hard])).status_code == 204
    assert "550 5.1.1" in (contact_row(api, contact_id).email_unusable_reason or "")
    assert status(api, key) == "bounced"


@pytest.mark.parametrize("attack", ["tampered", "wrong_key", "stale", "missing"])
async def test_bad_signatures_are_refused_with_403_and_nothing_stored(api: Api, attack: str) -> None:
    contact_id, email = await email_contact(api)
    key, x_id = sent_email(api, contact_id, email)
    body = json.dumps([event("unsubscribe", key, x_id, email)]).encode()
    headers = sendgrid_headers(body)
    if attack == "tampered":
        body = body.replace(b"unsubscribe", b"spamreport")
    elif attack == "wrong_key":
        headers = sendgrid_headers(body, key=ec.generate_private_key(ec.SECP256R1()))
    elif attack == "stale":
        headers = sendgrid_headers(body, age=6 * 60)
    else:
        headers.pop("X-Twilio-Email-Event-Webhook-Signature")
    before = counts(api)
    response = await api.http.post("/webhooks/sendgrid/events", content=body, headers=headers)
    problem_of(response, 403)
    assert counts(api) == before
    assert current(api, contact_id) == {"marketing": "granted", "sales": "granted"}


async def test_signed_but_malformed_bodies_are_422(api: Api) -> None:
    for body in (b"not json", b'{"event": "open"}'):
        response = await api.http.post("/webhooks/sendgrid/events", content=body, headers=sendgrid_headers(body))
        problem_of(response, 422)


async def test_events_without_our_key_are_tied_by_sendgrid_id_or_address(api: Api) -> None:
    contact_id, email = await email_contact(api)
    key, x_id = sent_email(api, contact_id, email)
    delivered = event("delivered", key, x_id, email)
    del delivered["message_key"]
    assert (await sendgrid_post(api, [delivered])).status_code == 204
    assert status(api, key) == "delivered"

    other_id, other_email = await email_contact(api)
    loose = {"email": other_email.upper(), "timestamp": int(time.time()), "event": "unsubscribe", "sg_event_id": "e1"}
    assert (await sendgrid_post(api, [loose])).status_code == 204
    assert set(current(api, other_id).values()) == {"withdrawn"}
