"""Property tests of the send-time rules (hypothesis), against a real SQLite database.

Random contacts (countries, time zones good, bad and missing), cadence windows, caps, consent histories,
suppressions, registry imports and event orders are played through the real deliver activity (email, SMS)
and the shared permission check (voice). An independent oracle, written from COMPLIANCE.md rather than from
the code, says what must happen; the properties:
- nothing is ever sent without current consent, to a suppressed address, outside legal hours or the cadence
  window, over the caps, or (voice) with a stale or missing Do-Not-Call registry;
- whatever the oracle allows is sent (the rules do not over-block);
- every non-send has a recorded decision with a reason, and a deferral points at an instant the time rules
  allow.
A few full-workflow examples then run on the time-skipping Temporal server.
"""

from __future__ import annotations

import io
import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete, select
from temporalio.testing import WorkflowEnvironment

from activities.delivery import DeliveryActivities, Sender
from activities.permission_check import Reachability, check_permission
from activities.types import DeliverRequest
from channels.console import ConsoleChannel
from core.jurisdiction import default_policy, number_country
from core.messages import MessageCatalog
from core.model import Window
from core.timewindow import resolve_timezone
from store.db import make_engine, make_session_factory, upgrade
from store.models import Contact, SendDecision, Suppression
from store.permission_models import DncImport
from store.repos import dnc as dnc_repo
from store.repos.consent import append_consent
from store.repos.contacts import upsert_contact
from store.repos.suppressions import add_suppression
from tests.workflows.harness import Harness

SALT = "property-secret"
TEMPLATES = {
    "hello/email.subject.j2": "Hello {{ contact.name }}",
    "hello/email.txt.j2": "Hi.\n{{ sender.address }}\n{{ unsubscribe_url }}",
    "hello/sms.j2": "Hi {{ contact.name }}. Reply STOP to opt out",
}
PHONE_PREFIXES = {
    "US": ("+1212555", 4),
    "ID": ("+62812", 8),
    "SG": ("+659", 7),
    "GB": ("+447911", 6),
    "FR": ("+336", 8),
}
_used_numbers: set[str] = set()


def fresh_number(country: str | None) -> str:
    """A valid, never used number of the country (the suppressions of one example must not leak)."""
    import random

    from core.addresses import AddressError, normalize_phone

    prefix, digits = PHONE_PREFIXES[country or "ID"]
    while True:
        try:
            number = normalize_phone(prefix + "".join(random.choice("0123456789") for _ in range(digits)), None)
        except AddressError:
            continue
        if number not in _used_numbers and number_country(number) == (country or "ID"):  # not e.g. Guernsey
            _used_numbers.add(number)
            return number


ZONES = [
    "America/New_York",
    "America/Los_Angeles",
    "Asia/Jakarta",
    "Asia/Makassar",
    "Asia/Jayapura",
    "Asia/Singapore",
    "Europe/London",
    "Europe/Paris",
    None,
    "Mars/Base",
]
REGISTRY_DAYS = {"US": 31, "SG": 21, "GB": 28}
REGISTRY_CHANNELS = {"US": {"voice"}, "SG": {"voice", "sms"}, "GB": {"voice"}}
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_keys = itertools.count()


# ---- the oracle: COMPLIANCE.md, written out by hand ----------------------------------------------------
def legal_ok(country: str | None, channel: str, purpose: str, local: datetime) -> bool:
    if purpose == "service":
        return True
    if country == "US" and channel in ("sms", "voice"):
        return time(8) <= local.time() < time(21)
    if country == "GB" and channel == "voice":
        return time(8) <= local.time() < time(21)
    if country == "ID":
        closed = local.weekday() == 6 or local.date() in holidays.country_holidays("ID", years=local.year)
        return not closed and time(8) <= local.time() < time(18)
    return True


def legal_applies(country: str | None, channel: str, purpose: str) -> bool:
    if purpose == "service":
        return False
    return (
        (country == "US" and channel in ("sms", "voice"))
        or (country == "GB" and channel == "voice")
        or (country == "ID")
    )


