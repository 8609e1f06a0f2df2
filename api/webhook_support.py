"""What the provider webhooks share: signature checks on the raw request, and enrollment signals owed.

Order of work in every webhook: verify the signature on the raw bytes (403, nothing stored, when it fails);
apply the effects in one transaction that also inserts the callback's dedupe key (a duplicate or replay
finds the key and changes nothing); only then signal running enrollments. Signals that Temporal did not
take stay in the receipt (``pending_signals``) and are retried when the provider delivers the callback
again; the workflow counts an event id once, so a repeated signal is harmless.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

from fastapi import Request

from api.deps import Services
from api.problems import ProblemError
from api.temporal_gateway import TemporalUnavailable
from core.signatures import TWILIO_SETTINGS_HEADER, TWILIO_SIGNATURE_HEADER, verify_twilio
from store.repos import inbound as inbound_repo
from workflows.contact_cadence import EventSignal

log = logging.getLogger("omnireach.webhooks")


def public_url(request: Request, services: Services) -> str:
    """The URL the provider called, as seen from outside: OMNIREACH_PUBLIC_URL + path + query."""
    query = request.url.query
    return services.settings.public_url + request.url.path + (f"?{query}" if query else "")


async def twilio_params(request: Request, services: Services) -> list[tuple[str, str]]:
    """The form parameters of a Twilio callback whose signature is valid; otherwise 403 (nothing stored)."""
    raw = await request.body()
    try:
        params = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        params = []
    check = verify_twilio(
        services.settings.twilio_auth_token,
        public_url(request, services),
        params,
        request.headers.get(TWILIO_SIGNATURE_HEADER),
        request.headers.get(TWILIO_SETTINGS_HEADER),
    )
    if not check:
        log.warning("event=webhook_refused provider=twilio path=%s reason=%r", request.url.path, check.reason)
        raise ProblemError(403, f"request refused: {check.reason}")
    return params


def signal(workflow_id: str, name: str, step_id: str | None, event_id: str) -> dict[str, str | None]:
    """One owed enrollment signal, as stored in a receipt."""
    return {"workflow_id": workflow_id, "name": name, "step_id": step_id, "event_id": event_id}


async def deliver_signals(services: Services, owed: dict[int, list[dict]]) -> None:
    """Send the signals owed per receipt id; receipts fully sent are marked. 503 when Temporal is down:
    the effects are stored, and the provider's redelivery retries the signals."""
    done: list[int] = []
    try:
        for receipt_id, signals in owed.items():
            for item in signals:
                await services.temporal.signal_event(
                    item["workflow_id"], EventSignal(item["name"], item.get("step_id"), item["event_id"])
                )
            done.append(receipt_id)
    except TemporalUnavailable as exc:
        log.error("event=webhook_signal_failed receipts=%d error=%s", len(owed) - len(done), exc)
        raise ProblemError(
            503, f"recorded, but the running enrollments could not be told yet: {exc}; deliver it again"
        ) from exc
    finally:
        if done:
            await services.db.run(lambda s: inbound_repo.mark_signalled(s, done))
