"""Twilio plumbing shared by SMS, WhatsApp and voice: the client, the base-URL hook and error mapping.

The official ``twilio`` SDK is synchronous; every call runs in a worker thread (``asyncio.to_thread``) so
the event loop keeps serving other activities. Its documented extension point, a custom ``http_client``,
is used for two things the SDK cannot do by itself: send API calls to another base URL
(OMNIREACH_TWILIO_BASE_URL: a contract-test mock, a fake provider, a regional edge) and remember the
``Retry-After`` header of a 429, which ``TwilioRestException`` drops.

Error mapping (COMPLIANCE.md): the provider's error codes become our domain errors, which the deliver
activity turns into ledger entries and retry decisions.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import timedelta
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client

from channels.base import (
    AddressUnusable,
    ConfigurationError,
    OutcomeUnknown,
    PermanentSendError,
    RecipientBlocked,
    RecipientOptedOut,
    RetryableSendError,
    SendError,
    TemplateRequired,
)
from channels.blocking import executor, run_blocking

T = TypeVar("T")

CONNECT_TIMEOUT = 5.0
WHATSAPP_MARKETING_BACKOFF = timedelta(hours=24)
# Twilio error codes that say our configuration (not the recipient) is wrong: fix it, retrying won't help.
CONFIGURATION_CODES = frozenset({20003, 20404, 21212, 21408, 21606, 21659, 21703, 63007})


class RedirectingHttpClient(TwilioHttpClient):
    """The SDK's HTTP client, sending to ``base_url`` instead of https://*.twilio.com when one is given.

    Also keeps, per thread, the last error response's ``Retry-After`` and body: the SDK raises
    ``TwilioRestException`` without them, and each SDK call runs start to finish in one thread.
    """

    def __init__(self, base_url: str | None = None, *, timeout: float = 15.0):
        super().__init__(timeout=None)
        self.timeout = (min(CONNECT_TIMEOUT, timeout), timeout)  # type: ignore[assignment]  # requests: (connect, read)
        self.base_url = base_url.rstrip("/") if base_url else None
        self._last = threading.local()

    def rewrite(self, url: str) -> str:
        """``https://api.twilio.com/2010-04-01/...`` -> ``{base_url}/2010-04-01/...`` (path and query kept)."""
        if not self.base_url:
            return url
        parts = urlsplit(url)
        return self.base_url + parts.path + (f"?{parts.query}" if parts.query else "")

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        self._last.retry_after = None
        self._last.body = ""
        response = super().request(method, self.rewrite(url), params, data, headers, auth, timeout, allow_redirects)
        if response.status_code >= 400:
            self._last.retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            self._last.body = response.text or ""
        return response

    def last_error(self) -> tuple[float | None, str]:
        """(Retry-After seconds, body) of this thread's last error response."""
        return getattr(self._last, "retry_after", None), getattr(self._last, "body", "")


def make_client(account_sid: str, auth_token: str, base_url: str | None, timeout: float) -> Client:
    """A Twilio REST client whose calls go to ``base_url`` when set (the SDK's documented http_client hook)."""
    executor()  # warm the SDK thread pool at start-up
    return Client(account_sid, auth_token, http_client=RedirectingHttpClient(base_url, timeout=timeout))


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        from datetime import UTC, datetime

        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


def status_callback(public_url: str, message_key: str) -> str:
    """Our status webhook, carrying the message key so callbacks correlate even when the SID never came back."""
    return f"{public_url.rstrip('/')}/webhooks/twilio/status?key={quote(message_key, safe='')}"


def map_twilio_error(status: int, code: int | None, message: str, retry_after: float | None = None) -> SendError:
    """A Twilio API error (HTTP status, Twilio error code) as the domain error the deliver activity handles."""
    text = f"twilio HTTP {status}" + (f" error {code}" if code else "") + f": {message}"
    error: SendError
    if code == 21610:
        error = RecipientOptedOut(text + " (the recipient replied STOP to this sender)")
    elif code in (21211, 21614):
        error = AddressUnusable(text)
    elif code == 63016:
        error = TemplateRequired(text)
    elif code == 63014:
        error = RecipientBlocked(text)
    elif code == 131049:
        error = RetryableSendError(
            text + " (Meta holds back marketing templates for this user)",
            retry_after=WHATSAPP_MARKETING_BACKOFF.total_seconds(),
            code="whatsapp_marketing_limited",
        )
    elif status == 429 or code == 20429:
        error = RetryableSendError(text, retry_after=retry_after, code="rate_limited")
    elif status >= 500:
        error = RetryableSendError(text, retry_after=retry_after, code="provider_unavailable")
    elif status in (401, 403) or code in CONFIGURATION_CODES:
        error = ConfigurationError(text + " (check TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and the sender settings)")
    else:
        error = PermanentSendError(text, code="provider_rejected")
    error.provider_code = code  # type: ignore[attr-defined]  # evidence for the ledger
    return error


def _describe(exc: TwilioRestException, body: str) -> str:
    """The SDK's message, plus what a non-Twilio error body (e.g. a validator's list of failures) says."""
    message = exc.msg or "request refused"
    try:
        payload = json.loads(body) if body else {}
    except ValueError:
        payload = {}
    if isinstance(payload, dict) and payload.get("validation"):
        failures = "; ".join(str(v.get("message", v)) for v in payload["validation"] if isinstance(v, dict))
        message = f"{message}: {failures}"
    return message


def _request_left(exc: requests.RequestException) -> bool:
    """Whether the request may have reached the provider (then the outcome is unknown)."""
    if isinstance(exc, requests.ConnectTimeout):
        return False
    if isinstance(exc, requests.ReadTimeout):
        return True
    if isinstance(exc, requests.ConnectionError):
        reason = str(exc.args[0] if exc.args else exc)
        # Refused / unreachable / DNS: nothing was sent. Aborted or reset mid-response: it may have been.
        return not any(marker in reason for marker in ("NewConnectionError", "Failed to resolve", "Connection refused"))
    return True


async def run(http: RedirectingHttpClient, call: Callable[[], T], what: str, *, departure: bool = False) -> T:
    """Run one SDK call in a thread; translate its failures into domain errors."""

    def attempt() -> T:
        try:
            return call()
        except TwilioRestException as exc:
            retry_after, body = http.last_error()
            raise map_twilio_error(exc.status, exc.code, _describe(exc, body), retry_after) from None
        except requests.RequestException as exc:
            kind = type(exc).__name__
            if _request_left(exc):
                raise OutcomeUnknown(f"twilio {what}: no answer ({kind}); it may have been accepted") from None
            raise RetryableSendError(
                f"twilio {what}: could not connect ({kind})", code="provider_unreachable"
            ) from None

    return await run_blocking(attempt, departure=departure)


def as_dict(instance: Any) -> dict[str, Any]:
    """The fields of an SDK instance we keep (for logs and tests), without credentials."""
    return {k: getattr(instance, k, None) for k in ("sid", "status", "to", "from_", "num_segments", "price")}