def window_ok(window: dict | None, country: str | None, local: datetime) -> bool:
    if window is None:
        return True
    if WEEKDAYS[local.weekday()] not in window["days"]:
        return False
    start, _, end = window["hours"].partition("-")
    t = local.time()
    if t < time.fromisoformat(start) or (end != "24:00" and t >= time.fromisoformat(end)):
        return False
    if window["skip_holidays"] and country:
        return local.date() not in holidays.country_holidays(country, years=local.year)
    return True


@dataclass
class World:
    """What has happened to one contact, as the oracle sees it."""

    country: str | None
    timezone: str | None
    window: dict | None
    per_day: int | None
    per_week: int | None
    consent: dict[tuple[str, str], str] = field(default_factory=dict)
    suppressed: set[str] = field(default_factory=set)
    registry: dict[str, date] = field(default_factory=dict)  # country -> newest snapshot
    sent: list[datetime] = field(default_factory=list)

    @property
    def jurisdiction(self) -> str:
        """Whose rules apply: the contact's country, else the phone number's (an Indonesian number here)."""
        return self.country or "ID"

    @property
    def zone(self) -> ZoneInfo | None:
        return resolve_timezone(self.timezone, self.jurisdiction)

    def expect(self, channel: str, purpose: str, now: datetime) -> str | None:
        """None when the message must go out now; otherwise the rule that forbids it."""
        if self.consent.get((channel, purpose)) != "granted":
            return "consent"
        if ("email" if channel == "email" else "phone") in self.suppressed:
            return "suppressed"
        home = self.jurisdiction  # each contact's phone number belongs to its country (ID when none)
        if channel in REGISTRY_CHANNELS.get(home, set()) and purpose != "service":
            snapshot = self.registry.get(home)
            if snapshot is None or (now.date() - snapshot).days > REGISTRY_DAYS[home]:
                return "registry"
        time_rules = self.window is not None or legal_applies(home, channel, purpose)
        caps = self.per_day is not None or self.per_week is not None
        if (time_rules or caps) and self.zone is None:
            return "timezone"
        if not self.time_ok(channel, purpose, now):
            return "time"
        if caps:
            assert self.zone is not None
            today = now.astimezone(self.zone).date()
            monday = today - timedelta(days=today.weekday())
            days = [s.astimezone(self.zone).date() for s in self.sent]
            if self.per_day is not None and sum(d == today for d in days) >= self.per_day:
                return "cap"
            if (
                self.per_week is not None
                and sum(monday <= d < monday + timedelta(days=7) for d in days) >= self.per_week
            ):
                return "cap"
        return None

    def time_ok(self, channel: str, purpose: str, at: datetime) -> bool:
        zone = self.zone
        if zone is None:
            return self.window is None and not legal_applies(self.jurisdiction, channel, purpose)
        local = at.astimezone(zone)
        return legal_ok(self.jurisdiction, channel, purpose, local) and window_ok(self.window, self.jurisdiction, local)


# ---- strategies ------------------------------------------------------------------------------------------
windows = st.builds(
    lambda days, start, length, skip: {
        "days": sorted(days, key=WEEKDAYS.index),
        "hours": f"{start:02d}:00-{min(start + length, 24):02d}:00",
        "skip_holidays": skip,
    },
    st.sets(st.sampled_from(WEEKDAYS), min_size=1),
    st.integers(0, 22),
    st.integers(1, 12),
    st.booleans(),
)
channels = st.sampled_from(["email", "sms", "voice"])
purposes = st.sampled_from(["marketing", "sales", "service"])
ALL_PAIRS = [(c, p) for c in ("email", "sms", "voice") for p in ("marketing", "sales", "service")]
sends = st.tuples(st.just("send"), st.sampled_from(["email", "sms"]), purposes)
operations = st.one_of(
    sends,
    sends,
    sends,
    st.tuples(st.just("grant"), channels, purposes),
    st.tuples(st.just("withdraw"), channels, purposes),
    st.tuples(st.just("suppress"), st.sampled_from(["phone", "email"])),
    st.tuples(st.just("registry"), st.integers(0, 45)),
    st.tuples(st.just("advance"), st.integers(60, 60 * 60 * 40)),
    st.tuples(st.just("call"), purposes),
)
scenarios = st.fixed_dictionaries(
    {
        "country": st.sampled_from(["US", "ID", "SG", "GB", "FR", None]),
        "timezone": st.sampled_from(ZONES),
        "window": st.none() | windows,
        "per_day": st.none() | st.integers(1, 2),
        "per_week": st.none() | st.integers(1, 4),
        "start": st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)),
        "granted": st.one_of(st.just(ALL_PAIRS), st.sets(st.sampled_from(ALL_PAIRS))),
        "ops": st.lists(operations, min_size=3, max_size=24),
    }
)


