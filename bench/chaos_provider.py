"""The provider side of a chaos run: a fake Twilio that fails a share of sends at random, and Twilio's own
callbacks to us (status callbacks, inbound STOPs), signed as Twilio signs them, delivered twice, out of order.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import httpx
from twilio.request_validator import RequestValidator

from bench.stack import SMS_FROM, TWILIO_SID, TWILIO_TOKEN
from tests.e2e.fake_provider import FakeProvider, Fault

FAULTS = ("429", "500", "timeout")


@dataclass
class FlakyProvider(FakeProvider):
    """Fails ``fail_rate`` of message sends, evenly 429 (Retry-After 1 s), 500 and a timeout *after* accepting
    the message (the sender cannot know whether it went out)."""

    fail_rate: float = 0.2
    seed: int = 8
    injected: Counter = field(default_factory=Counter)
    _rng: random.Random = field(default_factory=random.Random)
    _rng_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def _take_fault(self, kind: str) -> Fault | None:
        queued = super()._take_fault(kind)
        if queued is not None or kind != "message":
            return queued
        with self._rng_lock:
            if self._rng.random() >= self.fail_rate:
                return None
            what = self._rng.choice(FAULTS)
        self.injected[what] += 1
        return Fault(what, ("message",), retry_after=1, delay=3.0)


def message_key(received) -> str:
    """Our message key, which the SMS channel puts in the StatusCallback URL (?key=...)."""
    return parse_qs(urlsplit(received.params["StatusCallback"]).query)["key"][0]


def enrollment_of(received) -> str:
    return message_key(received).rsplit("/", 2)[0]


def step_of(received) -> str:
    return message_key(received).rsplit("/", 2)[1]


class TwilioCallbacks:
    """Posts signed Twilio callbacks to the API; an answer other than 2xx (or no answer) means "try again"."""

    def __init__(self, http: httpx.AsyncClient, api_url: str):
        self.http = http
        self.api_url = api_url
        self.validator = RequestValidator(TWILIO_TOKEN)

    async def post(self, url: str, params: dict[str, str]) -> bool:
        signature = self.validator.compute_signature(url, params)
        try:
            answer = await self.http.post(url, data=params, headers={"X-Twilio-Signature": signature})
        except httpx.HTTPError:
            return False
        return answer.status_code < 300

    async def status(self, received, status: str) -> bool:
        return await self.post(
            received.params["StatusCallback"],
            {
                "MessageSid": received.sid,
                "SmsSid": received.sid,
                "MessageStatus": status,
                "AccountSid": TWILIO_SID,
                "To": received.params.get("To", ""),
                "From": SMS_FROM,
            },
        )

    async def stop(self, phone: str, sid: str) -> bool:
        """An inbound "STOP" from ``phone``; a redelivery uses the same MessageSid, as Twilio's does."""
        return await self.post(
            f"{self.api_url}/webhooks/twilio/inbound",
            {
                "MessageSid": sid,
                "AccountSid": TWILIO_SID,
                "From": phone,
                "To": SMS_FROM,
                "Body": "STOP",
            },
        )
