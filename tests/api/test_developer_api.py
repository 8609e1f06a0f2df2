"""The developer API's cross-cutting rules: idempotency keys, cursor pagination, reports, webhook endpoints."""

from __future__ import annotations

import uuid
from datetime import timedelta
from urllib.parse import quote

from sqlalchemy import func, select

from store.models import ConsentRecord
from store.repos.enrollments import record_enrollment_started
from store.repos.outbox import claim_outbox, mark_outbox_sent
from store.repos.webhooks import record_attempt, record_business_event
from store.types import utcnow
from tests.api.conftest import ADMIN_KEY, Api, field_messages, problem_of

GRANT = {
    "channel": "email",
    "purpose": "marketing",
    "status": "granted",
    "method": "web_form",
    "source": "https://example.com/ebook",
    "notice_text": "Send me webinar invitations by email.",
}


async def idem_post(api: Api, url: str, body: dict, key: str, api_key: str | None = None):
    return await api.http.post(url, json=body, headers={**api.auth(api_key), "Idempotency-Key": key})


async def test_a_retried_post_with_the_same_key_replays_and_acts_once(api: Api) -> None:
    contact = await api.new_contact()
    url = f"/v1/contacts/{contact['id']}/consents"
    key = f"grant-{uuid.uuid4()}"
    first = await idem_post(api, url, GRANT, key)
    again = await idem_post(api, url, GRANT, key)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert again.json() == first.json()
    with api.sessions() as session:
        count = session.scalar(select(func.count()).where(ConsentRecord.contact_id == contact["id"]))
    assert count == 1  # the consent ledger got one record, not two

    other = await idem_post(api, url, {**GRANT, "channel": "sms"}, key)  # same key, another request
    assert field_messages(problem_of(other, 422)).keys() == {"Idempotency-Key"}
    bad = await idem_post(api, url, GRANT, "has spaces in it")
    assert "Idempotency-Key" in problem_of(bad, 422)["detail"]
    # Keys belong to the API key that used them: another caller's identical key is a new request.
    mine = await idem_post(api, "/v1/contacts", {"external_id": f"crm-{uuid.uuid4().hex[:8]}"}, key, ADMIN_KEY)
    assert mine.status_code == 201 and "idempotent-replayed" not in mine.headers


async def test_failed_requests_are_not_kept_so_a_retry_really_retries(api: Api) -> None:
    key = f"k-{uuid.uuid4()}"
    missing = await idem_post(api, "/v1/contacts/ext:not-yet/consents", GRANT, key)
    problem_of(missing, 404)  # a 4xx answer is kept and replayed like any other
    assert (await idem_post(api, "/v1/contacts/ext:not-yet/consents", GRANT, key)).headers["idempotent-replayed"]
    unauthorised = await api.http.post(
        "/v1/contacts", json={}, headers={"Authorization": "Bearer nope", "Idempotency-Key": key}
    )
    problem_of(unauthorised, 401)