@dataclass
class Rig:
    sessions: object
    delivery: DeliveryActivities
    clock: list[datetime]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Rig:
    folder: Path = tmp_path_factory.mktemp("properties")
    engine = make_engine(f"sqlite:///{folder / 'omnireach.db'}")
    upgrade(engine)
    sessions = make_session_factory(engine)
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    console = ConsoleChannel(folder / "console.jsonl", out=io.StringIO())
    delivery = DeliveryActivities(
        sessions,
        dict.fromkeys(("email", "sms"), console),
        MessageCatalog(TEMPLATES),
        Sender("Acme", "Jl. Sudirman 1, Jakarta", "https://acme.example", SALT),
        clock=lambda: clock[0],
        policy=default_policy(),
    )
    return Rig(sessions, delivery, clock)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios)
async def test_no_send_breaks_a_rule_and_every_non_send_has_a_reason(rig: Rig, scenario: dict) -> None:
    world = World(
        scenario["country"], scenario["timezone"], scenario["window"], scenario["per_day"], scenario["per_week"]
    )
    now = scenario["start"]
    rig.clock[0] = now
    with rig.sessions.begin() as session:  # registries are per country: each example starts without any
        session.execute(delete(Suppression).where(Suppression.kind == "registry"))
        session.execute(delete(DncImport))
    with rig.sessions.begin() as session:
        contact, _ = upsert_contact(
            session,
            external_id=f"p-{uuid.uuid4().hex}",
            name="Prop",
            email=f"{uuid.uuid4().hex[:10]}@example.com",
            phone=fresh_number(scenario["country"]),
            country=scenario["country"],
            timezone=scenario["timezone"],
        )
        contact_id = contact.id
        email, number = contact.email, contact.phone
    ops = [("grant", channel, purpose) for channel, purpose in sorted(scenario["granted"])] + scenario["ops"]
    for op in ops:
        kind = op[0]
        if kind in ("grant", "withdraw"):
            _, channel, purpose = op
            status = "granted" if kind == "grant" else "withdrawn"
            with rig.sessions.begin() as session:
                append_consent(
                    session,
                    contact_id=contact_id,
                    channel=channel,
                    purpose=purpose,
                    status=status,
                    occurred_at=now,
                    method="web_form",
                )
            world.consent[(channel, purpose)] = status
        elif kind == "suppress":
            with rig.sessions.begin() as session:
                add_suppression(
                    session, kind="global", channel_scope=op[1], value=email if op[1] == "email" else number
                )
            world.suppressed.add(op[1])
        elif kind == "registry":
            country = scenario["country"] or "ID"
            as_of = now.date() - timedelta(days=op[1])
            if country in REGISTRY_DAYS and (world.registry.get(country) is None or as_of >= world.registry[country]):
                with rig.sessions.begin() as session:
                    dnc_repo.start_import(
                        session,
                        list_name=f"reg-{contact_id}",
                        country=country,
                        as_of=as_of,
                        hashed=False,
                        source_name="t",
                    )
                world.registry[country] = as_of
        elif kind == "advance":
            now += timedelta(seconds=op[1])
            rig.clock[0] = now
        elif kind == "send":
            await _send(rig, world, contact_id, op[1], op[2], now)
        else:
            _call(rig, world, contact_id, op[1], now)


