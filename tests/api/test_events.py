"""Custom events: recorded once per idempotency key, delivered to the contact's running enrollments."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from store.models import Event
from store.repos.enrollments import get_enrollment, record_enrollment_started
from tests.api.conftest import Api, eventually, field_messages, problem_of
from workflows.contact_cadence import ContactCadenceWorkflow, EnrollmentResult


def key() -> str:
    return f"evt-{uuid.uuid4().hex}"


async def running_enrollment(api: Api) -> tuple[dict, str]:
    """A contact enrolled in api-test, once the workflow has recorded its enrollment."""
    contact = await api.new_contact()
    response = await api.post("/v1/enrollments", {"contact_id": contact["id"], "cadence_id": "api-test"})
    workflow_id = response.json()["id"]

    def recorded() -> bool:
        with api.sessions() as session:
            row = get_enrollment(session, workflow_id)
            return row is not None and row.status == "running"

    await eventually(recorded)
    return contact, workflow_id


async def score(api: Api, workflow_id: str) -> int:
    view = await api.temporal.get_workflow_handle(workflow_id).query(ContactCadenceWorkflow.state)
    return view.score


def events_stored(api: Api, idempotency_key: str) -> int:
    with api.sessions() as session:
        return session.query(Event).filter(Event.idempotency_key == idempotency_key).count()


async def test_event_is_recorded_once_and_counted_once(api: Api) -> None:
    contact, workflow_id = await running_enrollment(api)
    body = {
        "contact_id": contact["id"],
        "name": "webinar.attended",
        "idempotency_key": key(),
        "occurred_at": "2026-11-03T10:05:00+07:00",
        "payload": {"webinar": 42},
    }
    first = await api.post("/v1/events", body)
    assert first.status_code == 201, first.text
    event = first.json()
    assert event["signaled"] == [workflow_id] and event["duplicate"] is False
    assert event["occurred_at"] == "2026-11-03T03:05:00Z" and event["payload"] == {"webinar": 42}
    await eventually(lambda: _score_is(api, workflow_id, 10))

    repeat = await api.post("/v1/events", body)
    assert repeat.status_code == 200, repeat.text
    assert repeat.json() == {**event, "duplicate": True, "signaled": []}
    await asyncio.sleep(0.5)
    assert await score(api, workflow_id) == 10  # webinar.attended scores 10, once
    assert events_stored(api, body["idempotency_key"]) == 1

    timeline = (await api.get(f"/v1/contacts/{contact['id']}/timeline")).json()["items"]
    assert [i["summary"] for i in timeline if i["kind"] == "event"] == ["webinar.attended"]


async def test_exit_event_ends_the_enrollment(api: Api) -> None:
    contact, workflow_id = await running_enrollment(api)
    response = await api.post(
        "/v1/events", {"contact_id": f"ext:{contact['external_id']}", "name": "purchased", "idempotency_key": key()}
    )
    assert response.status_code == 201 and response.json()["signaled"] == [workflow_id]
    handle = api.temporal.get_workflow_handle(workflow_id, result_type=EnrollmentResult)
    result = await asyncio.wait_for(handle.result(), timeout=20)
    assert (result.status, result.reason) == ("exited", "exit_on:purchased")


async def test_cadence_id_targets_one_enrollment_and_an_event_without_one_is_still_kept(api: Api) -> None:
    contact, workflow_id = await running_enrollment(api)
    aimed = await api.post(
        "/v1/events",
        {"contact_id": contact["id"], "name": "webinar.attended", "cadence_id": "api-test", "idempotency_key": key()},
    )
    assert aimed.json()["signaled"] == [workflow_id]
    assert aimed.json()["enrollment_id"] == workflow_id
    elsewhere = await api.post(
        "/v1/events",
        {
            "contact_id": contact["id"],
            "name": "webinar.attended",
            "cadence_id": "other-cadence",
            "idempotency_key": key(),
        },
    )
    assert elsewhere.status_code == 201 and elsewhere.json()["signaled"] == []
    lonely = await api.new_contact()
    response = await api.post("/v1/events", {"contact_id": lonely["id"], "name": "purchased", "idempotency_key": key()})
    assert response.status_code == 201 and response.json()["signaled"] == []


async def test_key_reused_for_another_event_is_409(api: Api) -> None:
    contact = await api.new_contact()
    reused = key()
    await api.post("/v1/events", {"contact_id": contact["id"], "name": "webinar.attended", "idempotency_key": reused})
    response = await api.post(
        "/v1/events", {"contact_id": contact["id"], "name": "purchased", "idempotency_key": reused}
    )
    assert "already used for another event" in problem_of(response, 409)["detail"]


async def test_bad_events_name_the_field(api: Api) -> None:
    contact = await api.new_contact()
    response = await api.post("/v1/events", {"contact_id": contact["id"], "name": "Webinar Attended!"})
    messages = field_messages(problem_of(response, 422))
    assert set(messages) == {"name", "idempotency_key"}
    assert messages["idempotency_key"] == "is required"
    response = await api.post("/v1/events", {"contact_id": "ext:nobody", "name": "purchased", "idempotency_key": key()})
    problem_of(response, 404)


async def test_temporal_down_is_503_and_the_event_is_not_recorded(api: Api, dead_api: httpx.AsyncClient) -> None:
    contact = await api.new_contact()
    with api.sessions.begin() as session:  # a running enrollment to deliver to
        record_enrollment_started(session, f"cadence:api-test:{contact['id']}", "api-test", contact["id"], None)
    body = {"contact_id": contact["id"], "name": "webinar.attended", "idempotency_key": key()}
    response = await dead_api.post("/v1/events", json=body, headers=api.auth())
    detail = problem_of(response, 503)["detail"]
    assert "was not recorded" in detail and "retry" in detail
    assert events_stored(api, body["idempotency_key"]) == 0


async def _score_is(api: Api, workflow_id: str, expected: int) -> bool:
    return await score(api, workflow_id) == expected
