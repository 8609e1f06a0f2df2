"""Who may call what: Bearer API keys (hashed at rest), the bootstrap admin key, scopes."""

from __future__ import annotations

from store.repos.api_keys import create_api_key, revoke_api_key
from tests.api.conftest import ADMIN_KEY, Api, problem_of

CONTACT = {"external_id": "auth-probe", "name": "Probe"}


async def test_no_key_is_401_problem_saying_what_to_send(api: Api) -> None:
    response = await api.http.post("/v1/contacts", json=CONTACT)
    body = problem_of(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in body["detail"]


async def test_wrong_scheme_is_401_naming_bearer(api: Api) -> None:
    response = await api.http.get("/v1/contacts/x", headers={"Authorization": f"Basic {api.developer_key}"})
    assert "Bearer" in problem_of(response, 401)["detail"]


async def test_unknown_key_is_401(api: Api) -> None:
    response = await api.post("/v1/contacts", CONTACT, key="or_not-a-real-key")
    assert "unknown or revoked" in problem_of(response, 401)["detail"]


async def test_revoked_key_is_401(api: Api) -> None:
    with api.sessions.begin() as session:
        row, key = create_api_key(session, "short-lived", ["developer"])
    assert (await api.get("/v1/contacts/nobody", key=key)).status_code == 404  # works while active
    with api.sessions.begin() as session:
        assert revoke_api_key(session, row.id)
    problem_of(await api.get("/v1/contacts/nobody", key=key), 401)


async def test_key_without_the_scope_is_403_naming_it(api: Api) -> None:
    response = await api.post("/v1/contacts", CONTACT, key=api.agent_key)
    body = problem_of(response, 403)
    assert "'developer'" in body["detail"] and "agent" in body["detail"]
    # and nothing was written
    assert (await api.get("/v1/contacts/ext:auth-probe")).status_code == 404


async def test_admin_key_from_settings_is_accepted(api: Api) -> None:
    response = await api.post("/v1/contacts", {"external_id": "admin-made"}, key=ADMIN_KEY)
    assert response.status_code == 201, response.text


async def test_admin_key_must_match_whole(api: Api) -> None:
    problem_of(await api.post("/v1/contacts", CONTACT, key=ADMIN_KEY[:-1]), 401)
    problem_of(await api.post("/v1/contacts", CONTACT, key=ADMIN_KEY + "x"), 401)


async def test_healthz_needs_no_key(api: Api) -> None:
    response = await api.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "temporal": "ok"}
