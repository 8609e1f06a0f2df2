"""Phone calls through Twilio's Calls API with the official SDK.

Two uses:

* a cadence step ``send: voice``: an automated reminder call that speaks the rendered ``voice.j2`` text with
  TwiML ``<Say>`` (never recorded);
* ``bridge()``: the agent console calls the agent's phone first and, when the agent answers, dials the
  contact with our caller id. The call is recorded only when the request says the contact's recording
  consent is on record (all-party-consent states, COMPLIANCE.md "Calls").

Exactly one of Url or Twiml goes with each call (we always send inline Twiml).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from twilio.rest import Client
from twilio.twiml.voice_response import VoiceResponse

from channels.base import OutgoingMessage, PermanentSendError, SendReceipt
from channels.ratelimit import Pace, pace
from channels.twilio_common import RedirectingHttpClient, run, status_callback
from channels.twilio_sms import strict_e164

MAX_SAY_CHARACTERS = 4000  # Twilio's TwiML document limit is 4,000 characters
RING_SECONDS = 30  # at least 15 s before giving up (COMPLIANCE.md: predictive dialers)
RECONCILE_LOOKBACK = 20
CLOCK_SKEW = timedelta(minutes=2)


@dataclass(frozen=True)
class BridgeRequest:
    """Connect an agent and a contact: the agent's phone rings first, then the contact's."""

    call_key: str  # our idempotency key for the call (e.g. the task id and attempt)
    agent_phone: str
    contact_phone: str
    record: bool = False
    recording_consent_recorded: bool = False  # the contact's consent to recording is in the ledger
    whisper: str = "Connecting you to the contact."


@dataclass(frozen=True)
class BridgeReceipt:
    call_sid: str
    status: str
    recording: bool
    note: str = ""


def say_twiml(text: str, language: str | None = None) -> str:
    """``<Response><Say>text</Say></Response>``, escaped by the SDK's TwiML builder."""
    response = VoiceResponse()
    if language:
        response.say(text, language=language)
    else:
        response.say(text)
    return str(response)


def bridge_twiml(contact_phone: str, caller_id: str, *, record: bool, whisper: str) -> str:
    """What the agent hears on answering, then the contact dialled with our caller id (optionally recorded)."""
    response = VoiceResponse()
    if whisper:
        response.say(whisper)
    options: dict = {"caller_id": caller_id, "timeout": RING_SECONDS}
    if record:
        options["record"] = "record-from-answer-dual"
    dial = response.dial(**options)
    dial.number(contact_phone)
    return str(response)


class TwilioVoiceChannel:
    """One caller id (TWILIO_VOICE_FROM), paced at ``rate`` calls per second."""

    name = "twilio-voice"

    def __init__(self, client: Client, *, from_number: str, public_url: str, rate: float = 1.0):
        self.client = client
        self.http: RedirectingHttpClient = client.http_client  # type: ignore[assignment]
        client.calls  # noqa: B018  # the SDK imports this API lazily (~0.1 s): at start-up, not in a paced send
        self.from_number = strict_e164(from_number, "TWILIO_VOICE_FROM")
        self.public_url = public_url
        self.rate = rate

    def pace(self, message: OutgoingMessage) -> Pace | None:
        return pace(f"twilio:{self.from_number}", 1, self.rate)

    def request(self, message: OutgoingMessage) -> dict:
        """Calls.create parameters for an automated <Say> call: To, From and Twiml (never Url), no recording."""
        if not message.text.strip():
            raise PermanentSendError("voice message is empty: check voice.j2", code="body_empty")
        twiml = say_twiml(message.text, message.metadata.get("language") or None)
        if len(twiml) > MAX_SAY_CHARACTERS:
            raise PermanentSendError(
                f"voice message is {len(twiml)} characters of TwiML; Twilio accepts at most {MAX_SAY_CHARACTERS}",
                code="body_too_long",
            )
        return {
            "to": strict_e164(message.to),
            "from_": self.from_number,
            "twiml": twiml,
            "timeout": RING_SECONDS,
            # Without StatusCallbackEvent Twilio reports "completed" only: all a reminder needs.
            "status_callback": status_callback(self.public_url, message.message_key),
        }

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        params = self.request(message)
        call = await run(self.http, lambda: self.client.calls.create(**params), "place call", departure=True)
        return SendReceipt(self.name, call.sid or "", call.status or "queued")

    async def lookup(self, message_key: str) -> SendReceipt | None:
        return None  # see reconcile()

    async def reconcile(self, message: OutgoingMessage, since: datetime) -> SendReceipt | None:
        """A call from our caller id to this number since ``since``, or None."""
        to = strict_e164(message.to)
        found = await run(
            self.http,
            lambda: self.client.calls.list(to=to, from_=self.from_number, limit=RECONCILE_LOOKBACK),
            "look up call",
        )
        for item in found:
            if item.date_created is None or item.date_created >= since - CLOCK_SKEW:
                return SendReceipt(self.name, item.sid or "", item.status or "queued")
        return None

    def bridge_request(self, request: BridgeRequest) -> tuple[dict, bool, str]:
        """(Calls.create parameters, recording on?, note) for an agent-to-contact bridge."""
        agent = strict_e164(request.agent_phone, "agent phone")
        contact = strict_e164(request.contact_phone, "contact phone")
        recording = request.record and request.recording_consent_recorded
        note = ""
        if request.record and not request.recording_consent_recorded:
            note = "not recorded: the contact's recording consent is not on record"
        params = {
            "to": agent,
            "from_": self.from_number,
            "twiml": bridge_twiml(contact, self.from_number, record=recording, whisper=request.whisper),
            "timeout": RING_SECONDS,
            # "completed" only (Twilio's default): repeated StatusCallbackEvent parameters are valid for Twilio
            # but the published spec cannot describe them, so the contract test could not vouch for them.
            "status_callback": status_callback(self.public_url, request.call_key),
        }
        return params, recording, note

    async def bridge(self, request: BridgeRequest) -> BridgeReceipt:
        """Ring the agent, then connect the contact (for the agent console's click-to-call)."""
        params, recording, note = self.bridge_request(request)
        call = await run(self.http, lambda: self.client.calls.create(**params), "bridge call")
        return BridgeReceipt(call.sid or "", call.status or "queued", recording, note)
