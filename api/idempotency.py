"""``Idempotency-Key`` for every ``POST /v1/...``: a retried request replays the first response.

Clients that may retry a POST (a timeout, a dropped connection) send ``Idempotency-Key: <unique
string>`` (IETF draft-ietf-httpapi-idempotency-key-header). The first request runs and its response
(status, body, Location) is kept for 24 hours under (caller's API key, key). Then:

- the same key with the same method, path and body: the stored response, with ``Idempotent-Replayed: true``;
- the same key while the first request still runs: 409, retry later;
- the same key with a different request: 422 naming the ``Idempotency-Key`` header.

Responses that say "try again" (409, 429, 5xx) are not kept, so a retry really retries. The key is
optional; routes that are idempotent by their own data (events by ``idempotency_key``, enrollments by
workflow id) stay so without it. Being ASGI middleware, it covers routes added by any module, with no
per-route code; routes opt out by path prefix (``EXCLUDED``), e.g. streamed bulk uploads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_MEDIA_TYPE, FieldError, problem_body
from store.types import utcnow
from store.webhook_models import IdempotencyKey

HEADER = "Idempotency-Key"
TTL = timedelta(hours=24)
MAX_STORED_BODY = 1024 * 1024
EXCLUDED = ("/v1/enrollments:bulk",)
KEPT_HEADERS = ("content-type", "location")
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
log = logging.getLogger("omnireach.api")

OPENAPI_PARAMETER = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": "Any unique string (e.g. a UUID) you choose per logical request: a retry with the same "
    "key and body replays the first response (header `Idempotent-Replayed: true`) instead of acting twice. "
    "Kept 24 hours per API key.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[\x21-\x7e]+$"},
}


def applies(method: str, path: str) -> bool:
    return method == "POST" and path.startswith("/v1/") and not path.startswith(EXCLUDED)


class IdempotencyMiddleware:
    """See the module docstring. Needs ``app.state.services.db.session_factory`` (set by create_app)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not applies(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        key, authorization = _key_and_caller(scope["headers"])
        if key is None or not authorization:  # no key: nothing to do; no caller: the route answers 401
            await self.app(scope, receive, send)
            return
        if not _KEY.match(key):
            await _problem(
                send,
                422,
                f"{HEADER}: must be 1-255 visible ASCII characters without spaces (e.g. a UUID); got {len(key)} "
                "characters",
            )
            return
        body, replay_receive = await _read_body(receive)
        caller = hashlib.sha256(authorization.encode()).hexdigest()
        query = scope.get("query_string", b"")
        fingerprint = hashlib.sha256(b"%s\n%s\n%s\n" % (scope["path"].encode(), query, body)).hexdigest()
        sessions: sessionmaker[Session] = scope["app"].state.services.db.session_factory
        claim = await run_in_threadpool(_claim, sessions, caller, key, scope["path"], fingerprint)
        if isinstance(claim, IdempotencyKey):
            await _replay(send, claim)
            return
        if claim == "busy":
            await _problem(
                send, 409, f"{HEADER}: a request with this key is still being processed; retry when it has finished"
            )
            return
        if claim == "mismatch":
            await _problem(
                send,
                422,
                f"{HEADER}: this key was already used for a different request (another path or body); use a new "
                "key for every distinct request",
            )
            return
        await self._run_and_keep(scope, replay_receive, send, sessions, claim)

    async def _run_and_keep(
        self, scope: Scope, receive: Receive, send: Send, sessions: sessionmaker[Session], row_id: int
    ) -> None:
        response: dict[str, Any] = {"status": None, "headers": [], "body": bytearray(), "too_big": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                response["headers"] = list(message.get("headers", []))
            elif message["type"] == "http.response.body" and not response["too_big"]:
                response["body"] += message.get("body", b"")
                response["too_big"] = len(response["body"]) > MAX_STORED_BODY
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except BaseException:
            await run_in_threadpool(_forget, sessions, row_id)
            raise
        status = response["status"]
        if status is None or status >= 500 or status in (409, 429) or response["too_big"]:
            await run_in_threadpool(_forget, sessions, row_id)
            return
        kept = {
            k.decode("latin-1").lower(): v.decode("latin-1")
            for k, v in response["headers"]
            if k.decode("latin-1").lower() in KEPT_HEADERS
        }
        await run_in_threadpool(_keep, sessions, row_id, status, kept, bytes(response["body"]))


_HEADER_NAME = HEADER.lower().encode("latin-1")


def _key_and_caller(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, str]:
    """The Idempotency-Key header (None when absent) and the Authorization header ("" when absent); the last
    one wins when a header is repeated. Only these two are decoded: every POST passes through here."""
    key: str | None = None
    authorization = ""
    for name, value in headers:
        lowered = name.lower()
        if lowered == _HEADER_NAME:
            key = value.decode("latin-1")
        elif lowered == b"authorization":
            authorization = value.decode("latin-1")
    return key, authorization


async def _read_body(receive: Receive) -> tuple[bytes, Receive]:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    body = b"".join(chunks)
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return body, replay


def _claim(
    sessions: sessionmaker[Session], caller: str, key: str, path: str, fingerprint: str
) -> IdempotencyKey | int | str:
    """The stored row to replay, ``"busy"``, ``"mismatch"``, or the id of a new in-progress row."""
    now = utcnow()
    try:
        with sessions.begin() as session:
            session.execute(delete(IdempotencyKey).where(IdempotencyKey.created_at < now - TTL))
            row = _find(session, caller, key)
            if row is None:
                row = IdempotencyKey(
                    scope=caller, key=key, method="POST", path=path, fingerprint=fingerprint, created_at=now
                )
                session.add(row)
                session.flush()
                return row.id
    except IntegrityError:  # a concurrent first request inserted it: that one runs
        with sessions() as session:
            row = _find(session, caller, key)
        if row is None:
            raise
    if row.fingerprint != fingerprint:
        return "mismatch"
    if row.status != "done":
        return "busy"
    return row


def _find(session: Session, caller: str, key: str) -> IdempotencyKey | None:
    return session.scalars(
        select(IdempotencyKey).where(IdempotencyKey.scope == caller, IdempotencyKey.key == key)
    ).one_or_none()


def _keep(sessions: sessionmaker[Session], row_id: int, status: int, headers: dict[str, str], body: bytes) -> None:
    with sessions.begin() as session:
        row = session.get(IdempotencyKey, row_id)
        if row is not None:
            row.status, row.response_status, row.response_headers, row.response_body = "done", status, headers, body


def _forget(sessions: sessionmaker[Session], row_id: int) -> None:
    with sessions.begin() as session:
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == row_id))


async def _replay(send: Send, row: IdempotencyKey) -> None:
    body = row.response_body or b""
    headers = [(k.encode(), str(v).encode()) for k, v in (row.response_headers or {}).items()]
    headers += [(b"content-length", str(len(body)).encode()), (b"idempotent-replayed", b"true")]
    log.info("event=idempotent_replay status=%s", row.response_status)
    await send({"type": "http.response.start", "status": row.response_status or 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _problem(send: Send, status: int, detail: str) -> None:
    """A problem about the header; 422s name it in ``errors`` like any field problem."""
    errors = [FieldError(field=HEADER, message=detail.removeprefix(f"{HEADER}: "))] if status == 422 else None
    body = json.dumps(problem_body(status, detail, errors=errors), separators=(",", ":")).encode()
    headers = [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
