"""Gather, inside the caller's transaction, everything the send-time rules need, and ask core.

Used by the deliver activity for every automated send, and by call tasks at claim and at dial, so one
place decides whether a contact may be reached on a channel for a purpose right now. It adds the
jurisdiction's rules (core.jurisdiction) to what the caller asks: legal hours for the channel and the
contact's country (intersected with the caller's windows: the stricter wins), the freshness of national
Do-Not-Call registries (a stale or missing copy blocks instead of reaching someone unchecked) and
frequency caps counted across every cadence and every agent call.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session

from core.jurisdiction import TELEMARKETING, JurisdictionPolicy, default_policy, number_country, registry_status
from core.permission import SendFacts, Verdict, decide, local_day_bounds, local_week_bounds
from core.timewindow import DailyWindow
from store.models import Contact
from store.repos import consent as consent_repo
from store.repos import dnc as dnc_repo
from store.repos import outbox as outbox_repo
from store.repos import tasks as task_repo
from store.repos.claims import Callee
from store.repos.dnc import Blocking

ADDRESS_FIELD = {"email": "email", "sms": "phone", "voice": "phone", "whatsapp": "whatsapp"}
PHONE_CHANNELS = frozenset({"sms", "voice", "whatsapp"})
REGION_ATTRIBUTES = ("region", "province")  # contact attributes naming a region, e.g. "ID-BA" or "Bali"


class _Unread(enum.Enum):
    UNREAD = "unread"


UNREAD = _Unread.UNREAD  # the consent is read by the check (callers that read it already pass its status)


@dataclass(frozen=True)
class Reachability:
    """What a caller asks: this channel, for this purpose, within these windows and caps."""

    channel: str
    purpose: str
    windows: tuple[DailyWindow, ...] = ()
    per_day: int | None = None
    per_week: int | None = None


def count_call_attempts(session: Session, contact_id: str, start_utc: datetime, end_utc: datetime) -> int:
    """Agent calls to the contact in [start, end) (the call-task log's "dialed" rows), so frequency caps
    count them too."""
    return task_repo.count_dials(session, contact_id, start_utc, end_utc)


def count_contacts(session: Session, contact_id: str, start_utc: datetime, end_utc: datetime) -> int:
    """Every time we reached the contact in [start, end), across all cadences: messages sent (outbox rows
    that went out or may have) plus agent call attempts (``count_call_attempts``)."""
    sends = outbox_repo.count_sends(session, contact_id, start_utc, end_utc)
    return sends + count_call_attempts(session, contact_id, start_utc, end_utc)


def jurisdiction_of(contact: Contact | Callee) -> str | None:
    """The country whose rules apply: the contact's, else the one their phone number belongs to."""
    return contact.country or number_country(contact.phone or contact.whatsapp)


def _region(contact: Contact | Callee) -> str | None:
    attributes = contact.attributes or {}
    for name in REGION_ATTRIBUTES:
        value = attributes.get(name)
        if isinstance(value, str) and value.strip():
            return value
    return None


def check_permission(
    session: Session,
    contact: Contact | Callee,
    ask: Reachability,
    now: datetime,
    *,
    salt: str,
    policy: JurisdictionPolicy | None = None,
    consent_status: str | Literal[_Unread.UNREAD] | None = UNREAD,
    suppression: Blocking | Literal[_Unread.UNREAD] | None = UNREAD,
) -> Verdict:
    """The verdict for reaching ``contact`` now; reads the ledger, suppressions, registry imports and sends
    in ``session``. ``policy``: the jurisdiction rules (default: the shipped ones). ``consent_status``: the
    status of the latest consent record for the channel and purpose, when the caller read it in this
    transaction already (None: there is none). ``suppression``: the address's most binding suppression,
    registries included, when the caller read it in this transaction already (store.repos.dnc
    .phone_blocking; None: there is none)."""
    policy = policy or default_policy()
    address = getattr(contact, ADDRESS_FIELD[ask.channel])
    unusable = contact.email_unusable_reason if ask.channel == "email" else contact.phone_unusable_reason
    if consent_status is UNREAD:
        consent_status = consent_repo.current_consent(session, contact.id, ask.channel, ask.purpose).status
    country = jurisdiction_of(contact)
    number_home = number_country(address) if ask.channel in PHONE_CHANNELS and address else None
    registry_country = number_home or country
    rule = policy.registry_rule(registry_country, ask.channel, ask.purpose)
    telemarketing = rule.purposes if rule else frozenset(TELEMARKETING)
    if suppression is UNREAD:
        suppression = (
            dnc_repo.find_blocking(
                session,
                channel=ask.channel,
                address=address,
                salt=salt,
                include_registries=ask.purpose in telemarketing,
            )
            if address
            else None
        )
    elif suppression is not None and suppression.kind == "registry" and ask.purpose not in telemarketing:
        # Read with the registries, which sort after every other match: a registry match means there is no
        # other, and registries bind telemarketing only.
        suppression = None
    imported = dnc_repo.latest_registry_dates(session, registry_country) if rule is not None else {}
    registry = registry_status(rule, registry_country, imported, now.date())
    zone = policy.resolve_zone(contact.timezone, country, _region(contact))
    legal = policy.legal_windows(country, ask.channel, ask.purpose)
    sent_today = sent_week = 0
    if zone is not None and (ask.per_day or ask.per_week):
        sent_today = count_contacts(session, contact.id, *local_day_bounds(now, zone))
        sent_week = count_contacts(session, contact.id, *local_week_bounds(now, zone))
    return decide(
        SendFacts(
            channel=ask.channel,
            purpose=ask.purpose,
            address=address,
            address_unusable=unusable,
            consent_status=consent_status,
            suppressed=_describe(suppression) if suppression else None,
            now=now,
            zone=zone,
            country=country,
            windows=ask.windows,
            per_day=ask.per_day,
            per_week=ask.per_week,
            sent_today=sent_today,
            sent_this_week=sent_week,
            legal_windows=legal,
            registry_block=None if registry.ok else registry.reason,
            registry_detail=registry.detail,
        )
    )


def _describe(row) -> str:
    if row.kind == "erasure":
        return "erasure (the person asked to be forgotten; never contact again)"
    if row.kind == "registry":
        as_of = f" as of {row.as_of.isoformat()}" if row.as_of else ""
        return f"on the {row.country or ''} {row.list_name} registry{as_of}".replace("  ", " ")
    what = {"global": "the global list", "company_dnc": "the company do-not-call list"}.get(
        row.kind, f"list {row.list_name}"
    )
    return what + (f" ({row.reason})" if row.reason else "")
