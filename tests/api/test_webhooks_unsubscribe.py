"""GET / POST /u/{token}: the page changes nothing; the POST (and RFC 8058 one-click) withdraws at once."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from core import tokens
from core.settings import Settings
from store.models import OutboxMessage
from tests.api.conftest import Api, eventually
from tests.api.webhook_helpers import consent_in_force, consent_rows, grant, webhook_settings, write_project

ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_project(tmp_path_factory.mktemp("unsubscribe"))


@pytest.fixture(scope="module")
def settings(project: Path) -> Settings:
    return webhook_settings(project)


async def subscriber(api: Api) -> str:
    contact = await api.new_contact(email=f"sam.{uuid.uuid4().hex[:8]}@example.com")
    await grant(api, contact["id"], "email", "marketing")
    await grant(api, contact["id"], "email", "sales")
    return contact["id"]


def link(contact_id: str, purpose: str = "marketing", secret: str = "test-secret") -> str:
    return "/u/" + tokens.sign({"c": contact_id, "ch": "email", "p": purpose}, secret)


async def test_get_shows_a_confirmation_page_and_changes_nothing(api: Api) -> None:
    contact_id = await subscriber(api)
    for _ in range(3):  # link scanners follow links, sometimes repeatedly
        response = await api.http.get(link(contact_id))
        assert response.status_code == 200
        assert "text/html" in response.headers["content-type"]
        assert '<form method="post">' in response.text and "Unsubscribe" in response.text
        assert "marketing emails from Acme Tax" in response.text
    assert consent_in_force(api, contact_id, "email") == {"marketing": "granted", "sales": "granted"}


async def test_one_click_post_withdraws_that_purpose_at_once_and_only_once(api: Api) -> None:
    contact_id = await subscriber(api)
    response = await api.http.post(link(contact_id), content="List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert response.status_code == 200 and "You are unsubscribed" in response.text
    assert consent_in_force(api, contact_id, "email") == {"marketing": "withdrawn", "sales": "granted"}
    record = consent_rows(api, contact_id, "email")[-1]
    assert record.method == "one_click_unsubscribe" and record.evidence["one_click"] is True
    rows = len(consent_rows(api, contact_id))
    again = await api.http.post(link(contact_id), content="List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert again.status_code == 200 and len(consent_rows(api, contact_id)) == rows


async def test_the_page_button_posts_and_withdraws(api: Api) -> None:
    contact_id = await subscriber(api)
    response = await api.http.post(link(contact_id, "sales"), data={"confirm": "yes"})
    assert response.status_code == 200
    assert consent_in_force(api, contact_id, "email") == {"marketing": "granted", "sales": "withdrawn"}
    assert consent_rows(api, contact_id, "email")[-1].method == "unsubscribe_link"


@pytest.mark.parametrize("bad", ["tampered", "foreign", "truncated", "bad_payload"])
async def test_a_bad_token_changes_nothing(api: Api, bad: str) -> None:
    contact_id = await subscriber(api)
    good = link(contact_id)
    url = {
        "tampered": good[:-3] + ("AAA" if not good.endswith("AAA") else "BBB"),
        "foreign": link(contact_id, secret="another-secret"),
        "truncated": good.split(".")[0],
        "bad_payload": "/u/" + tokens.sign({"c": contact_id, "ch": "fax", "p": "marketing"}, "test-secret"),
    }[bad]
    assert (await api.http.get(url)).status_code == 404
    response = await api.http.post(url, content="List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert response.status_code == 404 and "does not work" in response.text
    assert consent_in_force(api, contact_id, "email") == {"marketing": "granted", "sales": "granted"}


async def test_the_link_in_a_sent_email_unsubscribes(api: Api) -> None:
    contact_id = await subscriber(api)
    started = await api.post("/v1/enrollments", {"contact_id": contact_id, "cadence_id": "email-nurture"})
    assert started.status_code == 201, started.text

    def body() -> str | None:
        with api.sessions() as session:
            return session.scalars(select(OutboxMessage.body).where(OutboxMessage.contact_id == contact_id)).first()

    text = await eventually(body)
    url = re.search(r"https://hooks\.omnireach\.test(/u/\S+)", text)
    assert url is not None, text
    response = await api.http.post(url.group(1), content="List-Unsubscribe=One-Click", headers=ONE_CLICK)
    assert response.status_code == 200
    assert consent_in_force(api, contact_id, "email")["marketing"] == "withdrawn"
    await api.temporal.get_workflow_handle(started.json()["id"]).terminate("test done")
