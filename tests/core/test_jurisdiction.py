"""Legal hours, registry freshness and operator overrides, at the edges COMPLIANCE.md names."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest

from core.jurisdiction import (
    PolicyError,
    default_policy,
    number_country,
    parse_policy,
    permissive_policy,
    registry_status,
)
from core.permission import SendFacts, decide
from core.timewindow import DailyWindow, is_allowed

NY = ZoneInfo("America/New_York")
JAKARTA = ZoneInfo("Asia/Jakarta")
MAKASSAR = ZoneInfo("Asia/Makassar")
JAYAPURA = ZoneInfo("Asia/Jayapura")
POLICY = default_policy()


def local(zone: ZoneInfo, y: int, mo: int, d: int, h: int, mi: int = 0, s: int = 0, fold: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=zone, fold=fold).astimezone(UTC)


def facts(now: datetime, zone: ZoneInfo | None, country: str, channel: str = "sms", purpose: str = "marketing", **kw):
    return SendFacts(
        channel=channel,
        purpose=purpose,
        address="+10000000000",
        address_unusable=None,
        consent_status="granted",
        suppressed=None,
        now=now,
        zone=zone,
        country=country,
        legal_windows=POLICY.legal_windows(country, channel, purpose),
        **kw,
    )


# ---- United States (TCPA 08:00-21:00) -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("wall", "allowed"),
    [(time(7, 59, 59), False), (time(8, 0, 0), True), (time(20, 59, 59), True), (time(21, 0, 0), False)],
)
@pytest.mark.parametrize("channel", ["sms", "voice"])
def test_us_calling_hours_edges(wall: time, allowed: bool, channel: str) -> None:
    at = local(NY, 2026, 7, 15, wall.hour, wall.minute, wall.second)
    windows = POLICY.legal_windows("US", channel, "marketing")
    assert is_allowed(at, NY, windows, "US") is allowed
    verdict = decide(facts(at, NY, "US", channel))
    assert verdict.allowed is allowed
    if not allowed:
        assert verdict.reason == "outside_legal_hours" and "TCPA" in verdict.detail
        assert verdict.until is not None and verdict.until.astimezone(NY).time() == time(8, 0)


def test_us_rule_leaves_email_service_and_whatsapp_alone() -> None:
    assert POLICY.legal_windows("US", "email", "marketing") == ()
    assert POLICY.legal_windows("US", "sms", "service") == ()
    assert decide(facts(local(NY, 2026, 7, 15, 23), NY, "US", "email")).allowed


def test_us_deferral_from_late_evening_lands_on_next_morning() -> None:
    verdict = decide(facts(local(NY, 2026, 7, 15, 21, 0, 0), NY, "US"))
    assert verdict.outcome == "defer"
    assert verdict.until == local(NY, 2026, 7, 16, 8)


# ---- Indonesia (OJK: Mon-Sat 08:00-18:00, no national holidays) -----------------------------------------
@pytest.mark.parametrize(
    ("wall", "allowed"), [(time(7, 59, 59), False), (time(8, 0), True), (time(17, 59, 59), True), (time(18, 0), False)]
)
@pytest.mark.parametrize("channel", ["email", "sms", "whatsapp", "voice"])
def test_indonesia_hours_edges(wall: time, allowed: bool, channel: str) -> None:
    at = local(JAKARTA, 2026, 7, 15, wall.hour, wall.minute, wall.second)  # a Wednesday
    assert decide(facts(at, JAKARTA, "ID", channel)).allowed is allowed


def test_indonesia_after_18_defers_to_next_morning() -> None:
    verdict = decide(facts(local(JAKARTA, 2026, 7, 15, 18), JAKARTA, "ID"))
    assert (verdict.outcome, verdict.reason) == ("defer", "outside_legal_hours")
    assert verdict.until == local(JAKARTA, 2026, 7, 16, 8)
    assert "OJK" in verdict.detail


def test_indonesia_sunday_is_closed_and_saturday_open() -> None:
    sunday = local(JAKARTA, 2026, 7, 19, 10)
    assert datetime(2026, 7, 19).weekday() == 6
    verdict = decide(facts(sunday, JAKARTA, "ID"))
    assert verdict.outcome == "defer" and verdict.until == local(JAKARTA, 2026, 7, 20, 8)
    assert decide(facts(local(JAKARTA, 2026, 7, 18, 10), JAKARTA, "ID")).allowed  # Saturday


def test_indonesia_national_holiday_is_closed() -> None:
    independence = date(2026, 8, 17)  # a Monday
    assert independence in holidays.country_holidays("ID", years=2026)
    verdict = decide(facts(local(JAKARTA, 2026, 8, 17, 10), JAKARTA, "ID"))
    assert verdict.outcome == "defer" and verdict.reason == "outside_legal_hours"
    assert verdict.until == local(JAKARTA, 2026, 8, 18, 8)
    assert decide(facts(local(JAKARTA, 2026, 8, 17, 10), JAKARTA, "ID", purpose="service")).allowed


@pytest.mark.parametrize(
    ("utc_time", "open_zones"),
    [
        (time(10, 30), {"Asia/Jakarta", "Asia/Pontianak"}),  # 17:30 WIB, 18:30 WITA, 19:30 WIT
        (time(0, 30), {"Asia/Makassar", "Asia/Jayapura"}),  # 07:30 WIB, 08:30 WITA, 09:30 WIT
        (time(9, 30), {"Asia/Jakarta", "Asia/Pontianak", "Asia/Makassar"}),  # 16:30, 17:30, 18:30
    ],
)
def test_wib_wita_wit_each_judged_in_its_own_local_time(utc_time: time, open_zones: set[str]) -> None:
    at = datetime.combine(date(2026, 7, 15), utc_time, tzinfo=UTC)
    zones = ["Asia/Jakarta", "Asia/Pontianak", "Asia/Makassar", "Asia/Jayapura"]
    assert {z for z in zones if decide(facts(at, ZoneInfo(z), "ID")).allowed} == open_zones
    assert [POLICY.zone_label("ID", ZoneInfo(z)) for z in zones] == ["WIB", "WIB", "WITA", "WIT"]


@pytest.mark.parametrize(
    ("region", "zone"),
    [
        ("Bali", "Asia/Makassar"),
        ("ID-PA", "Asia/Jayapura"),
        ("dki jakarta", "Asia/Jakarta"),
        ("ID-KB", "Asia/Pontianak"),
    ],
)
def test_indonesian_region_gives_the_zone_when_the_timezone_is_unknown(region: str, zone: str) -> None:
    assert POLICY.resolve_zone(None, "ID", region) == ZoneInfo(zone)
    assert POLICY.resolve_zone("Asia/Jakarta", "ID", region) == JAKARTA  # an explicit timezone wins


def test_multi_zone_country_without_timezone_is_deferred_not_guessed() -> None:
    assert POLICY.resolve_zone(None, "ID", None) is None
    assert POLICY.resolve_zone(None, "US", "Nowhere") is None
    verdict = decide(facts(local(JAKARTA, 2026, 7, 15, 10), None, "ID"))
    assert (verdict.outcome, verdict.reason) == ("defer", "no_timezone")


# ---- America/New_York DST ----------------------------------------------------------------------------
def test_legal_hours_follow_the_local_clock_on_the_spring_forward_day() -> None:
    assert decide(facts(datetime(2026, 3, 8, 11, 59, 59, tzinfo=UTC), NY, "US")).outcome == "defer"  # 07:59:59 EDT
    assert decide(facts(datetime(2026, 3, 8, 12, 0, tzinfo=UTC), NY, "US")).allowed  # 08:00 EDT (13:00Z in EST)
    verdict = decide(facts(datetime(2026, 3, 8, 6, 0, tzinfo=UTC), NY, "US"))  # 01:00 EST
    assert verdict.until == datetime(2026, 3, 8, 12, 0, tzinfo=UTC)


def test_legal_hours_follow_the_local_clock_on_the_fall_back_day() -> None:
    assert decide(facts(datetime(2026, 11, 1, 12, 59, 59, tzinfo=UTC), NY, "US")).outcome == "defer"  # 07:59:59 EST
    assert decide(facts(datetime(2026, 11, 1, 13, 0, tzinfo=UTC), NY, "US")).allowed  # 08:00 EST
    assert decide(facts(datetime(2026, 11, 2, 1, 59, 59, tzinfo=UTC), NY, "US")).allowed  # 20:59:59 EST
    assert not decide(facts(datetime(2026, 11, 2, 2, 0, tzinfo=UTC), NY, "US")).allowed  # 21:00:00 EST


OVERRIDE_GAP = """
countries:
  US:
    hours:
      - channels: [sms]
        days: [mon-sun]
        hours: "02:30-21:00"
      - channels: [voice]
        days: [mon-sun]
        hours: "01:30-21:00"
