"""The task API: who may see, claim, release and dispose of which task (403s), claim order and calling-hour
and DNC checks, disposition data rules, SLA state. Tasks are made directly in the store here (the call-task
workflow's part is tested in tests/workflows and tests/e2e)."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from store.repos.api_keys import create_api_key
from store.repos.consent import append_consent
from store.repos.contacts import upsert_contact
from store.repos.enrollments import record_enrollment_started
from store.repos.suppressions import add_suppression, find_suppression
from store.repos.tasks import create_task, upsert_agent, upsert_queue
from tests.api.conftest import Api, problem_of

ALWAYS = {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "hours": "00:00-24:00"}


@dataclass
class Floor:
    """Two queues with their own agents, a supervisor, and keys for each."""

    sales: str
    marketing: str
    ani: str  # telemarketing agent key
    budi: str  # telemarketing agent key
    sari: str  # telesales agent key
    spv: str  # supervisor key


@pytest.fixture
def floor(api: Api) -> Floor:
    tag = uuid.uuid4().hex[:6]
    marketing, sales = f"tm-{tag}", f"ts-{tag}"
    keys = {}
    with api.sessions.begin() as session:
        upsert_queue(session, marketing, calling_hours=ALWAYS, sla_seconds=86400)
        upsert_queue(session, sales, calling_hours=ALWAYS, sla_seconds=14400)
        for name, queues, role in (
            ("ani", [marketing], "agent"),
            ("budi", [marketing], "agent"),
            ("sari", [sales], "agent"),
            ("spv", [], "supervisor"),
        ):
            agent_id = f"{name}-{tag}"
            upsert_agent(session, agent_id, name=name.title(), queues=queues, role=role)
            _, keys[name] = create_api_key(session, f"agent {agent_id}", ["agent"], agent_id=agent_id)
    return Floor(sales, marketing, **keys)


def new_task(api: Api, queue: str, *, due_in: timedelta = timedelta(hours=4), phone: str | None = None, **extra) -> str:
    with api.sessions.begin() as session:
        contact, _ = upsert_contact(
            session,
            external_id=f"crm-{uuid.uuid4().hex[:10]}",
            name="Rina Hartono",
            phone=phone or f"+6281{uuid.uuid4().int % 10**9:09d}",
            country="DE",
            timezone=extra.pop("timezone", "Europe/Berlin"),
        )
        append_consent(session, contact_id=contact.id, channel="voice", purpose="marketing", status="granted")
        now = datetime.now(UTC)
        task, _ = create_task(
            session,
            id=str(uuid.uuid4()),
            created_at=now,
            due_at=now + due_in,
            contact_id=contact.id,
            queue=queue,
            kind="escalate",
            purpose="marketing",
            script="qualify",
            script_text="# Qualify\nAsk about **Tax 101**",
            facts={"title": "Tax 101"},
            score=12,
            status="open",
            priority=extra.pop("priority", 0),
        )
        return task.id


async def claim(api: Api, key: str, **body) -> object:
    return await api.post("/v1/tasks/claim", body, key)


async def test_an_agent_sees_only_its_queues_open_tasks(api: Api, floor: Floor) -> None:
    mine = new_task(api, floor.marketing)
    other = new_task(api, floor.sales)
    listed = await api.get("/v1/tasks", floor.ani)
    assert listed.status_code == 200, listed.text
    ids = {t["id"] for t in listed.json()}
    assert mine in ids and other not in ids
    assert {t["queue"] for t in listed.json()} == {floor.marketing}
    problem_of(await api.get(f"/v1/tasks?queue={floor.sales}", floor.ani), 403)


async def test_an_agent_cannot_read_or_claim_another_queues_task(api: Api, floor: Floor) -> None:
    task = new_task(api, floor.sales)
    body = problem_of(await api.get(f"/v1/tasks/{task}", floor.ani), 403)
    assert floor.sales in body["detail"]
    problem_of(await claim(api, floor.ani, task_id=task), 403)
    problem_of(await claim(api, floor.ani, queue=floor.sales), 403)
    assert (await api.get(f"/v1/tasks/{task}", floor.sari)).status_code == 200


async def test_an_agent_cannot_touch_another_agents_claimed_task(api: Api, floor: Floor) -> None:
    task = new_task(api, floor.marketing, priority=100)
    claimed = await claim(api, floor.ani, task_id=task)
    assert claimed.status_code == 200, claimed.text
    assert claimed.json()["claimed_by"].startswith("ani-") and claimed.json()["status"] == "claimed"

    problem_of(await api.get(f"/v1/tasks/{task}", floor.budi), 403)
    problem_of(await claim(api, floor.budi, task_id=task), 403)
    problem_of(await api.post(f"/v1/tasks/{task}/disposition", {"disposition": "qualified"}, floor.budi), 403)
    problem_of(await api.post(f"/v1/tasks/{task}/release", {}, floor.budi), 403)
    assert task not in {t["id"] for t in (await api.get("/v1/tasks", floor.budi)).json()}
    assert task in {t["id"] for t in (await api.get("/v1/tasks", floor.ani)).json()}
    supervisor = await api.get(f"/v1/tasks/{task}", floor.spv)  # supervisors see every queue and agent
    assert supervisor.status_code == 200 and supervisor.json()["claimed_by"].startswith("ani-")


async def test_keys_without_an_agent_cannot_claim(api: Api, floor: Floor) -> None:
    problem_of(await api.get("/v1/tasks"), 403)  # a developer key has no desk
    admin = await api.get("/v1/tasks", "admin-test-key-0123456789")
    assert admin.status_code == 200
    problem_of(await claim(api, "admin-test-key-0123456789"), 403)
    problem_of(await api.get("/v1/tasks", api.agent_key), 403)  # agent 'ana' has no agent record


async def test_claim_takes_the_most_urgent_task_with_its_context_then_204(api: Api, floor: Floor) -> None:
    queue = floor.sales
    later = new_task(api, queue, due_in=timedelta(hours=3))
    sooner = new_task(api, queue, due_in=timedelta(hours=1))
    first = await claim(api, floor.sari, queue=queue)
    assert first.status_code == 200 and first.json()["id"] == sooner
    detail = first.json()
    assert detail["script_text"].startswith("# Qualify") and detail["facts"] == {"title": "Tax 101"}
    assert detail["contact"]["name"] == "Rina Hartono" and detail["contact"]["phone"].startswith("+6281")
    assert {"channel": "voice", "purpose": "marketing", "status": "granted"}.items() <= detail["consents"][0].items()
    assert detail["sla"]["state"] == "met" and detail["score"] == 12
    assert (await claim(api, floor.sari, queue=queue)).json()["id"] == later
    nothing = await claim(api, floor.sari, queue=queue)
    assert nothing.status_code == 204 and nothing.content == b""


async def test_agents_claiming_at_once_each_get_their_own_task_and_a_refused_claim_is_only_its_own(
    api: Api, floor: Floor
) -> None:
    """Claims of the next task run in transactions shared by the agents claiming at the same moment; a claim
    refused among them (sari does not work the marketing queue) answers only its own agent."""
    assert api.services is not None
    groups = api.services.db.claim_groups
    tasks = {new_task(api, floor.marketing) for _ in range(6)}
    keys = [floor.ani, floor.budi] * 3
    *answers, refused = await asyncio.gather(
        *(claim(api, key, queue=floor.marketing) for key in keys), claim(api, floor.sari, queue=floor.marketing)
    )
    problem_of(refused, 403)
    assert [a.status_code for a in answers] == [200] * 6, [a.text for a in answers]
    claimed = [a.json() for a in answers]
    assert {c["id"] for c in claimed} == tasks  # six claims, six different tasks
    for key, detail in zip(keys, claimed, strict=True):
        assert detail["status"] == "claimed"
        assert detail["claimed_by"] == ("ani" if key == floor.ani else "budi") + floor.marketing.removeprefix("tm")
        assert detail["script_text"].startswith("# Qualify")
    before = groups.calls
    assert (await claim(api, floor.ani, queue=floor.marketing)).status_code == 204
    assert groups.calls == before + 1  # "next task" goes through the claim groups


async def test_claim_skips_contacts_outside_calling_hours_and_cancels_do_not_call(api: Api, floor: Floor) -> None:
    hour = datetime.now(UTC).hour
    start = (hour + 3) % 22
    closed = f"closed-{uuid.uuid4().hex[:6]}"
    with api.sessions.begin() as session:
        upsert_queue(session, closed, calling_hours={"hours": f"{start:02d}:00-{start + 1:02d}:00"})
        upsert_agent(session, f"night-{closed}", name="Night", queues=[closed])
        _, key = create_api_key(session, "night", ["agent"], agent_id=f"night-{closed}")
    waiting = new_task(api, closed, timezone="UTC")
    suppressed_phone = f"+6281{uuid.uuid4().int % 10**9:09d}"
    with api.sessions.begin() as session:
        add_suppression(session, kind="company_dnc", channel_scope="phone", value=suppressed_phone, reason="test")
        upsert_queue(session, f"{closed}-dnc", calling_hours=ALWAYS)
        upsert_agent(session, f"night-{closed}", name="Night", queues=[closed, f"{closed}-dnc"])
    blocked = new_task(api, f"{closed}-dnc", phone=suppressed_phone)

    response = await claim(api, key)
    assert response.status_code == 204
    listed = {t["id"]: t for t in (await api.get("/v1/tasks", key)).json()}
    assert listed[waiting]["status"] == "open" and listed[waiting]["not_before"] is not None
    not_before = datetime.fromisoformat(listed[waiting]["not_before"])
    assert not_before.hour == start and not_before > datetime.now(UTC)
    admin = (await api.get(f"/v1/tasks/{blocked}", "admin-test-key-0123456789")).json()
    assert admin["status"] == "cancelled" and "suppressed" in admin["close_reason"]
    problem_of(await claim(api, key, task_id=waiting), 409)


async def test_disposition_data_is_checked_and_applied(api: Api, floor: Floor) -> None:
    task = new_task(api, floor.marketing, priority=50)
    problem_of(await api.post(f"/v1/tasks/{task}/disposition", {"disposition": "busy"}, floor.ani), 409)  # unclaimed
    assert (await claim(api, floor.ani, task_id=task)).status_code == 200
    url = f"/v1/tasks/{task}/disposition"
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert (
        "callback_at"
        in problem_of(await api.post(url, {"disposition": "callback", "callback_at": past}, floor.ani), 422)["detail"]
    )
    assert "amount" in problem_of(await api.post(url, {"disposition": "won"}, floor.ani), 422)["detail"]
    assert "reason" in problem_of(await api.post(url, {"disposition": "lost"}, floor.ani), 422)["detail"]
    problem_of(await api.post(url, {"disposition": "maybe"}, floor.ani), 422)

    done = await api.post(url, {"disposition": "do_not_call", "note": "asked us to stop calling"}, floor.ani)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "disposed" and done.json()["disposition"]["disposition"] == "do_not_call"
    phone = (await api.get(f"/v1/tasks/{task}", floor.ani)).json()["contact"]["phone"]
    with api.sessions() as session:  # suppressed at once, for every cadence
        assert find_suppression(session, channel="voice", address=phone, salt="test-secret") is not None
    problem_of(await api.post(url, {"disposition": "qualified"}, floor.ani), 409)


async def test_release_puts_the_task_back_for_the_next_agent(api: Api, floor: Floor) -> None:
    task = new_task(api, floor.marketing, priority=60)
    assert (await claim(api, floor.ani, task_id=task)).status_code == 200
    released = await api.post(f"/v1/tasks/{task}/release", {"note": "wrong number owner"}, floor.ani)
    assert released.status_code == 200 and released.json()["status"] == "open"
    again = await claim(api, floor.budi, task_id=task)
    assert again.status_code == 200 and again.json()["claimed_by"].startswith("budi-")
    assert [e["action"] for e in again.json()["log"]] == ["created", "claimed", "released", "claimed"]


async def test_sla_state_is_reported(api: Api, floor: Floor) -> None:
    overdue = new_task(api, floor.marketing, due_in=timedelta(minutes=-5))
    pending = new_task(api, floor.marketing, due_in=timedelta(hours=2))
    listed = {t["id"]: t["sla"] for t in (await api.get("/v1/tasks", floor.spv)).json()}
    assert listed[overdue]["state"] == "breached"
    assert listed[pending]["state"] == "pending" and 7000 < listed[pending]["seconds_left"] <= 7200


async def _console_login(api: Api, key: str) -> httpx.Response:
    return await api.http.post(
        "/console/login", content=f"api_key={key}", headers={"content-type": "application/x-www-form-urlencoded"}
    )


async def test_console_signs_in_agents_only_and_keeps_the_same_rules(api: Api, floor: Floor) -> None:
    refused = await _console_login(api, api.developer_key)
    assert refused.status_code == 401 and "belongs to no agent" in refused.text
    signed = await _console_login(api, floor.budi)
    assert signed.status_code == 303 and signed.headers["location"] == "/console"
    cookie = signed.cookies["omnireach_console"]
    assert floor.budi not in cookie  # the cookie names the key by id, never the key itself

    other_queue = new_task(api, floor.sales)
    page = await api.http.get(f"/console/tasks/{other_queue}", cookies={"omnireach_console": cookie})
    assert page.status_code == 403 and floor.sales in page.text
    home = await api.http.get("/console", cookies={"omnireach_console": cookie})
    assert home.status_code == 200 and floor.marketing in home.text and floor.sales not in home.text

    forged = await api.http.post(
        "/console/next",
        content="queue=",
        headers={"content-type": "application/x-www-form-urlencoded"},
        cookies={"omnireach_console": cookie},
    )
    assert forged.status_code == 403  # no CSRF token: nothing claimed
    tampered = await api.http.get("/console", cookies={"omnireach_console": cookie[:-2] + "xx"})
    assert tampered.status_code == 303 and tampered.headers["location"].startswith("/console/login")


async def test_console_reports_are_charts_for_supervisors_only(api: Api, floor: Floor) -> None:
    agent = (await _console_login(api, floor.budi)).cookies["omnireach_console"]
    refused = await api.http.get("/console/reports", cookies={"omnireach_console": agent})
    assert refused.status_code == 403 and "supervisors" in refused.text

    with api.sessions.begin() as session:
        contact, _ = upsert_contact(session, external_id=f"rep-{uuid.uuid4().hex[:6]}", name="Rina")
        record_enrollment_started(session, f"cadence:report-demo:{contact.id}", "report-demo", contact.id, "h")
    supervisor = (await _console_login(api, floor.spv)).cookies["omnireach_console"]
    page = await api.http.get("/console/reports", cookies={"omnireach_console": supervisor})
    assert page.status_code == 200, page.text
    assert "Funnel per cadence" in page.text and "Follow-up within SLA" in page.text
    assert 'aria-label="Funnel of report-demo"' in page.text  # an SVG funnel drawn on the server


async def test_the_operators_policy_file_governs_agents_claims(api: Api, floor: Floor, library, tmp_path) -> None:
    """OMNIREACH_POLICY_FILE tightens legal calling hours for a country: an agent's claim obeys it, exactly as the
    worker's sends do. With the shipped rules the same task is claimed at once."""
    from api.app import create_app
    from api.temporal_gateway import TemporalGateway

    hour = datetime.now(UTC).hour
    start = (hour + 3) % 22  # a one-hour window that is not now, in the contact's zone (UTC)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "version: 1\ncountries:\n  DE:\n    hours:\n      - channels: [voice]\n        purposes: [marketing, sales]\n"
        f'        days: [mon, tue, wed, thu, fri, sat, sun]\n        hours: "{start:02d}:00-{start + 1:02d}:00"\n'
    )
    strict = create_app(
        api.settings.model_copy(update={"policy_file": policy}),
        api.sessions,
        TemporalGateway(api.temporal, api.settings.task_queue),
        library,
    )
    held = new_task(api, floor.marketing, timezone="UTC", priority=90)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=strict), base_url="http://api.test") as http:
        response = await http.post("/v1/tasks/claim", json={"task_id": held}, headers=api.auth(floor.ani))
    problem = problem_of(response, 409)
    assert "legal" in problem["detail"].lower() or "hours" in problem["detail"].lower(), problem
    with api.sessions() as session:
        from store.repos.tasks import get_task

        assert get_task(session, held).status == "open"
    claimed = await claim(api, floor.ani, task_id=held)  # the shipped rules have no such limit for DE
    assert claimed.status_code == 200 and claimed.json()["id"] == held