async def _send(rig: Rig, world: World, contact_id: str, channel: str, purpose: str, now: datetime) -> None:
    key = f"prop/{contact_id}/{next(_keys)}"
    request = DeliverRequest(
        enrollment_id=f"cadence:prop:{contact_id}",
        message_key=key,
        cadence_id="prop",
        cadence_name="Property",
        purpose=purpose,
        contact_id=contact_id,
        step_id="hello",
        channel=channel,
        message="hello",
        locale="en",
        window=Window.model_validate(world.window).model_dump(mode="json") if world.window else None,
        per_day=world.per_day,
        per_week=world.per_week,
    )
    expected = world.expect(channel, purpose, now)
    result = await rig.delivery.deliver(request)
    context = f"{channel}/{purpose} at {now.isoformat()} expected={expected} got={result}"
    event(f"send {result.outcome}: {result.reason}")
    if result.outcome == "sent":
        assert expected is None, context
        world.sent.append(now)
        return
    assert expected is not None, context  # the rules must not over-block
    with rig.sessions() as session:
        decision = session.scalars(select(SendDecision).where(SendDecision.message_key == key)).one()
    assert decision.reason and decision.decision == result.outcome, context
    if result.outcome == "deferred" and expected in ("time", "cap"):
        until = datetime.fromisoformat(result.until)
        assert until > now and world.time_ok(channel, purpose, until), context


def _call(rig: Rig, world: World, contact_id: str, purpose: str, now: datetime) -> None:
    windows = (Window.model_validate(world.window).daily(),) if world.window else ()
    ask = Reachability("voice", purpose, windows, world.per_day, world.per_week)
    with rig.sessions() as session:
        contact = session.get(Contact, contact_id)
        verdict = check_permission(session, contact, ask, now, salt=SALT, policy=default_policy())
    expected = world.expect("voice", purpose, now)
    with rig.sessions() as session:
        dates = dnc_repo.latest_registry_dates(session, world.jurisdiction)
    context = f"voice/{purpose} at {now.isoformat()} expected={expected} got={verdict} registries={dates}"
    event(f"call {verdict.outcome}: {verdict.reason}")
    assert verdict.allowed == (expected is None), context
    if expected == "registry":
        assert verdict.reason in ("registry_stale", "registry_missing"), context
    assert verdict.allowed or verdict.reason, context


# ---- a few whole workflows on the time-skipping server ---------------------------------------------------
NIGHT_SMS = """
    id: t-legal
    name: Legal hours
    purpose: marketing
    facts: {title: Tax 101}
    steps:
      - id: reminder
        send: sms
        message: reminder
"""


def _closed_us_zone(now: datetime) -> str:
    """A US zone where it is outside calling hours right now, if there is one (else New York)."""
    zones = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "Pacific/Honolulu")
    closed = [z for z in zones if not legal_ok("US", "sms", "marketing", now.astimezone(ZoneInfo(z)))]
    return closed[0] if closed else zones[0]


@pytest.mark.parametrize("country", ["US", "ID"])
async def test_workflow_sends_only_inside_legal_hours(
    time_skipping_env: WorkflowEnvironment, tmp_path, country
) -> None:
    harness = Harness(time_skipping_env.client, tmp_path, policy=default_policy())
    now = await time_skipping_env.get_current_time()
    zone_name = _closed_us_zone(now) if country == "US" else "Asia/Jakarta"
    contact = harness.contact(timezone=zone_name, country=country)
    async with harness.worker:
        await (await harness.start(harness.cadence(NIGHT_SMS), contact)).result()
    [message] = harness.sent(contact)
    local = message.sent_at.astimezone(ZoneInfo(zone_name))
    assert legal_ok(country, "sms", "marketing", local), local
    if not legal_ok(country, "sms", "marketing", now.astimezone(ZoneInfo(zone_name))):
        opening = local.replace(hour=8, minute=0, second=0, microsecond=0)
        assert timedelta(0) <= local - opening < timedelta(seconds=5), local  # deferred to the opening, not later
        deferred = [d for d in harness.decisions(contact) if d.decision == "deferred"]
        assert deferred and deferred[0].reason == "outside_legal_hours"


async def test_workflow_never_sends_to_a_suppressed_number(time_skipping_env: WorkflowEnvironment, tmp_path) -> None:
    harness = Harness(time_skipping_env.client, tmp_path, policy=default_policy())
    contact = harness.contact(timezone="Asia/Singapore", country="SG")
    with harness.sessions.begin() as session:
        add_suppression(session, kind="company_dnc", channel_scope="phone", value="+6281234567890")
    async with harness.worker:
        result = await (await harness.start(harness.cadence(NIGHT_SMS), contact)).result()
    assert harness.sent(contact) == [] and harness.console.records() == []
    assert result.skipped == {"reminder": "suppressed"}
