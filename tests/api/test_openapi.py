"""The API documents itself: every route, its response models and every status it can return."""

from __future__ import annotations

from tests.api.conftest import Api

ROUTES = {
    ("get", "/healthz"),
    ("post", "/v1/contacts"),
    ("get", "/v1/contacts/{contact_ref}"),
    ("get", "/v1/contacts/{contact_ref}/timeline"),
    ("get", "/v1/contacts/{contact_ref}/decisions"),
    ("post", "/v1/contacts/{contact_ref}/consents"),
    ("get", "/v1/contacts/{contact_ref}/consents"),
    ("post", "/v1/enrollments"),
    ("delete", "/v1/enrollments/{enrollment_ref}"),
    ("post", "/v1/events"),
    ("get", "/v1/enrollments"),
    ("post", "/v1/enrollments:bulk"),
    ("get", "/v1/cadences"),
    ("get", "/v1/cadences/{cadence_id}"),
    ("get", "/v1/reports/funnel"),
    ("get", "/v1/reports/steps"),
    ("get", "/v1/reports/sla"),
    ("post", "/v1/webhook-endpoints"),
    ("get", "/v1/webhook-endpoints"),
    ("get", "/v1/webhook-endpoints/{endpoint_id}"),
    ("delete", "/v1/webhook-endpoints/{endpoint_id}"),
    ("get", "/v1/webhook-endpoints/{endpoint_id}/deliveries"),
    ("get", "/v1/contacts/{contact_ref}/export"),
    ("delete", "/v1/contacts/{contact_ref}"),
    ("post", "/webhooks/twilio/inbound"),
    ("post", "/webhooks/twilio/status"),
    ("post", "/webhooks/sendgrid/events"),
}


async def test_openapi_lists_every_route_with_its_statuses(api: Api) -> None:
    response = await api.http.get("/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    served = {(method, path) for path, item in schema["paths"].items() for method in item}
    assert served >= ROUTES  # other modules add theirs; every /v1 route below must follow the same rules
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"

    for method, path in sorted(p for p in served if p[1].startswith("/v1/") or p in ROUTES):
        operation = schema["paths"][path][method]
        statuses = set(operation["responses"])
        assert operation.get("summary"), (method, path)
        if path.startswith("/v1/"):
            assert {"401", "403", "500"} <= statuses, (method, path, statuses)
            assert operation["security"] == [{"HTTPBearer": []}]
        if "{contact_ref}" in path or "{enrollment_ref}" in path:
            assert "404" in statuses, (method, path)
        if method == "post" and "requestBody" in operation:
            assert {"413", "422"} <= statuses, (method, path)
        if method == "post" and path.startswith("/v1/"):
            headers = {p["name"] for p in operation.get("parameters", []) if p["in"] == "header"}
            assert ("Idempotency-Key" in headers) == (path != "/v1/enrollments:bulk"), (method, path)
        for code, answer in operation["responses"].items():
            if code[0] in "45" and path != "/healthz":
                assert list(answer["content"]) == ["application/problem+json"], (method, path, code)
                assert answer["content"]["application/problem+json"]["schema"]["$ref"].endswith("/Problem")

    created = schema["paths"]["/v1/enrollments"]["post"]["responses"]
    assert {"200", "201", "503"} <= set(created)
    assert created["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/EnrollmentOut")
    assert set(schema["paths"]["/v1/contacts"]["post"]["responses"]) >= {"200", "201", "409"}
    assert set(schema["paths"]["/v1/events"]["post"]["responses"]) >= {"200", "201", "409", "503"}
    assert "202" in schema["paths"]["/v1/enrollments/{enrollment_ref}"]["delete"]["responses"]


async def test_interactive_docs_are_served(api: Api) -> None:
    response = await api.http.get("/docs")
    assert response.status_code == 200 and "swagger-ui" in response.text
    assert "/openapi.json" in response.text