async def test_enrollments_are_listed_page_by_page_with_cursors(api: Api) -> None:
    contacts = [await api.new_contact() for _ in range(5)]
    cadence = f"page-{uuid.uuid4().hex[:6]}"
    with api.sessions.begin() as session:
        for c in contacts:
            record_enrollment_started(session, f"cadence:{cadence}:{c['id']}", cadence, c["id"], None)
    seen, cursor, pages = [], None, 0
    while True:
        query = f"/v1/enrollments?cadence_id={cadence}&limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = (await api.get(query)).json()
        seen += [e["contact_id"] for e in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and sorted(seen) == sorted(c["id"] for c in contacts)
    one = (await api.get(f"/v1/enrollments?contact_id=ext:{contacts[0]['external_id']}")).json()
    assert [e["cadence_id"] for e in one["items"]] == [cadence] and one["next_cursor"] is None
    problem = problem_of(await api.get("/v1/enrollments?cursor=garbage!"), 422)
    assert field_messages(problem).keys() == {"cursor"}
    problem_of(await api.get("/v1/enrollments?limit=0"), 422)


async def test_the_timeline_pages_without_gaps_or_repeats(api: Api) -> None:
    contact = await api.new_contact()
    for channel in ("email", "email", "email"):
        status = "granted"
        await api.post(f"/v1/contacts/{contact['id']}/consents", {**GRANT, "channel": channel, "status": status})
    everything = (await api.get(f"/v1/contacts/{contact['id']}/timeline")).json()["items"]
    paged, cursor = [], None
    while True:
        url = f"/v1/contacts/{contact['id']}/timeline?limit=1" + (f"&cursor={cursor}" if cursor else "")
        body = (await api.get(url)).json()
        paged += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert len(everything) == 3 and paged == everything


async def test_reports_from_recorded_facts(api: Api) -> None:
    contact = await api.new_contact()
    cadence = f"rep-{uuid.uuid4().hex[:6]}"
    enrollment = f"cadence:{cadence}:{contact['id']}"
    start = utcnow() - timedelta(days=3)
    with api.sessions.begin() as session:
        record_enrollment_started(session, enrollment, cadence, contact["id"], None, started_at=start)
        key = f"{enrollment}/invite/1"
        claim_outbox(
            session,
            message_key=key,
            enrollment_id=enrollment,
            contact_id=contact["id"],
            cadence_id=cadence,
            step_id="invite",
            channel="email",
            variant="a",
            to_address="ana@example.com",
        )
        mark_outbox_sent(session, key, "console", None, sent_at=start)
        common = {"contact_id": contact["id"], "enrollment_id": enrollment, "cadence_id": cadence}
        record_business_event(
            session,
            kind="mql.created",
            key=f"{enrollment}/mql",
            occurred_at=start + timedelta(hours=1),
            payload={"queue": "telemarketing", "sla_seconds": 3600},
            **common,
        )
        record_business_event(
            session,
            kind="task.disposed",
            key=f"{enrollment}/call",
            occurred_at=start + timedelta(hours=2),
            payload={"queue": "telemarketing", "disposition": "won", "talk_seconds": 600, "handle_seconds": 1200},
            **common,
        )
        record_business_event(
            session,
            kind="deal.won",
            key=f"{enrollment}/won",
            occurred_at=start + timedelta(days=2),
            payload={"amount": 250.0},
            **common,
        )
    funnel = (await api.get(f"/v1/reports/funnel?cadence_id={cadence}")).json()
    [row] = funnel["cadences"]
    assert (row["enrolled"], row["contacted"], row["mql"], row["connected"], row["won"]) == (1, 1, 1, 1, 1)
    assert row["revenue"] == 250.0 and row["median_days_to_close"] == 2.0
    # costs.yaml: email 0.001 + 10 min x 0.014 + 1/3 h x 18.0
    assert funnel["costs_configured"] and row["cost"] == round(0.001 + 0.14 + 6.0, 10)
    assert row["cac"] == row["cost"] and row["cost_per_lead"] == row["cost"]

    steps = (await api.get(f"/v1/reports/steps?cadence_id={cadence}&goal=won")).json()["steps"]
    assert [(s["step_id"], s["variant"], s["sent"], s["conversions"]) for s in steps] == [("invite", "a", 1, 1)]
    [sla] = (await api.get(f"/v1/reports/sla?cadence_id={cadence}")).json()["rows"]
    # called 1h after the MQL, its SLA was 1h: within (a deadline is inclusive)
    assert (sla["stage"], sla["within_sla"], sla["breached"]) == ("mql", 1, 0)
    assert sla["median_seconds_to_first_call"] == 3600
    since = quote(utcnow().isoformat())  # "+00:00" must be escaped in a query string
    later = (await api.get(f"/v1/reports/funnel?cadence_id={cadence}&since={since}")).json()
    assert later["cadences"] == []  # the cohort started before "since"
    problem = problem_of(await api.get("/v1/reports/funnel?since=yesterday"), 422)
    assert field_messages(problem).keys() == {"since"}
    problem_of(await api.get("/v1/reports/funnel", key=api.agent_key), 403)


async def test_webhook_endpoints_are_admin_only_and_show_their_delivery_log(api: Api) -> None:
    body = {"url": "https://crm.example.com/hooks", "event_kinds": ["deal.won"]}
    problem_of(await api.post("/v1/webhook-endpoints", body), 403)
    created = await api.post("/v1/webhook-endpoints", body, key=ADMIN_KEY)
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["event_kinds"] == ["deal.won"]
    bad = await api.post("/v1/webhook-endpoints", {"url": "ftp://x", "event_kinds": ["nope"]}, key=ADMIN_KEY)
    assert field_messages(problem_of(bad, 422)).keys() == {"url", "event_kinds.0"}

    with api.sessions.begin() as session:
        recorded = record_business_event(session, kind="deal.won", key=f"hook-{uuid.uuid4()}", payload={"amount": 1})
        ignored = record_business_event(session, kind="mql.created", key=f"hook-{uuid.uuid4()}")
        [delivery] = [d for d in recorded.deliveries if d.endpoint_id == endpoint["id"]]
        assert all(d.endpoint_id != endpoint["id"] for d in ignored.deliveries)
        record_attempt(session, delivery.id, status_code=500, error="HTTP 500", duration_ms=3, delivered=False)
        record_attempt(session, delivery.id, status_code=200, error=None, duration_ms=2, delivered=True)
    log = (await api.get(f"/v1/webhook-endpoints/{endpoint['id']}/deliveries", key=ADMIN_KEY)).json()
    [item] = log["items"]
    assert (item["kind"], item["status"], item["attempts"]) == ("deal.won", "delivered", 2)
    assert [a["status_code"] for a in item["log"]] == [500, 200]

    listed = (await api.get("/v1/webhook-endpoints?limit=200", key=ADMIN_KEY)).json()["items"]
    assert endpoint["id"] in {e["id"] for e in listed} and all("secret" not in e for e in listed)
    disabled = await api.http.delete(f"/v1/webhook-endpoints/{endpoint['id']}", headers=api.auth(ADMIN_KEY))
    assert disabled.json()["disabled_at"] is not None
    problem_of(await api.get("/v1/webhook-endpoints/we_nope", key=ADMIN_KEY), 404)


async def test_cadences_serve_the_snapshot_foreign_callers_start_with(api: Api) -> None:
    [summary] = (await api.get("/v1/cadences")).json()
    cadence = (await api.get(f"/v1/cadences/{summary['id']}")).json()
    assert cadence["snapshot"]["id"] == summary["id"] == "api-test"
    assert cadence["snapshot_hash"] == summary["snapshot_hash"]
    problem_of(await api.get("/v1/cadences/nope"), 404)
