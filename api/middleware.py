"""ASGI middleware: a 2 MB body limit, one structured log line per request, and a last-resort 500 problem.

Both are raw ASGI (not ``BaseHTTPMiddleware``) so they see the streamed body and never buffer responses.
Logs name the route template (``/v1/contacts/{contact_ref}``), never the raw path: an ``ext:`` id may be
an email address.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.problems import PROBLEM_MEDIA_TYPE, problem_bytes

MAX_BODY_BYTES = 2 * 1024 * 1024
log = logging.getLogger("omnireach.api")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def _send_problem(send: Send, status: int, detail: str, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    body = problem_bytes(status, detail)
    headers = [
        (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        *(extra or []),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuses bodies over ``limit`` bytes with 413, by Content-Length and by the bytes actually streamed.

    The body is read (at most ``limit`` bytes) before the app runs, so an oversized upload is refused
    before any route code or database transaction starts: nothing changes.
    """

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY_BYTES, streamed: dict[str, int] | None = None):
        self.app = app
        self.limit = limit
        # Paths whose routes read the body as a stream (bulk uploads): only their declared Content-Length is
        # checked here, against their own limit; the route counts the bytes it actually reads.
        self.streamed = dict(streamed or {})

    def _too_large(self) -> str:
        return (
            f"the request body is larger than {self.limit // (1024 * 1024)} MB ({self.limit} bytes); "
            "send fewer or smaller fields (split bulk loads into several requests)"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        streamed_limit = self.streamed.get(scope["path"])
        if streamed_limit is not None:
            if declared is not None and declared.isdigit() and int(declared) > streamed_limit:
                detail = (
                    f"the request body is larger than {streamed_limit // (1024 * 1024)} MB; split the file into "
                    "several uploads (rerunning rows is safe)"
                )
                await _send_problem(send, 413, detail, [(b"connection", b"close")])
                return
            await self.app(scope, receive, send)
            return
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await _send_problem(send, 400, "the Content-Length header is not a number")
                return
            if size > self.limit:
                await _send_problem(send, 413, self._too_large(), [(b"connection", b"close")])
                return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.limit:
                await _send_problem(send, 413, self._too_large(), [(b"connection", b"close")])
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RequestLogMiddleware:
    """One ``event=request`` line per request (request id, method, route, status, ms, key) and a 500
    problem for any exception no handler caught (the traceback goes to the log, not to the client)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id()
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 500, "started": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except Exception:
            log.exception(
                "event=unhandled_error request_id=%s method=%s route=%s", request_id, scope["method"], _route(scope)
            )
            if not state["started"]:
                await _send_problem(
                    send_wrapper,
                    500,
                    f"unexpected error (request id {request_id}); nothing "
                    "was changed. Retry later; if it persists, report the request id",
                )
        finally:
            principal = getattr(scope.get("state", {}).get("principal"), "key_prefix", "-")
            log.info(
                "event=request request_id=%s method=%s route=%s status=%s ms=%.1f key=%s",
                request_id,
                scope["method"],
                _route(scope),
                state["status"],
                (time.perf_counter() - started) * 1000,
                principal or "-",
            )


def _request_id() -> str:
    """16 hex digits that tie a request's log lines and its answer together. Not a secret, so no call to the
    system's random source (uuid4's os.urandom cost a system call on every request)."""
    return f"{random.getrandbits(64):016x}"


def _route(scope: Scope) -> str:
    route = scope.get("route")
    return getattr(route, "path", None) or "<unmatched>"
