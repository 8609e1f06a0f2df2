"""Consent evidence: append-only grants and withdrawals, demonstrable, readable back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.api.conftest import Api, field_messages, problem_of

GRANT = {
    "channel": "whatsapp",
    "purpose": "marketing",
    "status": "granted",
    "method": "web_form",
    "source": "https://example.com/ebook",
    "notice_text": "Kirimi saya undangan webinar lewat WhatsApp.",
    "notice_version": "2026-01",
    "ip": "203.0.113.7",
    "occurred_at": "2026-11-02T09:30:00+07:00",
    "source_timezone": "Asia/Jakarta",
}


async def test_grant_round_trip(api: Api) -> None:
    contact = await api.new_contact(country="ID", whatsapp="0812 3456 7890", timezone="Asia/Jakarta")
    response = await api.post(f"/v1/contacts/ext:{contact['external_id']}/consents", GRANT)
    assert response.status_code == 201, response.text
    record = response.json()
    assert record["contact_id"] == contact["id"]
    assert record["address"] == "+6281234567890"  # copied from the contact
    assert record["occurred_at"] == "2026-11-02T02:30:00Z"  # stored in UTC ...
    assert record["source_timezone"] == "Asia/Jakarta"  # ... with the person's zone kept
    assert record["lawful_basis"] == "consent"
    for key in ("method", "source", "notice_text", "notice_version", "ip"):
        assert record[key] == GRANT[key]

    ledger = (await api.get(f"/v1/contacts/{contact['id']}/consents")).json()
    assert ledger == [record]
    current = (await api.get(f"/v1/contacts/{contact['id']}")).json()["consents"]
    assert current == [
        {
            "channel": "whatsapp",
            "purpose": "marketing",
            "status": "granted",
            "occurred_at": "2026-11-02T02:30:00Z",
            "record_id": record["id"],
        }
    ]
    timeline = (await api.get(f"/v1/contacts/{contact['id']}/timeline")).json()["items"]
    assert [(i["kind"], i["summary"]) for i in timeline] == [
        ("consent", "whatsapp/marketing consent granted via web_form")
    ]


async def test_withdrawal_is_as_easy_as_granting(api: Api) -> None:
    contact = await api.new_contact(country="ID", whatsapp="+6281234567890")
    await api.post(f"/v1/contacts/{contact['id']}/consents", GRANT)
    response = await api.post(
        f"/v1/contacts/{contact['id']}/consents", {"channel": "whatsapp", "purpose": "marketing", "status": "withdrawn"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["method"] == "api" and response.json()["lawful_basis"] is None
    current = (await api.get(f"/v1/contacts/{contact['id']}")).json()["consents"]
    assert [(c["channel"], c["status"]) for c in current] == [("whatsapp", "withdrawn")]
    ledger = (await api.get(f"/v1/contacts/{contact['id']}/consents")).json()
    assert [r["status"] for r in ledger] == ["granted", "withdrawn"]  # appended, nothing overwritten


async def test_grant_needs_its_evidence(api: Api) -> None:
    contact = await api.new_contact()
    response = await api.post(
        f"/v1/contacts/{contact['id']}/consents", {"channel": "email", "purpose": "marketing", "status": "granted"}
    )
    messages = field_messages(problem_of(response, 422))
    assert set(messages) == {"method", "source", "notice_text"}
    assert all("required for a grant" in m for m in messages.values())
    assert (await api.get(f"/v1/contacts/{contact['id']}/consents")).json() == []


async def test_grant_without_an_address_for_the_channel_is_refused(api: Api) -> None:
    contact = await api.new_contact()  # email only
    response = await api.post(f"/v1/contacts/{contact['id']}/consents", {**GRANT, "channel": "sms"})
    messages = field_messages(problem_of(response, 422))
    assert "no phone" in messages["channel"] and "POST /v1/contacts" in messages["channel"]


async def test_times_need_an_offset_and_must_not_be_in_the_future(api: Api) -> None:
    contact = await api.new_contact(country="ID", whatsapp="+6281234567890")
    url = f"/v1/contacts/{contact['id']}/consents"
    naive = await api.post(url, {**GRANT, "occurred_at": "2026-11-02T09:30:00"})
    assert "UTC offset" in field_messages(problem_of(naive, 422))["occurred_at"]
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    future = await api.post(url, {**GRANT, "occurred_at": later})
    assert "in the future" in field_messages(problem_of(future, 422))["occurred_at"]
    zone = await api.post(url, {**GRANT, "source_timezone": "Mars/Base"})
    assert "IANA" in field_messages(problem_of(zone, 422))["source_timezone"]


async def test_unknown_channel_purpose_and_contact(api: Api) -> None:
    contact = await api.new_contact()
    response = await api.post(
        f"/v1/contacts/{contact['id']}/consents", {**GRANT, "channel": "pigeon", "purpose": "fun", "ip": "999.1.1.1"}
    )
    messages = field_messages(problem_of(response, 422))
    assert set(messages) == {"channel", "purpose", "ip"}
    assert "'email'" in messages["channel"] and "'marketing'" in messages["purpose"]
    problem_of(await api.post("/v1/contacts/ext:nobody/consents", GRANT), 404)
