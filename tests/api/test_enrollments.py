"""Enrollments on the real Temporal dev server: idempotent start, the first send, stop, failures."""

from __future__ import annotations

import asyncio

import httpx
from temporalio.client import WorkflowExecutionStatus

from store.models import Contact
from store.repos.enrollments import get_enrollment
from tests.api.conftest import Api, eventually, field_messages, problem_of
from workflows.contact_cadence import EnrollmentResult


async def enroll(api: Api, contact_ref: str, cadence_id: str = "api-test") -> httpx.Response:
    return await api.post("/v1/enrollments", {"contact_id": contact_ref, "cadence_id": cadence_id})


async def test_enrolling_twice_gives_one_workflow(api: Api) -> None:
    contact = await api.new_contact()
    await api.grant_email(contact["id"])
    first = await enroll(api, contact["id"])
    assert first.status_code == 201, first.text
    second = await enroll(api, f"ext:{contact['external_id']}")
    assert second.status_code == 200, second.text
    workflow_id = f"cadence:api-test:{contact['id']}"
    assert first.json() == {
        "id": workflow_id,
        "run_id": first.json()["run_id"],
        "status": "started",
        "cadence_id": "api-test",
        "contact_id": contact["id"],
    }
    assert second.json() == {**first.json(), "status": "already_running"}

    description = await api.temporal.get_workflow_handle(workflow_id).describe()
    assert description.status == WorkflowExecutionStatus.RUNNING
    assert description.run_id == first.json()["run_id"]
    assert description.workflow_type == "contact-cadence"


async def test_enrolled_contact_gets_the_first_message(api: Api) -> None:
    contact = await api.new_contact(name="Citra")
    await api.grant_email(contact["id"])
    assert (await enroll(api, contact["id"])).status_code == 201

    async def sent() -> list[dict]:
        items = (await api.get(f"/v1/contacts/{contact['id']}/timeline")).json()["items"]
        return [i for i in items if i["kind"] == "message"]

    [message] = await eventually(sent)
    assert message["summary"] == "email sent to ana@example.com: Hello Citra"
    assert message["detail"]["body"].startswith("Hi Citra, welcome.")
    decisions = (await api.get(f"/v1/contacts/{contact['id']}/decisions")).json()["decisions"]
    assert [(d["decision"], d["step_id"], d["reason"]) for d in decisions] == [("sent", "hello", "allowed")]


async def test_stop_ends_the_workflow_and_can_not_be_repeated(api: Api) -> None:
    contact = await api.new_contact()
    started = (await enroll(api, contact["id"])).json()
    workflow_id = started["id"]
    # the workflow records the enrollment itself (first activity)
    await eventually(lambda: _enrollment_status(api, workflow_id) == "running")

    response = await api.http.delete(f"/v1/enrollments/{workflow_id}", headers=api.auth())
    assert response.status_code == 202, response.text
    assert response.json() == {"id": workflow_id, "status": "stopping", "reason": "stopped via API"}

    handle = api.temporal.get_workflow_handle(workflow_id, result_type=EnrollmentResult)
    result = await asyncio.wait_for(handle.result(), timeout=20)
    assert (result.status, result.reason) == ("stopped", "stopped via API")
    await eventually(lambda: _enrollment_status(api, workflow_id) == "stopped")

    again = await api.http.delete(f"/v1/enrollments/{workflow_id}", headers=api.auth())
    assert "no running enrollment" in problem_of(again, 404)["detail"]

    # enrolling after a stop starts a new run
    restarted = await enroll(api, contact["id"])
    assert restarted.status_code == 201 and restarted.json()["run_id"] != started["run_id"]


async def test_unknown_enrollment_is_404(api: Api) -> None:
    response = await api.http.delete("/v1/enrollments/cadence:api-test:nobody", headers=api.auth())
    assert "cadence:{cadence_id}:{contact_id}" in problem_of(response, 404)["detail"]


async def test_unknown_cadence_lists_the_known_ones(api: Api) -> None:
    contact = await api.new_contact()
    messages = field_messages(problem_of(await enroll(api, contact["id"], "no-such-cadence"), 422))
    assert messages == {"cadence_id": "unknown cadence 'no-such-cadence'; known cadences: api-test"}


async def test_unknown_or_erased_contact(api: Api) -> None:
    body = problem_of(await enroll(api, "ext:nobody-here"), 404)
    assert body["detail"].startswith("contact_id 'ext:nobody-here': no such contact")
    contact = await api.new_contact()
    with api.sessions.begin() as session:
        row = session.get(Contact, contact["id"])
        assert row is not None
        row.erased_at = row.created_at
    assert "erased" in problem_of(await enroll(api, contact["id"]), 409)["detail"]


async def test_temporal_down_is_503_and_nothing_is_recorded(api: Api, dead_api: httpx.AsyncClient) -> None:
    contact = await api.new_contact()
    response = await dead_api.post(
        "/v1/enrollments", json={"contact_id": contact["id"], "cadence_id": "api-test"}, headers=api.auth()
    )
    body = problem_of(response, 503)
    assert "was not started" in body["detail"] and "retry" in body["detail"]
    assert _enrollment_status(api, f"cadence:api-test:{contact['id']}") is None

    health = await dead_api.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok", "temporal": "unreachable"}

    stop = await dead_api.delete(f"/v1/enrollments/cadence:api-test:{contact['id']}", headers=api.auth())
    problem_of(stop, 503)


def _enrollment_status(api: Api, workflow_id: str) -> str | None:
    with api.sessions() as session:
        row = get_enrollment(session, workflow_id)
        return row.status if row else None
