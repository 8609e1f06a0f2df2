"""A small stand-in for Twilio and SendGrid that the official SDKs talk to (OMNIREACH_TWILIO_BASE_URL /
OMNIREACH_SENDGRID_HOST), for end-to-end runs the vendors' specs cannot drive.

It echoes SIDs, keeps what it received (with receive times, for throughput checks), answers Messages /
Calls list queries (reconciliation), posts Twilio-signed status callbacks when asked, and injects failures
on demand: HTTP 429 with Retry-After, 500, 401, a timeout *after* accepting the request, and Twilio error
codes (21610, 21211, 21614, 63016, 63014, 131049). A ``/hook`` route receives the webhook channel.

Run it in a test with ``FakeProvider.start()`` (uvicorn in a thread on a free loopback port) or by itself
with ``python -m tests.e2e.fake_provider --port 4100``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

TWILIO_ERRORS = {
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21211: (400, "The 'To' number is not a valid phone number."),
    21614: (400, "'To' number is not a valid mobile number"),
    63016: (400, "Failed to send freeform message because you are outside the allowed window."),
    63014: (400, "This message could not be delivered because the user has blocked your business."),
    131049: (400, "Meta chose not to deliver this marketing message to this user."),
}


@dataclass
class Received:
    """One request the provider accepted or refused."""

    kind: str  # message | call | mail | hook
    at: float  # time.time() when it arrived
    params: dict[str, Any]
    headers: dict[str, str]
    answered: int  # HTTP status we answered
    sid: str | None = None


@dataclass
class Fault:
    what: str  # "429", "500", "401", "timeout", or a Twilio error code such as "21610"
    kinds: tuple[str, ...]
    retry_after: int = 3
    delay: float = 3.0  # for "timeout": how long to hold the answer back


@dataclass
class FakeProvider:
    auth_token: str = "fake-auth-token"
    host: str = "127.0.0.1"
    port: int = 0
    callbacks: bool = False  # post signed status callbacks to StatusCallback URLs
    received: list[Received] = field(default_factory=list)
    faults: deque[Fault] = field(default_factory=deque)
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- control from tests ----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def inject(
        self, what: str, *, kinds: tuple[str, ...] = ("message", "call", "mail", "hook"), **options: Any
    ) -> None:
        """The next request of one of ``kinds`` fails as ``what``."""
        self.faults.append(Fault(str(what), kinds, **options))

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self.faults.clear()

    def accepted(self, kind: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.answered < 300 and (kind is None or r.kind == kind)]

    def all(self, kind: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if kind is None or r.kind == kind]

    # -- the app -----------------------------------------------------------------------------------------------
    def app(self) -> Starlette:
        base = "/2010-04-01/Accounts/{account}"
        return Starlette(
            routes=[
                Route(base + "/Messages.json", self._create_message, methods=["POST"]),
                Route(base + "/Messages.json", self._list_messages, methods=["GET"]),
                Route(base + "/Calls.json", self._create_call, methods=["POST"]),
                Route(base + "/Calls.json", self._list_calls, methods=["GET"]),
                Route("/v3/mail/send", self._mail_send, methods=["POST"]),
                Route("/hook", self._hook, methods=["POST"]),
                Route("/received", self._dump, methods=["GET"]),
            ]
        )

    def _take_fault(self, kind: str) -> Fault | None:
        with self._lock:
            for fault in list(self.faults):
                if kind in fault.kinds:
                    self.faults.remove(fault)
                    return fault
        return None

    def _record(self, kind: str, params: dict, headers: dict, answered: int, sid: str | None = None) -> Received:
        item = Received(kind, time.time(), params, headers, answered, sid)
        with self._lock:
            self.received.append(item)
        return item

    def _sid(self, prefix: str) -> str:
        return prefix + uuid.uuid4().hex

    async def _refuse(self, kind: str, fault: Fault, params: dict, headers: dict) -> Response | None:
        """The fault's answer, or None when the request is to be accepted (timeout: accepted, answered late)."""
        if fault.what == "timeout":
            return None
        status = {"429": 429, "500": 500, "401": 401, "403": 403}.get(fault.what)
        if status is not None:
            self._record(kind, params, headers, status)
            extra = {"Retry-After": str(fault.retry_after)} if status == 429 else {}
            code = {429: 20429, 401: 20003, 403: 20003}.get(status)
            body = {"code": code, "message": f"fake {status}", "status": status}
            if kind == "mail":
                body = {"errors": [{"message": f"fake {status}", "field": None}]}
            return JSONResponse(body, status_code=status, headers=extra)
        status, message = TWILIO_ERRORS[int(fault.what)]
        self._record(kind, params, headers, status)
        return JSONResponse(
            {"code": int(fault.what), "message": message, "status": status, "more_info": "https://fake"},
            status_code=status,
        )

    async def _create(self, request: Request, kind: str, prefix: str) -> tuple[Response | None, dict, Fault | None]:
        raw = (await request.body()).decode()
        params: dict[str, Any] = {}
        for key, value in parse_qsl(raw, keep_blank_values=True):
            if key in params:  # repeated parameters (StatusCallbackEvent) become lists
                params[key] = [*(params[key] if isinstance(params[key], list) else [params[key]]), value]
            else:
                params[key] = value
        headers = dict(request.headers)
        fault = self._take_fault(kind)
        if fault is not None:
            refused = await self._refuse(kind, fault, params, headers)
            if refused is not None:
                return refused, params, fault
        return None, params, fault

    async def _create_message(self, request: Request) -> Response:
        refused, params, fault = await self._create(request, "message", "SM")
        if refused is not None:
            return refused
        sid = self._sid("SM")
        self._record("message", params, dict(request.headers), 201, sid)
        body = self._message_json(request.path_params["account"], sid, params)
        if fault is not None and fault.what == "timeout":
            await asyncio.sleep(fault.delay)  # accepted, but the answer comes too late for the client
        if self.callbacks and params.get("StatusCallback"):
            asyncio.get_running_loop().create_task(self._callback(params["StatusCallback"], sid, "MessageStatus"))
        return JSONResponse(body, status_code=201)

    def _message_json(self, account: str, sid: str, params: dict) -> dict:
        now = format_datetime(datetime.now(UTC), usegmt=True)
        return {
            "sid": sid,
            "account_sid": account,
            "to": params.get("To"),
            "from": params.get("From"),
            "messaging_service_sid": params.get("MessagingServiceSid"),
            "body": params.get("Body", ""),
            "status": "queued",
            "num_segments": "1",
            "date_created": now,
            "date_updated": now,
            "date_sent": None,
            "direction": "outbound-api",
            "api_version": "2010-04-01",
            "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
        }

    async def _list_messages(self, request: Request) -> Response:
        to, from_ = request.query_params.get("To"), request.query_params.get("From")
        account = request.path_params["account"]
        items = [
            self._message_json(account, r.sid or "", r.params)
            for r in reversed(self.accepted("message"))
            if (to is None or r.params.get("To") == to) and (from_ is None or r.params.get("From") == from_)
        ]
        return JSONResponse({"messages": items, "next_page_uri": None, "page": 0, "page_size": len(items)})

    async def _create_call(self, request: Request) -> Response:
        refused, params, fault = await self._create(request, "call", "CA")
        if refused is not None:
            return refused
        sid = self._sid("CA")
        self._record("call", params, dict(request.headers), 201, sid)
        if fault is not None and fault.what == "timeout":
            await asyncio.sleep(fault.delay)
        return JSONResponse(self._call_json(request.path_params["account"], sid, params), status_code=201)

    def _call_json(self, account: str, sid: str, params: dict) -> dict:
        now = format_datetime(datetime.now(UTC), usegmt=True)
        return {
            "sid": sid,
            "account_sid": account,
            "to": params.get("To"),
            "from": params.get("From"),
            "status": "queued",
            "date_created": now,
            "date_updated": now,
            "direction": "outbound-api",
            "api_version": "2010-04-01",
        }

    async def _list_calls(self, request: Request) -> Response:
        to = request.query_params.get("To")
        account = request.path_params["account"]
        items = [
            self._call_json(account, r.sid or "", r.params)
            for r in reversed(self.accepted("call"))
            if to is None or r.params.get("To") == to
        ]
        return JSONResponse({"calls": items, "next_page_uri": None, "page": 0, "page_size": len(items)})

    async def _mail_send(self, request: Request) -> Response:
        body = json.loads(await request.body() or b"{}")
        headers = dict(request.headers)
        fault = self._take_fault("mail")
        if fault is not None and fault.what != "timeout":
            refused = await self._refuse("mail", fault, body, headers)
            assert refused is not None
            return refused
        message_id = uuid.uuid4().hex[:22]
        self._record("mail", body, headers, 202, message_id)
        if fault is not None:
            await asyncio.sleep(fault.delay)
        return Response(status_code=202, headers={"X-Message-Id": message_id})

    async def _hook(self, request: Request) -> Response:
        raw = await request.body()
        headers = dict(request.headers)
        fault = self._take_fault("hook")
        if fault is not None and fault.what != "timeout":
            status = int(fault.what) if fault.what.isdigit() and int(fault.what) < 600 else 500
            self._record("hook", {"raw": raw.decode()}, headers, status)
            return JSONResponse({"error": "fake"}, status_code=status)
        self._record("hook", {"raw": raw.decode()}, headers, 200, "hook-" + uuid.uuid4().hex[:8])
        return JSONResponse({"id": self.received[-1].sid})

    async def _dump(self, request: Request) -> Response:
        return JSONResponse([{"kind": r.kind, "at": r.at, "answered": r.answered, "sid": r.sid} for r in self.all()])

    async def _callback(self, url: str, sid: str, status_field: str) -> None:
        """A Twilio-signed status callback (X-Twilio-Signature), as Twilio would post it."""
        await asyncio.sleep(0.05)
        for status in ("sent", "delivered"):
            params = {"MessageSid": sid, "SmsSid": sid, status_field: status, "AccountSid": "AC" + "0" * 32}
            signature = RequestValidator(self.auth_token).compute_signature(url, params)
            try:
                async with httpx.AsyncClient(timeout=5) as client:
                    await client.post(url, data=params, headers={"X-Twilio-Signature": signature})
            except httpx.HTTPError:
                return  # nobody listening: callbacks are best effort, like Twilio's

    # -- running -----------------------------------------------------------------------------------------------
    def start(self) -> FakeProvider:
        if not self.port:
            with socket.socket() as sock:
                sock.bind((self.host, 0))
                self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app(), host=self.host, port=self.port, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-provider", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"the fake provider did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=4100)
    parser.add_argument("--callbacks", action="store_true", help="post signed status callbacks")
    args = parser.parse_args()
    fake = FakeProvider(port=args.port, callbacks=args.callbacks)
    config = uvicorn.Config(fake.app(), host=fake.host, port=fake.port, log_level="info", lifespan="off")
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