"""


def test_window_opening_inside_the_spring_forward_gap_opens_at_the_transition() -> None:
    policy = parse_policy(OVERRIDE_GAP, "policy.yaml")
    windows = policy.legal_windows("US", "sms", "marketing")
    at = datetime(2026, 3, 8, 6, 0, tzinfo=UTC)  # 01:00 EST; 02:30 does not exist that night
    verdict = decide(_with(at, windows))
    assert verdict.until == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT, the first real instant
    assert verdict.until.astimezone(NY).time() == time(3, 0)


def test_window_opening_inside_the_fall_back_overlap_opens_at_its_first_occurrence() -> None:
    policy = parse_policy(OVERRIDE_GAP, "policy.yaml")
    windows = policy.legal_windows("US", "voice", "marketing")
    verdict = decide(_with(datetime(2026, 11, 1, 5, 0, tzinfo=UTC), windows, channel="voice"))  # 01:00 EDT
    assert verdict.until == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)  # 01:30 EDT, not 01:30 EST (06:30Z)
    # An hour later the clock reads 01:15 again (EST): before the window by the wall clock, so closed.
    second = decide(_with(datetime(2026, 11, 1, 6, 15, tzinfo=UTC), windows, channel="voice"))
    assert second.until == datetime(2026, 11, 1, 6, 30, tzinfo=UTC)


def _with(now: datetime, windows, channel: str = "sms") -> SendFacts:
    return SendFacts(
        channel=channel,
        purpose="marketing",
        address="+12125550147",
        address_unusable=None,
        consent_status="granted",
        suppressed=None,
        now=now,
        zone=NY,
        country="US",
        legal_windows=windows,
    )


# ---- the stricter of cadence window and legal hours ----------------------------------------------------
def test_cadence_window_and_legal_hours_intersect() -> None:
    cadence = DailyWindow.from_spec(["mon-sun"], "19:00-23:00")
    at = local(NY, 2026, 7, 15, 20, 30)
    assert decide(facts(at, NY, "US", windows=(cadence,))).allowed
    late = decide(facts(local(NY, 2026, 7, 15, 21, 30), NY, "US", windows=(cadence,)))
    assert late.reason == "outside_legal_hours" and late.until == local(NY, 2026, 7, 16, 19)
    early = decide(facts(local(NY, 2026, 7, 15, 10), NY, "US", windows=(cadence,)))
    assert early.reason == "outside_window" and early.until == local(NY, 2026, 7, 15, 19)


def test_windows_that_never_overlap_skip_with_the_reason() -> None:
    sunday_only = DailyWindow.from_spec(["sun"], "09:00-17:00")
    verdict = decide(facts(local(JAKARTA, 2026, 7, 15, 10), JAKARTA, "ID", windows=(sunday_only,)))
    assert (verdict.outcome, verdict.reason) == ("skip", "window_never_opens")
    assert "legal hours" in verdict.detail


def test_caps_deferral_lands_inside_legal_hours() -> None:
    verdict = decide(facts(local(JAKARTA, 2026, 7, 15, 10), JAKARTA, "ID", per_day=1, sent_today=1))
    assert verdict.reason == "cap_per_day" and verdict.until == local(JAKARTA, 2026, 7, 16, 8)


# ---- registries ---------------------------------------------------------------------------------------
def test_registry_freshness_per_country() -> None:
    us = POLICY.registry_rule("US", "voice", "marketing")
    sg = POLICY.registry_rule("SG", "sms", "marketing")
    assert us is not None and us.max_age_days == 31 and sg is not None and sg.max_age_days == 21
    assert POLICY.registry_rule("US", "voice", "service") is None
    assert POLICY.registry_rule("US", "email", "marketing") is None
    today = date(2026, 7, 31)
    assert registry_status(us, "US", {"us-dnc": today - timedelta(days=31)}, today).ok
    stale = registry_status(us, "US", {"us-dnc": today - timedelta(days=32)}, today)
    assert (stale.ok, stale.reason) == (False, "registry_stale") and "us-dnc" in stale.detail
    assert registry_status(sg, "SG", {"sg-dnc": today - timedelta(days=21)}, today).ok
    assert not registry_status(sg, "SG", {"sg-dnc": today - timedelta(days=22)}, today).ok
    missing = registry_status(us, "US", {}, today)
    assert (missing.ok, missing.reason) == (False, "registry_missing") and "omnireach dnc import" in missing.detail
    assert not registry_status(us, "US", {"a": today, "b": today - timedelta(days=40)}, today).ok  # every list


def test_stale_registry_blocks_before_time_rules() -> None:
    verdict = decide(
        facts(local(NY, 2026, 7, 15, 23), NY, "US", "voice", registry_block="registry_stale", registry_detail="old")
    )
    assert (verdict.outcome, verdict.reason, verdict.detail) == ("defer", "registry_stale", "old")
    assert verdict.until == local(NY, 2026, 7, 15, 23) + timedelta(hours=24)


def test_number_country_reads_the_phone_number() -> None:
    assert number_country("+12125550147") == "US"
    assert number_country("whatsapp:+6281234567890") == "ID"
    assert number_country("+6591234567") == "SG"
    assert number_country("nonsense") is None and number_country(None) is None


# ---- operator overrides -------------------------------------------------------------------------------
def test_override_replaces_keys_it_names_and_keeps_the_rest() -> None:
    policy = parse_policy(
        """
