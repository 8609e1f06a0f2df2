"""The send-time decision (SPEC section 5): may this message go out now, later, or never?

Pure: the deliver activity gathers the facts from the database inside its transaction and asks
`decide`. Order matters and is fixed: permission first (consent, address, suppression, registry
freshness), then time (timezone, windows, legal hours), then volume (frequency caps), so the recorded
reason is the most fundamental one. Legal hours (core.jurisdiction) arrive as extra windows that are
intersected with the cadence window: the stricter one wins at every instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from core.timewindow import DailyWindow, is_allowed, next_allowed

NO_TIMEZONE_RETRY = timedelta(hours=24)
REGISTRY_RETRY = timedelta(hours=24)  # a stale Do-Not-Call copy blocks until a fresh one is imported


@dataclass(frozen=True)
class SendFacts:
    channel: str
    purpose: str
    address: str | None
    address_unusable: str | None
    consent_status: str | None  # granted | withdrawn | None (never recorded)
    suppressed: str | None  # why the address is suppressed, or None
    now: datetime
    zone: ZoneInfo | None
    country: str | None
    windows: Sequence[DailyWindow] = ()
    per_day: int | None = None
    per_week: int | None = None
    sent_today: int = 0
    sent_this_week: int = 0
    legal_windows: Sequence[DailyWindow] = ()  # the jurisdiction's legal hours for this channel x purpose
    registry_block: str | None = None  # registry_stale | registry_missing: the DNC copy cannot be trusted
    registry_detail: str = ""


@dataclass(frozen=True)
class Verdict:
    outcome: str  # allow | defer | skip
    reason: str
    detail: str
    until: datetime | None = None

    @property
    def allowed(self) -> bool:
        return self.outcome == "allow"


def decide(f: SendFacts) -> Verdict:
    """Apply the send-time rules in order; the first that refuses names the reason."""
    if f.consent_status != "granted":
        reason = "consent_withdrawn" if f.consent_status == "withdrawn" else "no_consent"
        return Verdict(
            "skip",
            reason,
            f"no {f.purpose} consent for {f.channel}"
            + (" (withdrawn)" if f.consent_status == "withdrawn" else " on record"),
        )
    if not f.address:
        return Verdict("skip", "address_missing", f"contact has no {f.channel} address")
    if f.address_unusable:
        return Verdict("skip", "address_unusable", f"{f.channel} address unusable: {f.address_unusable}")
    if f.suppressed:
        return Verdict("skip", "suppressed", f"address suppressed: {f.suppressed}")
    if f.registry_block:
        detail = f.registry_detail or "the national Do-Not-Call registry copy is missing or too old"
        return Verdict("defer", f.registry_block, detail, f.now + REGISTRY_RETRY)
    windows = (*f.windows, *f.legal_windows)
    if (windows or f.per_day or f.per_week) and f.zone is None:
        return Verdict(
            "defer",
            "no_timezone",
            "contact has no usable timezone; not sending at a guessed "
            "hour (set the contact's timezone or a single-zone country)",
            f.now + NO_TIMEZONE_RETRY,
        )
    if windows:
        assert f.zone is not None
        opening = next_allowed(f.now, f.zone, windows, f.country)
        if opening is None:
            what = "the cadence window and the legal hours never overlap" if f.legal_windows else "no allowed time"
            return Verdict("skip", "window_never_opens", f"{what} within a year")
        if opening > f.now:
            local = opening.astimezone(f.zone).isoformat()
            if f.legal_windows and not is_allowed(f.now, f.zone, f.legal_windows, f.country):
                sources = "; ".join(sorted({getattr(w, "source", "") or "legal hours" for w in f.legal_windows}))
                detail = f"outside the legal hours ({sources}); next opening {local}"
                return Verdict("defer", "outside_legal_hours", detail, opening)
            return Verdict("defer", "outside_window", f"outside the allowed hours; next opening {local}", opening)
    if f.per_day is not None and f.sent_today >= f.per_day:
        assert f.zone is not None
        _, day_end = local_day_bounds(f.now, f.zone)
        return _after_cap(f, day_end, "cap_per_day", f"daily cap of {f.per_day} reached")
    if f.per_week is not None and f.sent_this_week >= f.per_week:
        assert f.zone is not None
        _, week_end = local_week_bounds(f.now, f.zone)
        return _after_cap(f, week_end, "cap_per_week", f"weekly cap of {f.per_week} reached")
    return Verdict("allow", "allowed", "consent, address, suppression, hours and caps all allow it")


def _after_cap(f: SendFacts, boundary: datetime, reason: str, detail: str) -> Verdict:
    windows = (*f.windows, *f.legal_windows)
    until = next_allowed(boundary, f.zone, windows, f.country) if windows and f.zone else boundary
    return Verdict("defer", reason, detail, until or boundary)


def _local_midnight(day, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, time(0), tzinfo=zone).astimezone(ZoneInfo("UTC"))


def local_day_bounds(now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The contact's local calendar day containing `now`, as UTC [start, end)."""
    local = now.astimezone(zone).date()
    return _local_midnight(local, zone), _local_midnight(local + timedelta(days=1), zone)


def local_week_bounds(now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The contact's local Monday-to-Sunday week containing `now`, as UTC [start, end)."""
    local = now.astimezone(zone).date()
    monday = local - timedelta(days=local.weekday())
    return _local_midnight(monday, zone), _local_midnight(monday + timedelta(days=7), zone)


def most_telling(verdicts: list[tuple[str, Verdict]]) -> tuple[str, Verdict]:
    """Of the verdicts for a channel and its fallback: a deferral (try again later) beats a skip, the
    earliest deferral first; otherwise the primary channel's reason. The deliver activity and the simulator
    both decide this way."""
    deferrals = [(c, v) for c, v in verdicts if v.outcome == "defer"]
    if deferrals:
        return min(deferrals, key=lambda cv: cv[1].until or datetime.max.replace(tzinfo=ZoneInfo("UTC")))
    return verdicts[0]
