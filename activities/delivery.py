"""The `deliver` activity: every automated send goes through here, and only here.

Inside one transaction it re-checks permission against the ledger (consent, address, suppression,
window, caps), renders the message and writes the outbox row under the workflow's deterministic
message key. Only then does it call the channel. A retried attempt finds the row: if the channel
already has the message (looked up, not resent) it is marked sent; nothing is ever sent twice.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import NoReturn, TypeVar

from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import sending
from activities.heartbeats import heartbeating
from activities.permission_check import ADDRESS_FIELD, Reachability, check_permission
from activities.types import DeliverRequest, DeliverResult
from channels.base import (
    AddressUnusable,
    Channel,
    ConfigurationError,
    OutcomeUnknown,
    OutgoingMessage,
    PermanentSendError,
    RecipientOptedOut,
    RetryableSendError,
    SendReceipt,
    TemplateRequired,
)
from core import tokens
from core.jurisdiction import JurisdictionPolicy
from core.messages import MessageCatalog, TemplateProblem, build_context
from core.model import Window
from core.permission import Verdict, most_telling
from core.sms import segment_info
from store.models import Contact
from store.repos import contacts as contacts_repo
from store.repos import decisions as decision_repo
from store.repos import outbox as outbox_repo

log = logging.getLogger("omnireach.deliver")
SENT_STATES = frozenset({"sent", "delivered", "opened", "clicked", "replied"})
WHATSAPP_SESSION = timedelta(hours=24)
IN_FLIGHT = "in flight: the provider was called and no answer was recorded"
NOT_SENT_CANCELLED = "not sent: the attempt was cancelled before the request left"
T = TypeVar("T")


@dataclass(frozen=True)
class Sender:
    name: str
    address: str
    public_url: str
    secret_key: str


class DeliveryActivities:
    """Dependencies are injected by worker.py; one object per process."""

    def __init__(
        self,
        session_factory: sessionmaker[Session],
        channels: Mapping[str, Channel],
        catalog: MessageCatalog,
        sender: Sender,
        clock: Callable[[], datetime] | None = None,
        policy: JurisdictionPolicy | None = None,
    ):
        self.sessions = session_factory
        self.channels = channels
        self.catalog = catalog
        self.sender = sender
        self.clock = clock or (lambda: datetime.now(UTC))
        self.policy = policy  # legal hours, registries (core.jurisdiction); None: the shipped defaults

    @activity.defn(name="deliver")
    async def deliver(self, request: DeliverRequest) -> DeliverResult:
        async with heartbeating():  # a killed worker's send is retried within the heartbeat timeout
            return await self._deliver(request)

    async def _deliver(self, request: DeliverRequest) -> DeliverResult:
        # Every database step runs in a thread (asyncio.to_thread, which carries the activity's context): the
        # worker's event loop also runs workflow tasks and the other activities, and must not wait on a query.
        claimed = await self._before_departure(
            request.message_key,
            functools.partial(self._prepare, request),
            lambda done: isinstance(done, _Claimed) and done.in_flight and not done.unknown,
        )
        if isinstance(claimed, DeliverResult):
            return claimed
        message, channel = claimed.message, claimed.channel
        adapter = self.channels[channel]
        # An earlier attempt may have sent it: the console is looked up by key; a provider is asked when the
        # outcome was unknown (a timeout after the request left), never blindly sent to again.
        receipt = await sending.find_earlier(adapter, message, outcome_unknown=claimed.unknown, since=claimed.since)
        if receipt is None:
            async with sending.paced(self.sessions, adapter, message, self.clock):
                sent = await self._send(
                    adapter, message, request, in_flight=claimed.in_flight, take_back=not claimed.unknown
                )
            if isinstance(sent, DeliverResult):
                return sent
            receipt = sent
        return await asyncio.to_thread(self._record_sent, request, channel, receipt)

    async def _before_departure(self, message_key: str, step: Callable[[], T], marked: Callable[[T], bool]) -> T:
        """``step()`` (a transaction that may mark the row in flight) in a thread, awaited without blocking the loop.

        A cancellation meanwhile (a worker shutting down) lets the step finish, then takes back the in-flight mark
        it made (``marked(result)``) before going on: this attempt's request will not leave, and a row left in
        flight would make the retry count it as possibly sent where the provider cannot be asked (email).
        """
        work = asyncio.ensure_future(asyncio.to_thread(step))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            await asyncio.shield(self._take_back(message_key, work, marked))
            raise

    async def _take_back(self, message_key: str, work: asyncio.Future[T], marked: Callable[[T], bool]) -> None:
        try:
            done = await work
        except Exception:
            return  # rolled back: nothing was marked
        if marked(done):
            await asyncio.to_thread(self._note, message_key, NOT_SENT_CANCELLED)

    def _note(self, message_key: str, note: str) -> None:
        """Mark a pending row in flight (before the provider call) or refused (after a retryable refusal)."""
        with self.sessions.begin() as session:
            row = outbox_repo.get_outbox(session, message_key)
            if row is not None and row.status == "pending":
                row.error = note

    # -- step 1: decide and claim, in one transaction ------------------------------------------------
    def _prepare(self, request: DeliverRequest) -> DeliverResult | _Claimed:
        now = self.clock()
        with self.sessions.begin() as session:
            existing = outbox_repo.get_outbox(session, request.message_key)
            if existing is not None and existing.status in SENT_STATES:
                return DeliverResult(
                    "sent",
                    "already_sent",
                    "sent by an earlier attempt",
                    existing.channel,
                    message_key=request.message_key,
                )
            # Row lock: two cadences sending to one contact at once must not both pass the frequency cap.
            contact = contacts_repo.lock_contact(session, request.contact_id)
            if existing is not None and existing.status == "unknown" and contact is not None:
                # Decided and possibly sent already: reconcile it as it was, without deciding again (the
                # message itself now counts towards the caps).
                rebuilt = self._build(request, contact, existing.channel, now)
                template = rebuilt if isinstance(rebuilt, OutgoingMessage) else None
                message = sending.message_from_row(existing, template)
                return _Claimed(message, existing.channel, unknown=True, since=existing.created_at, in_flight=False)
            if contact is None or contact.erased_at is not None:
                return self._decided(
                    session, request, request.channel, Verdict("skip", "contact_gone", "contact erased or unknown"), now
                )
            verdicts: list[tuple[str, Verdict]] = []
            for channel in filter(None, (request.channel, request.fallback)):
                verdict = self._verdict(session, request, contact, channel, now)
                if verdict.allowed:
                    built = self._build(request, contact, channel, now)
                    if isinstance(built, Verdict):
                        verdicts.append((channel, built))
                        continue
                    # Unpaced, nothing stands between this commit and the provider call: the in-flight mark
                    # is written with the claim, saving a transaction. A paced send may yet be queued for
                    # minutes (an activity retry), so it is marked only once its slot has come (_send).
                    mark = sending.pace_of(self.channels[channel], built) is None
                    row, created = outbox_repo.claim_outbox(
                        session,
                        message_key=request.message_key,
                        absent=existing is None,
                        enrollment_id=request.enrollment_id,
                        contact_id=contact.id,
                        cadence_id=request.cadence_id,
                        step_id=request.step_id,
                        channel=channel,
                        purpose=request.purpose,
                        variant=request.variant,
                        locale=request.locale,
                        to_address=built.to,
                        subject=built.subject,
                        body=built.text,
                        html=built.html,
                        **_segments(built),
                        **({"error": IN_FLIGHT} if mark else {}),
                    )
                    if created:
                        return _Claimed(built, channel, unknown=False, since=now, in_flight=mark)
                    # An earlier attempt claimed it: unknown if it died while its request was out (read before
                    # this attempt marks the row in flight itself).
                    unknown = row.status == "unknown" or row.error == IN_FLIGHT
                    if mark and row.status == "pending":
                        row.error = IN_FLIGHT
                    return _Claimed(built, channel, unknown=unknown, since=row.created_at, in_flight=mark)
                verdicts.append((channel, verdict))
            channel, verdict = most_telling(verdicts)
            return self._decided(session, request, channel, verdict, now)

    def _verdict(
        self, session: Session, request: DeliverRequest, contact: Contact, channel: str, now: datetime
    ) -> Verdict:
        windows = (Window.model_validate(request.window).daily(),) if request.window else ()
        ask = Reachability(channel, request.purpose, windows, request.per_day, request.per_week)
        return check_permission(session, contact, ask, now, salt=self.sender.secret_key, policy=self.policy)

    def _build(
        self, request: DeliverRequest, contact: Contact, channel: str, now: datetime, force_template: bool = False
    ) -> OutgoingMessage | Verdict:
        token = tokens.sign({"c": contact.id, "ch": channel, "p": request.purpose}, self.sender.secret_key)
        unsubscribe_url = f"{self.sender.public_url}/u/{token}"
        context = build_context(
            contact=_contact_context(contact),
            facts=request.facts,
            cadence={"id": request.cadence_id, "name": request.cadence_name},
            step={"id": request.step_id, "channel": channel, "variant": request.variant},
            sender={"name": self.sender.name, "address": self.sender.address},
            unsubscribe_url=unsubscribe_url,
        )
        template_sid, variables = None, {}
        try:
            if channel == "whatsapp" and (force_template or not _in_whatsapp_session(contact, now)):
                approved = self.catalog.whatsapp_template(
                    request.message, context, locale=contact.locale or request.locale, variant=request.variant
                )
                if approved is None:
                    return Verdict(
                        "skip",
                        "whatsapp_no_template",
                        "outside the 24h WhatsApp session and the message has no approved template (whatsapp.yaml)",
                    )
                template_sid, variables = approved.content_sid, approved.variables
            rendered = self.catalog.render(
                request.message, channel, context, locale=contact.locale or request.locale, variant=request.variant
            )
        except TemplateProblem as problem:
            raise ApplicationError(f"template error: {problem}", type="TemplateError", non_retryable=True) from None
        headers = {}
        if channel == "email":
            headers = {
                "List-Unsubscribe": f"<{unsubscribe_url}>",
                "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
            }
        return OutgoingMessage(
            message_key=request.message_key,
            channel=channel,
            to=getattr(contact, ADDRESS_FIELD[channel]),
            text=rendered.text,
            subject=rendered.subject,
            html=rendered.html,
            from_name=self.sender.name,
            headers=headers,
            metadata={"cadence": request.cadence_id, "step": request.step_id, "variant": request.variant or ""},
            template_sid=template_sid,
            template_variables=variables,
        )

    def _decided(
        self, session: Session, request: DeliverRequest, channel: str, verdict: Verdict, now: datetime
    ) -> DeliverResult:
        outcome = "deferred" if verdict.outcome == "defer" else "skipped"
        decision_repo.record_decision(
            session,
            contact_id=request.contact_id,
            enrollment_id=request.enrollment_id,
            step_id=request.step_id,
            message_key=request.message_key,
            channel=channel,
            decision=outcome,
            reason=verdict.reason,
            detail=verdict.detail,
            until=verdict.until,
            decided_at=now,
        )
        log.info(
            "event=send_decision key=%s channel=%s decision=%s reason=%s",
            request.message_key,
            channel,
            outcome,
            verdict.reason,
        )
        return DeliverResult(
            outcome,
            verdict.reason,
            verdict.detail,
            channel,
            verdict.until.isoformat() if verdict.until else None,
            request.message_key,
        )

    # -- step 2: the provider call ---------------------------------------------------------------------
    async def _send(
        self,
        adapter: Channel,
        message: OutgoingMessage,
        request: DeliverRequest,
        *,
        in_flight: bool = False,
        take_back: bool = True,
    ) -> SendReceipt | DeliverResult:
        """Call the provider; refusals become ledger entries, retries, deferrals or a loud configuration error.

        ``in_flight``: the claim already marked the row in flight (committed), so it is not marked again.
        ``take_back``: a cancellation while marking may clear the mark (False: an earlier attempt's mark, whose
        request may have left, was there before).
        """
        if not in_flight:  # a crash from here on leaves the outcome unknown
            note = functools.partial(self._note, request.message_key, IN_FLIGHT)
            await self._before_departure(request.message_key, note, lambda _: take_back)
        try:
            return await adapter.send(message)
        except TemplateRequired as exc:
            # WhatsApp says the 24h session is closed (63016): send the approved template instead, if any.
            templated = await asyncio.to_thread(self._template_instead, request, message)
            if templated is not None:
                return await self._send(adapter, templated, request)
            return await asyncio.to_thread(self._refused, adapter, message, request, exc)
        except OutcomeUnknown as exc:
            await asyncio.to_thread(self._mark_unknown, request.message_key, f"{exc.code}: {exc}")
            log.warning("event=send_outcome_unknown key=%s provider=%s", request.message_key, adapter.name)
            raise ApplicationError(str(exc), type=exc.code, next_retry_delay=sending.RECONCILE_AFTER) from exc
        except RetryableSendError as exc:
            # refused: safe to send again
            await asyncio.to_thread(self._note, request.message_key, f"not sent: {exc.code}: {exc}")
            if exc.retry_after and timedelta(seconds=exc.retry_after) >= sending.DEFER_AT_LEAST:
                return await asyncio.to_thread(self._back_off, request, message.channel, exc)
            delay = timedelta(seconds=exc.retry_after) if exc.retry_after else None
            raise ApplicationError(str(exc), type=exc.code, next_retry_delay=delay) from exc
        except (RecipientOptedOut, AddressUnusable, ConfigurationError, PermanentSendError) as exc:
            return await asyncio.to_thread(self._refused, adapter, message, request, exc)

    def _mark_unknown(self, message_key: str, error: str) -> None:
        with self.sessions.begin() as session:
            outbox_repo.mark_outbox_unknown(session, message_key, error=error)

    def _refused(
        self, adapter: Channel, message: OutgoingMessage, request: DeliverRequest, exc: PermanentSendError
    ) -> NoReturn:
        now = self.clock()
        with self.sessions.begin() as session:
            outbox_repo.mark_outbox_failed(session, request.message_key, error=f"{exc.code}: {exc}")
            effect = sending.record_refusal(
                session, contact_id=request.contact_id, message=message, provider=adapter.name, exc=exc, now=now
            )
            sending.release_slot(session, request.message_key)
            decision_repo.record_decision(
                session,
                contact_id=request.contact_id,
                enrollment_id=request.enrollment_id,
                step_id=request.step_id,
                message_key=request.message_key,
                channel=message.channel,
                decision="failed",
                reason=exc.code,
                detail=str(exc) + (f" ({effect})" if effect else ""),
                decided_at=now,
            )
        if isinstance(exc, ConfigurationError):  # loud: every send on this channel fails until someone fixes it
            log.error(
                "event=provider_configuration_error provider=%s channel=%s error=%s", adapter.name, message.channel, exc
            )
        raise ApplicationError(str(exc), type=exc.code, non_retryable=True) from exc

    def _template_instead(self, request: DeliverRequest, message: OutgoingMessage) -> OutgoingMessage | None:
        if message.channel != "whatsapp" or message.template_sid:
            return None
        with self.sessions() as session:
            contact = contacts_repo.get_contact(session, request.contact_id)
            if contact is None:
                return None
            built = self._build(request, contact, "whatsapp", self.clock(), force_template=True)
        return built if isinstance(built, OutgoingMessage) else None

    def _back_off(self, request: DeliverRequest, channel: str, exc: RetryableSendError) -> DeliverResult:
        """A long provider back-off (e.g. WhatsApp 131049, 24h) as a deferral the workflow waits out durably."""
        until = self.clock() + timedelta(seconds=exc.retry_after or 0)
        with self.sessions.begin() as session:
            sending.release_slot(session, request.message_key)
            return self._decided(session, request, channel, Verdict("defer", exc.code, str(exc), until), self.clock())

    def _record_sent(self, request: DeliverRequest, channel: str, receipt: SendReceipt) -> DeliverResult:
        now = self.clock()
        unconfirmed = receipt.status == sending.UNCONFIRMED
        detail = f"sent via {receipt.provider}" + _receipt_detail(receipt)
        with self.sessions.begin() as session:
            if not unconfirmed:  # an unconfirmed send stays "unknown" until the provider's events say more
                outbox_repo.mark_outbox_sent(
                    session,
                    request.message_key,
                    provider=receipt.provider,
                    provider_message_id=receipt.provider_message_id or None,
                    sent_at=now,
                )
            sending.release_slot(session, request.message_key)
            decision_repo.record_decision(
                session,
                contact_id=request.contact_id,
                enrollment_id=request.enrollment_id,
                step_id=request.step_id,
                message_key=request.message_key,
                channel=channel,
                decision="sent",
                reason="outcome_unknown" if unconfirmed else "allowed",
                detail=detail,
                decided_at=now,
            )
        log.info("event=sent key=%s channel=%s provider=%s", request.message_key, channel, receipt.provider)
        reason = "outcome_unknown" if unconfirmed else "allowed"
        return DeliverResult("sent", reason, detail, channel, message_key=request.message_key)


@dataclass(frozen=True)
class _Claimed:
    """A message decided and claimed in the outbox, ready for the provider.

    ``unknown``: an earlier attempt's outcome is unknown (ask the provider before sending); ``since``: when the
    row was first claimed; ``in_flight``: the claim's transaction already marked the row in flight.
    """

    message: OutgoingMessage
    channel: str
    unknown: bool
    since: datetime
    in_flight: bool


def _in_whatsapp_session(contact: Contact, now: datetime) -> bool:
    return contact.last_inbound_at is not None and now - contact.last_inbound_at < WHATSAPP_SESSION


def _receipt_detail(receipt: SendReceipt) -> str:
    """Segments, encoding and cost estimate when the provider call reported them (SMS)."""
    if receipt.status == sending.UNCONFIRMED:
        return " (no answer from the provider; not sent again: its events will confirm)"
    parts = []
    if receipt.segments:
        parts.append(f"{receipt.segments} segment(s) {receipt.encoding or ''}".strip())
    if receipt.cost_estimate is not None:
        parts.append(f"est. USD {receipt.cost_estimate:.4f}")
    return f" ({', '.join(parts)})" if parts else ""


def _segments(message: OutgoingMessage) -> dict:
    if message.channel != "sms":
        return {}
    info = segment_info(message.text)
    return {"segments": info.segments, "encoding": info.encoding}


def _contact_context(contact: Contact) -> dict:
    return {
        "id": contact.id,
        "external_id": contact.external_id,
        "name": contact.name,
        "email": contact.email,
        "phone": contact.phone,
        "whatsapp": contact.whatsapp,
        "country": contact.country,
        "timezone": contact.timezone,
        "locale": contact.locale,
        "attributes": dict(contact.attributes or {}),
    }