version: 1
countries:
  US:
    registry: {name: US DNC, channels: [voice, sms], max_age_days: 15}
  FR:
    hours:
      - channels: [voice]
        days: [mon-fri]
        hours: "10:00-13:00"
        skip_holidays: true
    holidays: {extra: [2026-07-15]}
default:
  hours:
    - channels: [voice]
      hours: "09:00-20:00"
""",
        "ops/policy.yaml",
    )
    assert policy.legal_windows("US", "sms", "marketing") == POLICY.legal_windows("US", "sms", "marketing")
    rule = policy.registry_rule("US", "sms", "sales")
    assert rule is not None and rule.max_age_days == 15
    paris = ZoneInfo("Europe/Paris")
    fr = policy.legal_windows("FR", "voice", "marketing")
    assert is_allowed(local(paris, 2026, 7, 16, 11), paris, fr, "FR")
    assert not is_allowed(local(paris, 2026, 7, 15, 11), paris, fr, "FR")  # extra holiday
    assert not is_allowed(local(paris, 2026, 7, 14, 11), paris, fr, "FR")  # Bastille Day (calendar FR)
    assert policy.legal_windows("BR", "voice", "marketing")[0].start == time(9)  # default applies elsewhere
    assert policy.legal_windows("ID", "email", "marketing") == POLICY.legal_windows("ID", "email", "marketing")


def test_override_errors_name_file_line_and_column() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy(
            """countries:
  US:
    hours:
      - channels: [fax]
        hours: "21:00-08:00"
    registry: {max_age_days: soon}
  XYZ: {}
  ID:
    zones: {WIB: [Mars/Base]}
    colour: red
""",
            "policy.yaml",
        )
    text = str(caught.value)
    assert "policy.yaml:4:" in text and "fax" in text
    assert "policy.yaml:5:" in text and "midnight" in text
    assert "policy.yaml:6:" in text and "max_age_days" in text
    assert "policy.yaml:7:" in text and "XYZ" in text
    assert "policy.yaml:9:" in text and "Mars/Base" in text
    assert "policy.yaml:10:" in text and "unknown key 'colour'" in text


def test_refuses_unsafe_yaml_and_empty_files() -> None:
    with pytest.raises(PolicyError, match=r"policy\.yaml:1:.*python"):
        parse_policy("countries: !!python/object:os.system {}", "policy.yaml")
    with pytest.raises(PolicyError, match="empty"):
        parse_policy("", "policy.yaml")


def test_permissive_policy_has_no_rules() -> None:
    policy = permissive_policy()
    assert policy.legal_windows("ID", "sms", "marketing") == ()
    assert policy.registry_rule("US", "voice", "marketing") is None
