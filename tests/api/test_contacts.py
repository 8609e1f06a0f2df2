"""Contacts: upsert by external id, normalised addresses, errors that name the field, size limit."""

from __future__ import annotations

import json
import logging
import uuid

import pytest

from store.models import Contact
from store.repos.contacts import get_contact
from tests.api.conftest import Api, field_messages, problem_of


def ext() -> str:
    return f"crm-{uuid.uuid4().hex[:12]}"


async def test_create_then_update_by_external_id(api: Api) -> None:
    external_id = ext()
    created = await api.post(
        "/v1/contacts",
        {
            "external_id": external_id,
            "name": "Budi Santoso",
            "country": "id",
            "phone": "0812-3456-7890",
            "whatsapp": "whatsapp:+62 812 3456 7890",
            "email": "Budi@Example.COM",
            "timezone": "Asia/Jakarta",
            "locale": "id_id",
            "attributes": {"plan": "pro"},
        },
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert created.headers["location"] == f"/v1/contacts/{body['id']}"
    assert body["country"] == "ID"
    assert body["phone"] == "+6281234567890"
    assert body["whatsapp"] == "+6281234567890"
    assert body["email"] == "Budi@example.com"
    assert body["locale"] == "id-ID"
    assert body["attributes"] == {"plan": "pro"}

    updated = await api.post("/v1/contacts", {"external_id": external_id, "name": "Budi S.", "phone": "0813 9999 8888"})
    assert updated.status_code == 200, updated.text
    again = updated.json()
    assert again["id"] == body["id"]
    assert again["name"] == "Budi S."
    assert again["phone"] == "+6281399998888"  # national number read with the stored country
    assert again["email"] == "Budi@example.com"  # fields not sent are kept
    assert again["attributes"] == {"plan": "pro"}

    by_id = await api.get(f"/v1/contacts/{body['id']}")
    by_ext = await api.get(f"/v1/contacts/ext:{external_id}")
    assert by_id.status_code == by_ext.status_code == 200
    assert by_id.json() == by_ext.json() == again


async def test_null_clears_a_field(api: Api) -> None:
    contact = await api.new_contact(phone="+447911123456")
    response = await api.post("/v1/contacts", {"external_id": contact["external_id"], "phone": None})
    assert response.status_code == 200 and response.json()["phone"] is None


async def test_national_phone_without_country_names_the_field_and_the_fix(api: Api) -> None:
    external_id = ext()
    response = await api.post("/v1/contacts", {"external_id": external_id, "phone": "0812-3456"})
    body = problem_of(response, 422)
    messages = field_messages(body)
    assert set(messages) == {"phone"}
    assert "0812-3456" in messages["phone"] and "country" in messages["phone"]
    assert body["detail"].startswith("phone: ")
    # a failed request changes nothing
    problem_of(await api.get(f"/v1/contacts/ext:{external_id}"), 404)


async def test_unknown_timezone_is_refused(api: Api) -> None:
    response = await api.post("/v1/contacts", {"external_id": ext(), "timezone": "Mars/Base"})
    messages = field_messages(problem_of(response, 422))
    assert set(messages) == {"timezone"}
    assert "'Mars/Base' is not an IANA time zone" in messages["timezone"]
    assert "Asia/Jakarta" in messages["timezone"]


async def test_email_with_line_break_is_refused(api: Api) -> None:
    response = await api.post(
        "/v1/contacts", {"external_id": ext(), "email": "ana@example.com\r\nBcc: victim@example.com"}
    )
    messages = field_messages(problem_of(response, 422))
    assert set(messages) == {"email"} and "line break" in messages["email"]


async def test_malformed_whatsapp_number_names_the_field_and_the_form(api: Api) -> None:
    response = await api.post("/v1/contacts", {"external_id": ext(), "whatsapp": "wa:+6281234567890"})
    messages = field_messages(problem_of(response, 422))
    assert set(messages) == {"whatsapp"} and "whatsapp:+<number>" in messages["whatsapp"]


async def test_every_bad_field_is_reported_at_once(api: Api) -> None:
    response = await api.post(
        "/v1/contacts",
        {
            "external_id": ext(),
            "country": "XX",
            "locale": "english!",
            "timezone": "Asia/Jakartaa",
            "emial": "typo@example.com",
        },
    )
    messages = field_messages(problem_of(response, 422))
    assert set(messages) == {"country", "locale", "timezone", "emial"}
    assert "ISO 3166-1" in messages["country"]
    assert "BCP 47" in messages["locale"]
    assert "did you mean Asia/Jakarta" in messages["timezone"]
    assert "not a known field" in messages["emial"]


async def test_missing_external_id_and_bad_json(api: Api) -> None:
    messages = field_messages(problem_of(await api.post("/v1/contacts", {"name": "x"}), 422))
    assert messages == {"external_id": "is required"}
    response = await api.http.post(
        "/v1/contacts", content=b'{"external_id": ', headers={**api.auth(), "content-type": "application/json"}
    )
    assert "not valid JSON" in field_messages(problem_of(response, 422))["body"]
    response = await api.post("/v1/contacts", ["not", "an", "object"])
    assert "JSON object" in field_messages(problem_of(response, 422))["body"]


async def test_unknown_contact_is_404_problem(api: Api) -> None:
    assert "no such contact" in problem_of(await api.get("/v1/contacts/nope"), 404)["detail"]
    assert "POST /v1/contacts" in problem_of(await api.get("/v1/contacts/ext:nope"), 404)["detail"]
    problem_of(await api.get("/v1/contacts/nope/timeline"), 404)
    problem_of(await api.get("/v1/contacts/nope/decisions"), 404)


async def test_erased_contact_is_not_recreated(api: Api) -> None:
    contact = await api.new_contact()
    with api.sessions.begin() as session:
        row = get_contact(session, contact["id"])
        assert row is not None
        row.erased_at = row.created_at
    response = await api.post("/v1/contacts", {"external_id": contact["external_id"], "name": "Back"})
    assert "erased" in problem_of(response, 409)["detail"]


async def test_new_email_clears_the_unusable_mark(api: Api) -> None:
    contact = await api.new_contact()
    with api.sessions.begin() as session:
        session.get(Contact, contact["id"]).email_unusable_reason = "hard bounce"  # type: ignore[union-attr]
    await api.post("/v1/contacts", {"external_id": contact["external_id"], "email": "ana.new@example.com"})
    with api.sessions() as session:
        assert session.get(Contact, contact["id"]).email_unusable_reason is None  # type: ignore[union-attr]


BIG = 2 * 1024 * 1024 + 1


async def test_body_over_2_mb_is_413_by_content_length(api: Api) -> None:
    external_id = ext()
    payload = json.dumps({"external_id": external_id, "attributes": {"blob": "x" * BIG}}).encode()
    response = await api.http.post(
        "/v1/contacts", content=payload, headers={**api.auth(), "content-type": "application/json"}
    )
    assert "2 MB" in problem_of(response, 413)["detail"]
    problem_of(await api.get(f"/v1/contacts/ext:{external_id}"), 404)


async def test_body_over_2_mb_is_413_when_streamed(api: Api) -> None:
    external_id = ext()
    head = json.dumps({"external_id": external_id, "attributes": {"blob": ""}})[:-3].encode()

    async def chunks():
        yield head
        for _ in range(BIG // 65536 + 1):
            yield b"x" * 65536
        yield b'"}}'

    request = api.http.build_request(
        "POST", "/v1/contacts", content=chunks(), headers={**api.auth(), "content-type": "application/json"}
    )
    assert "content-length" not in request.headers
    problem_of(await api.http.send(request), 413)
    problem_of(await api.get(f"/v1/contacts/ext:{external_id}"), 404)


async def test_body_just_under_the_limit_is_accepted(api: Api) -> None:
    body = {"external_id": ext(), "attributes": {"blob": ""}}
    room = 2 * 1024 * 1024 - len(json.dumps(body).encode())
    body["attributes"]["blob"] = "x" * room  # type: ignore[index]
    payload = json.dumps(body).encode()
    assert len(payload) == 2 * 1024 * 1024
    response = await api.http.post(
        "/v1/contacts", content=payload, headers={**api.auth(), "content-type": "application/json"}
    )
    assert response.status_code == 201, response.text[:300]


async def test_unexpected_error_is_a_500_problem_without_internals(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    contact = await api.new_contact()

    def broken(session, contact_id):
        raise RuntimeError("secret internals")

    monkeypatch.setattr("api.routes.contacts.contact_timeline", broken)
    response = await api.get(f"/v1/contacts/{contact['id']}/timeline")
    body = problem_of(response, 500)
    assert "secret internals" not in response.text
    assert response.headers["x-request-id"] in body["detail"]


async def test_logs_name_the_route_not_the_address(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    contact = await api.new_contact(external_id="ana.wijaya@example.com")
    with caplog.at_level(logging.INFO, logger="omnireach.api"):
        response = await api.get("/v1/contacts/ext:ana.wijaya@example.com")
    assert response.status_code == 200 and response.json()["id"] == contact["id"]
    lines = [r.getMessage() for r in caplog.records if r.name == "omnireach.api"]
    assert any(
        "event=request" in line and "route=/v1/contacts/{contact_ref}" in line and "status=200" in line
        for line in lines
    ), lines
    assert "ana.wijaya" not in caplog.text and api.developer_key not in caplog.text


async def test_unknown_route_is_a_problem(api: Api) -> None:
    response = await api.http.get("/v1/nothing-here")
    assert "no such endpoint" in problem_of(response, 404)["detail"]
    problem_of(await api.http.put("/v1/contacts", json={}), 405)
