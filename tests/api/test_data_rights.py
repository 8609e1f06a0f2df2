"""GET /v1/contacts/{id}/export and DELETE /v1/contacts/{id}: access and erasure."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from core.settings import Settings
from store.models import OutboxMessage, Suppression
from store.permission_models import ErasureRequest, InboundMessage
from tests.api.conftest import Api, eventually, problem_of
from tests.api.webhook_helpers import grant, inbound, phone, twilio_post, webhook_settings, write_project


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("rights"))


@pytest.fixture(scope="module")
def settings(project: Path) -> Settings:
    return webhook_settings(project)


async def person(api: Api) -> dict:
    tag = uuid.uuid4().hex[:8]
    number = phone()
    contact = await api.new_contact(
        external_id=f"crm-{tag}",
        name=f"Dewi Lestari {tag}",
        email=f"dewi.{tag}@example.id",
        phone=number,
        whatsapp=number,
        attributes={"plan": "pro", "nickname": f"dl-{tag}"},
    )
    await grant(api, contact["id"], "sms")
    await grant(api, contact["id"], "email")
    return contact


def personal_strings(contact: dict) -> list[str]:
    return [contact["name"], contact["email"], contact["phone"], contact["external_id"], "203.0.113.7", "dl-"]


async def test_export_holds_everything_about_the_contact(api: Api) -> None:
    contact = await person(api)
    await twilio_post(api, "/webhooks/twilio/inbound", inbound(contact["phone"], "Is there a recording?"))
    response = await api.get(f"/v1/contacts/{contact['id']}/export")
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["contact"]["email"] == contact["email"] and data["contact"]["attributes"]["plan"] == "pro"
    assert {(c["channel"], c["status"]) for c in data["consents"]} == {("sms", "granted"), ("email", "granted")}
    assert data["consents"][0]["ip"] == "203.0.113.7" and data["consents"][0]["notice_text"]
    assert [m["body"] for m in data["inbound_messages"]] == ["Is there a recording?"]
    assert [e["name"] for e in data["events"]] == ["sms.replied"]
    assert data["erasure"] is None
    problem_of(await api.get(f"/v1/contacts/{contact['id']}/export", key=api.agent_key), 403)
    problem_of(await api.get("/v1/contacts/no-such-id/export"), 404)


async def test_erasure_forgets_the_person_stops_enrollments_and_refuses_them_later(api: Api) -> None:
    contact = await person(api)
    await twilio_post(api, "/webhooks/twilio/inbound", inbound(contact["phone"], "call me at 5"))
    started = await api.post("/v1/enrollments", {"contact_id": contact["id"], "cadence_id": "sms-nurture"})
    assert started.status_code == 201, started.text
    workflow_id = started.json()["id"]

    def sent():
        with api.sessions() as session:
            return session.scalars(select(OutboxMessage).where(OutboxMessage.contact_id == contact["id"])).first()

    await eventually(sent)  # the first SMS went out; the enrollment now waits 3 days
    await eventually(lambda: _running(api, workflow_id))

    response = await api.http.delete(f"/v1/contacts/{contact['id']}", headers=api.auth())
    assert response.status_code == 200, response.text
    erased = response.json()
    assert erased["enrollments_stopped"] == [workflow_id] and erased["address_hashes_kept"] == 2
    assert erased["consent_records_summarised"] == 2

    result = await api.temporal.get_workflow_handle(workflow_id).result()
    assert result["status"] == "stopped"

    export = await api.get(f"/v1/contacts/{contact['id']}/export")
    assert export.status_code == 200
    dumped = json.dumps(export.json())
    for secret in personal_strings(contact):
        assert secret not in dumped, secret
    data = export.json()
    assert data["consents"] == [] and data["contact"]["erased_at"] is not None
    assert [m["to"] for m in data["messages"]] == ["[erased]"] and data["messages"][0]["body"] is None
    assert data["erasure"]["consent_summary"][0]["record_sha256"]
    assert {s["kind"] for s in data["suppressions"]} == set()  # the hashes match no address any more

    with api.sessions() as session:
        hashes = session.scalars(select(Suppression).where(Suppression.kind == "erasure")).all()
        request = session.scalars(select(ErasureRequest).where(ErasureRequest.contact_id == contact["id"])).one()
        assert set(request.address_hashes) <= {h.value_hash for h in hashes}
        assert all(h.value is None for h in hashes)

    # The same phone or email, under a new external id: refused with the reason.
    again = await api.post(
        "/v1/contacts", {"external_id": f"new-{uuid.uuid4().hex[:6]}", "phone": contact["phone"], "country": "GB"}
    )
    body = problem_of(again, 409)
    assert "erased at their request" in body["detail"] and "phone" in body["detail"]
    by_email = await api.post("/v1/contacts", {"external_id": f"new-{uuid.uuid4().hex[:6]}", "email": contact["email"]})
    assert "email" in problem_of(by_email, 409)["detail"]
    same_id = await api.post("/v1/contacts", {"external_id": contact["external_id"], "name": "X"})
    assert "erased" in problem_of(same_id, 409)["detail"]

    # Re-enrolling the erased contact is refused too.
    refused = await api.post("/v1/enrollments", {"contact_id": contact["id"], "cadence_id": "sms-nurture"})
    assert "erased" in problem_of(refused, 409)["detail"]

    # A text from the erased person is answered with nothing stored about them.
    late = await twilio_post(api, "/webhooks/twilio/inbound", inbound(contact["phone"], "STOP"))
    assert late.status_code == 200 and "<Message>" not in late.text
    with api.sessions() as session:
        assert session.scalars(select(Suppression).where(Suppression.value == contact["phone"])).first() is None
        assert (
            session.scalars(select(InboundMessage).where(InboundMessage.from_address == contact["phone"])).first()
            is None
        )

    # A repeat DELETE answers with the first erasure.
    repeat = await api.http.delete(f"/v1/contacts/{contact['id']}", headers=api.auth())
    assert repeat.status_code == 200 and repeat.json()["already_erased"] is True


async def test_an_older_duplicate_of_an_erased_person_cannot_be_enrolled(api: Api) -> None:
    original = await person(api)
    twin = await api.new_contact(phone=original["phone"])  # a duplicate record made earlier
    assert (await api.http.delete(f"/v1/contacts/{original['id']}", headers=api.auth())).status_code == 200
    refused = await api.post("/v1/enrollments", {"contact_id": twin["id"], "cadence_id": "sms-nurture"})
    body = problem_of(refused, 409)
    assert "erased at their request" in body["detail"] and "phone" in body["detail"]


async def test_enrollments_arriving_together_each_get_their_own_answer(api: Api) -> None:
    """Their contact checks are made together (api.group_commit): a refusal is its own request's only."""
    people = [await person(api) for _ in range(4)]
    original = await person(api)
    twin = await api.new_contact(phone=original["phone"])
    assert (await api.http.delete(f"/v1/contacts/{original['id']}", headers=api.auth())).status_code == 200
    refs = [people[0]["id"], twin["id"], people[1]["id"], str(uuid.uuid4()), f"ext:{people[2]['external_id']}"]
    refs += [original["id"], people[3]["id"]]
    answers = await asyncio.gather(
        *(api.post("/v1/enrollments", {"contact_id": ref, "cadence_id": "sms-nurture"}) for ref in refs)
    )
    assert [a.status_code for a in answers] == [201, 409, 201, 404, 201, 409, 201], [a.text for a in answers]
    assert [a.json()["contact_id"] for a in answers if a.status_code == 201] == [p["id"] for p in people]
    assert "the phone belongs to a person erased" in answers[1].json()["detail"]
    assert "this contact was erased on" in answers[5].json()["detail"]


async def test_the_ledger_stays_append_only_for_contacts_not_erased(api: Api) -> None:
    contact = await person(api)
    with pytest.raises(DBAPIError, match="append-only"), api.sessions.begin() as session:
        session.execute(text("DELETE FROM consent_records WHERE contact_id = :c"), {"c": contact["id"]})
    with pytest.raises(DBAPIError, match="append-only"), api.sessions.begin() as session:
        session.execute(text("UPDATE consent_records SET ip = NULL WHERE contact_id = :c"), {"c": contact["id"]})


def _running(api: Api, workflow_id: str) -> bool:
    from store.models import Enrollment

    with api.sessions() as session:
        row = session.get(Enrollment, workflow_id)
        return row is not None and row.status == "running"
