"""Contact windows in the contact's local time: edges, holidays, intersections, DST (COMPLIANCE.md)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.timewindow import (
    END_OF_DAY,
    DailyWindow,
    is_allowed,
    next_allowed,
    parse_days,
    parse_hours,
    resolve_timezone,
)

NY = ZoneInfo("America/New_York")
JKT = ZoneInfo("Asia/Jakarta")
LONDON = ZoneInfo("Europe/London")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")

WEEKDAYS_9_17 = DailyWindow.from_spec(["mon-fri"], "09:00-17:00")
OJK = DailyWindow.from_spec(["mon", "tue", "wed", "thu", "fri", "sat"], "08:00-18:00", skip_holidays=True)
TCPA = DailyWindow.from_spec(["mon-sun"], "08:00-21:00")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(tz: ZoneInfo, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=tz, fold=fold).astimezone(UTC)


# --- parsing -----------------------------------------------------------------------------------------


def test_parse_hours() -> None:
    assert parse_hours("09:00-17:00") == (time(9), time(17))
    assert parse_hours(" 8:30 - 18:00 ") == (time(8, 30), time(18))
    assert parse_hours("00:00-24:00") == (time(0), END_OF_DAY)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("9-17", "HH:MM-HH:MM"),
        ("09:00", "HH:MM-HH:MM"),
        ("25:00-26:00", "not a time of day"),
        ("09:00-17:60", "not a time of day"),
        ("22:00-06:00", "cross midnight"),
        ("09:00-09:00", "later than start"),
        (900, "must be a string"),
    ],
)
def test_parse_hours_errors_say_what_and_the_form(text: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as err:
        parse_hours(text)  # type: ignore[arg-type]
    assert "09:00-17:00" in str(err.value)


def test_parse_days() -> None:
    assert parse_days(["mon", "Tue", "FRIDAY"]) == frozenset({0, 1, 4})
    assert parse_days(["mon-fri"]) == frozenset(range(5))
    assert parse_days(["fri-mon"]) == frozenset({4, 5, 6, 0})
    assert parse_days(["sat", "sat"]) == frozenset({5})


@pytest.mark.parametrize(
    ("names", "fragment"),
    [("mon", "must be a list"), ([], "empty"), (["funday"], "unknown day 'funday'"), ([1], "not a day name")],
)
def test_parse_days_errors(names: object, fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as err:
        parse_days(names)  # type: ignore[arg-type]
    assert "[mon, tue, wed, thu, fri]" in str(err.value)


def test_window_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="no days"):
        DailyWindow(frozenset(), time(9), time(17))
    with pytest.raises(ValueError, match=r"0 \(Mon\) \.\. 6 \(Sun\)"):
        DailyWindow(frozenset({7}), time(9), time(17))
    with pytest.raises(ValueError, match="crosses midnight"):
        DailyWindow(frozenset({0}), time(22), time(6))
    with pytest.raises(ValueError, match="tzinfo"):
        DailyWindow(frozenset({0}), time(9, tzinfo=UTC), time(17))


# --- is_allowed --------------------------------------------------------------------------------------


def test_end_is_exclusive_17_59_59_vs_18_00_00() -> None:
    # Tuesday 2026-12-01 in Jakarta (UTC+7, no DST), OJK hours 08:00-18:00.
    assert is_allowed(local(JKT, 2026, 12, 1, 17, 59, 59), JKT, [OJK], "ID")
    assert not is_allowed(local(JKT, 2026, 12, 1, 18, 0, 0), JKT, [OJK], "ID")
    assert is_allowed(local(JKT, 2026, 12, 1, 8, 0, 0), JKT, [OJK], "ID")
    assert not is_allowed(local(JKT, 2026, 12, 1, 7, 59, 59), JKT, [OJK], "ID")
    assert utc(2026, 12, 1, 10, 59, 59) == local(JKT, 2026, 12, 1, 17, 59, 59)


def test_days_of_week_and_end_of_day() -> None:
    sunday = local(JKT, 2026, 12, 6, 12, 0)
    assert not is_allowed(sunday, JKT, [OJK], "ID")
    all_day = DailyWindow.from_spec(["sun"], "00:00-24:00")
    assert is_allowed(local(JKT, 2026, 12, 6, 23, 59, 59, 999999), JKT, [all_day], None)
    assert not is_allowed(local(JKT, 2026, 12, 7, 0, 0), JKT, [all_day], None)


def test_no_windows_means_no_limit_and_naive_instants_are_refused() -> None:
    assert is_allowed(utc(2026, 12, 6, 3), JKT, [], None)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_allowed(datetime(2026, 12, 1, 12), JKT, [OJK], "ID")


def test_indonesian_independence_day_is_skipped() -> None:
    monday = local(JKT, 2026, 8, 17, 10, 0)
    assert not is_allowed(monday, JKT, [OJK], "ID")
    assert not is_allowed(monday, JKT, [OJK], "id")  # any case
    assert is_allowed(monday, JKT, [OJK], None)  # no country: no holiday calendar
    assert is_allowed(monday, JKT, [DailyWindow(OJK.days, OJK.start, OJK.end)], "ID")  # not skipping
    assert is_allowed(local(JKT, 2026, 8, 18, 10, 0), JKT, [OJK], "ID")


def test_us_christmas_is_skipped_only_when_asked() -> None:
    friday = local(NY, 2026, 12, 25, 10, 0)
    skipping = DailyWindow.from_spec(["mon-fri"], "09:00-17:00", skip_holidays=True)
    assert not is_allowed(friday, NY, [skipping], "US")
    assert is_allowed(friday, NY, [WEEKDAYS_9_17], "US")


def test_unknown_country_means_no_holidays_not_a_crash() -> None:
    assert is_allowed(local(JKT, 2026, 8, 17, 10, 0), JKT, [OJK], "XX")
    assert next_allowed(local(JKT, 2026, 8, 17, 10, 0), JKT, [OJK], "ZZZ") == local(JKT, 2026, 8, 17, 10, 0)


def test_windows_intersect_the_stricter_wins() -> None:
    cadence = DailyWindow.from_spec(["mon-sun"], "07:00-20:00")
    # 07:30 Saturday: the cadence allows it, OJK legal hours (from 08:00) do not.
    saturday_0730 = local(JKT, 2026, 12, 5, 7, 30)
    assert is_allowed(saturday_0730, JKT, [cadence], "ID")
    assert not is_allowed(saturday_0730, JKT, [cadence, OJK], "ID")
    assert next_allowed(saturday_0730, JKT, [cadence, OJK], "ID") == local(JKT, 2026, 12, 5, 8, 0)
    # 18:30 Saturday: cadence yes, OJK no; Sunday closed by OJK -> Monday 08:00.
    saturday_1830 = local(JKT, 2026, 12, 5, 18, 30)
    assert next_allowed(saturday_1830, JKT, [cadence, OJK], "ID") == local(JKT, 2026, 12, 7, 8, 0)
    # A looser legal window changes nothing: US TCPA 08:00-21:00 around a 09:00-17:00 cadence.
    tuesday_0815 = local(NY, 2026, 6, 2, 8, 15)
    assert next_allowed(tuesday_0815, NY, [WEEKDAYS_9_17, TCPA], "US") == local(NY, 2026, 6, 2, 9, 0)


# --- next_allowed ------------------------------------------------------------------------------------


def test_friday_evening_defers_to_monday_0900_local() -> None:
    friday = local(JKT, 2026, 12, 4, 17, 30)
    assert next_allowed(friday, JKT, [WEEKDAYS_9_17], "ID") == utc(2026, 12, 7, 2, 0)  # 09:00 WIB
    # New York, Friday 2026-03-06 17:30 EST; Monday 09:00 is already EDT (DST began Sunday 03-08).
    ny_friday = local(NY, 2026, 3, 6, 17, 30)
    assert ny_friday == utc(2026, 3, 6, 22, 30)
    assert next_allowed(ny_friday, NY, [WEEKDAYS_9_17], "US") == utc(2026, 3, 9, 13, 0)


def test_allowed_instant_is_returned_as_is() -> None:
    at = local(JKT, 2026, 12, 1, 9, 15, 7, 123)
    assert next_allowed(at, JKT, [WEEKDAYS_9_17], "ID") == at


def test_holidays_are_skipped_when_deferring() -> None:
    # Friday 2026-08-14 evening -> Monday 08-17 is Independence Day -> Tuesday 09:00 WIB.
    skip = DailyWindow.from_spec(["mon-fri"], "09:00-17:00", skip_holidays=True)
    assert next_allowed(local(JKT, 2026, 8, 14, 17, 30), JKT, [skip], "ID") == local(JKT, 2026, 8, 18, 9, 0)
    # Thursday 2026-12-24 evening in New York -> Christmas Friday -> Monday 12-28 09:00 EST.
    assert next_allowed(local(NY, 2026, 12, 24, 17, 30), NY, [skip], "US") == utc(2026, 12, 28, 14, 0)


def test_never_overlapping_windows_and_horizon_give_none() -> None:
    monday = DailyWindow.from_spec(["mon"], "09:00-17:00")
    tuesday = DailyWindow.from_spec(["tue"], "09:00-17:00")
    morning = DailyWindow.from_spec(["mon"], "08:00-09:00")
    at = utc(2026, 6, 1)
    assert next_allowed(at, JKT, [monday, tuesday], None) is None
    assert next_allowed(at, JKT, [monday, morning], None) is None
    assert next_allowed(local(JKT, 2026, 12, 4, 17, 30), JKT, [WEEKDAYS_9_17], None, horizon_days=2) is None
    assert next_allowed(local(JKT, 2026, 12, 4, 17, 30), JKT, [WEEKDAYS_9_17], None, horizon_days=3) is not None
    with pytest.raises(ValueError, match="horizon_days"):
        next_allowed(at, JKT, [monday], None, horizon_days=-1)


def test_spring_forward_gap_opens_at_first_real_instant() -> None:
    # 2026-03-08 in New York: 02:00 EST jumps to 03:00 EDT (07:00Z). 02:30 does not exist.
    window = DailyWindow.from_spec(["sun"], "02:30-04:00")
    at = local(NY, 2026, 3, 8, 1, 0)  # 06:00Z
    assert next_allowed(at, NY, [window], "US") == utc(2026, 3, 8, 7, 0)  # 03:00 EDT
    assert is_allowed(utc(2026, 3, 8, 7, 0), NY, [window], "US")
    assert not is_allowed(utc(2026, 3, 8, 6, 59, 59), NY, [window], "US")
    # A daily 09:00 start on the DST day is 09:00 EDT.
    daily = DailyWindow.from_spec(["mon-sun"], "09:00-17:00")
    assert next_allowed(local(NY, 2026, 3, 7, 17, 0), NY, [daily], "US") == utc(2026, 3, 8, 13, 0)


def test_fall_back_overlap_takes_first_occurrence() -> None:
    # 2026-11-01 in New York: 02:00 EDT goes back to 01:00 EST (06:00Z); 01:00-01:59 happens twice.
    window = DailyWindow.from_spec(["sun"], "01:30-03:00")
    at = local(NY, 2026, 11, 1, 1, 0)  # 05:00Z, 01:00 EDT
    assert next_allowed(at, NY, [window], "US") == utc(2026, 11, 1, 5, 30)  # 01:30 EDT, the first one
    # After the first occurrence of a short window has closed, the second one (EST) is still the
    # earliest instant that is allowed.
    short = DailyWindow.from_spec(["sun"], "01:00-01:30")
    assert next_allowed(utc(2026, 11, 1, 5, 45), NY, [short], "US") == utc(2026, 11, 1, 6, 0)


def test_lord_howe_half_hour_dst() -> None:
    # 2026-10-04 02:00 LHST (+10:30) jumps to 02:30 LHDT (+11:00) at 2026-10-03 15:30Z.
    window = DailyWindow.from_spec(["sun"], "02:00-03:00")
    assert next_allowed(utc(2026, 10, 3, 15, 0), LORD_HOWE, [window], "AU") == utc(2026, 10, 3, 15, 30)
    # 2026-04-05 02:00 LHDT goes back to 01:30 LHST at 2026-04-04 15:00Z; 01:30-01:59 happens twice.
    early = DailyWindow.from_spec(["sun"], "01:40-01:50")
    assert next_allowed(utc(2026, 4, 4, 14, 0), LORD_HOWE, [early], None) == utc(2026, 4, 4, 14, 40)
    assert next_allowed(utc(2026, 4, 4, 14, 55), LORD_HOWE, [early], None) == utc(2026, 4, 4, 15, 10)


def test_london_and_jakarta_daily_windows() -> None:
    # Europe/London springs forward 2026-03-29 01:00 GMT -> 02:00 BST (01:00Z).
    window = DailyWindow.from_spec(["sun"], "01:15-02:30")
    assert next_allowed(utc(2026, 3, 29, 0, 30), LONDON, [window], "GB") == utc(2026, 3, 29, 1, 0)
    # A window lying wholly inside the gap shows no wall-clock time that day: the next Sunday it opens.
    in_gap = DailyWindow.from_spec(["sun"], "01:15-01:45")
    assert next_allowed(utc(2026, 3, 29, 0, 30), LONDON, [in_gap], "GB") == utc(2026, 4, 5, 0, 15)
    # Jakarta has no DST: 09:00 WIB is always 02:00Z.
    daily = [DailyWindow.from_spec(["mon-sun"], "09:00-10:00")]
    for day in range(1, 8):
        assert next_allowed(utc(2026, 6, day, 1), JKT, daily, None) == utc(2026, 6, day, 2)
        assert next_allowed(utc(2026, 6, day, 2, 30), JKT, daily, None) == utc(2026, 6, day, 2, 30)
        assert next_allowed(utc(2026, 6, day, 3), JKT, daily, None) == utc(2026, 6, day + 1, 2)


@pytest.mark.parametrize(
    ("tz", "start", "specs"),
    [
        (NY, utc(2026, 3, 7, 4), [("sun", "02:10-02:50"), ("mon-sun", "01:00-03:15")]),
        (NY, utc(2026, 3, 7, 4), [("mon-sun", "00:00-02:30")]),
        (NY, utc(2026, 10, 31, 4), [("sun", "01:10-01:40")]),
        (NY, utc(2026, 10, 31, 4), [("mon-sun", "01:45-09:00"), ("sat-sun", "00:30-08:00")]),
        (LORD_HOWE, utc(2026, 10, 2, 12), [("mon-sun", "02:00-02:40")]),
        (LORD_HOWE, utc(2026, 4, 3, 12), [("mon-sun", "01:35-01:55")]),
        (LONDON, utc(2026, 10, 24, 12), [("mon-sun", "01:20-01:25")]),
    ],
)
def test_next_allowed_matches_a_minute_by_minute_scan(
    tz: ZoneInfo, start: datetime, specs: list[tuple[str, str]]
) -> None:
    """Brute force over three days of minutes around a DST change: the earliest allowed minute."""
    windows = [DailyWindow.from_spec([days], hours) for days, hours in specs]
    minutes = [start + timedelta(minutes=i) for i in range(3 * 24 * 60)]
    allowed = [is_allowed(m, tz, windows, None) for m in minutes]
    expected: list[datetime | None] = [None] * len(minutes)
    following: datetime | None = None
    for i in range(len(minutes) - 1, -1, -1):
        following = minutes[i] if allowed[i] else following
        expected[i] = following
    for i in range(0, len(minutes), 7):
        if expected[i] is not None:
            assert next_allowed(minutes[i], tz, windows, None) == expected[i], minutes[i]


# --- property: next_allowed never returns what is_allowed rejects, and nothing earlier is allowed -----

ZONES = [NY, JKT, LONDON, LORD_HOWE]


@st.composite
def windows_strategy(draw: st.DrawFn) -> list[DailyWindow]:
    result = []
    for _ in range(draw(st.integers(1, 2))):
        days = draw(st.frozensets(st.integers(0, 6), min_size=1))
        start = draw(st.integers(0, 24 * 4 - 1)) * 15
        end = draw(st.integers(start // 15 + 1, 24 * 4)) * 15
        end_time = END_OF_DAY if end == 24 * 60 else time(end // 60, end % 60)
        skip = draw(st.booleans())
        result.append(DailyWindow(days, time(start // 60, start % 60), end_time, skip))
    return result


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    at=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2040, 1, 1), timezones=st.just(UTC)),
    tz=st.sampled_from(ZONES),
    windows=windows_strategy(),
    country=st.sampled_from([None, "US", "ID", "GB", "AU", "XX"]),
    fraction=st.floats(0, 1),
)
def test_next_allowed_properties(
    at: datetime, tz: ZoneInfo, windows: list[DailyWindow], country: str | None, fraction: float
) -> None:
    result = next_allowed(at, tz, windows, country)
    if result is None:
        common = frozenset.intersection(*(w.days for w in windows))
        latest_start = max(w.start for w in windows)
        earliest_end = min(w.end for w in windows)
        assert not common or latest_start >= earliest_end, "windows overlap but nothing found in 400 days"
        return
    assert result.tzinfo is UTC
    assert result >= at
    assert is_allowed(result, tz, windows, country)
    if is_allowed(at, tz, windows, country):
        assert result == at
        return
    just_before = result - timedelta(microseconds=1)
    assert not is_allowed(just_before, tz, windows, country)
    between = at + (result - at) * fraction
    assert between == result or not is_allowed(between, tz, windows, country)


# --- resolve_timezone --------------------------------------------------------------------------------


def test_resolve_timezone_uses_the_contacts_zone() -> None:
    assert resolve_timezone("Asia/Jakarta", "ID") == JKT
    assert resolve_timezone("asia/jakarta", None) == JKT  # any case, canonical key
    assert resolve_timezone(" America/New_York ", "US") == NY
    assert resolve_timezone("US/Eastern", None) == ZoneInfo("US/Eastern")  # backward links are IANA names


def test_resolve_timezone_falls_back_to_a_single_zone_country() -> None:
    assert resolve_timezone(None, "SG") == ZoneInfo("Asia/Singapore")
    assert resolve_timezone("Mars/Olympus", "gb") == LONDON
    assert resolve_timezone(None, "ID") is None  # WIB, WITA, WIT: never guess
    assert resolve_timezone(None, "US") is None


@pytest.mark.parametrize(
    "name", [None, "", "Nowhere/City", "../../etc/passwd", "localtime", "Factory", "/etc/localtime", 42]
)
def test_resolve_timezone_never_raises(name: object) -> None:
    assert resolve_timezone(name, None) is None  # type: ignore[arg-type]
    assert resolve_timezone(name, "XX") is None  # type: ignore[arg-type]
    assert resolve_timezone(name, 7) is None  # type: ignore[arg-type]


# Instants where the zones above change offset in 2026 (and Lord Howe's half-hour shifts).
TRANSITIONS = [
    (NY, utc(2026, 3, 8, 7)),
    (NY, utc(2026, 11, 1, 6)),
    (LONDON, utc(2026, 3, 29, 1)),
    (LONDON, utc(2026, 10, 25, 1)),
    (LORD_HOWE, utc(2026, 4, 4, 15)),
    (LORD_HOWE, utc(2026, 10, 3, 15, 30)),
]


@st.composite
def windows_near(draw: st.DrawFn, tz: ZoneInfo, change: datetime) -> list[DailyWindow]:
    """One or two windows on the change's weekday that open or close near its wall-clock times."""
    walls = [(change + timedelta(microseconds=d)).astimezone(tz) for d in (-1, 0)]
    pivots = [w.hour * 60 + w.minute for w in walls]
    weekday = walls[1].weekday()
    result = []
    for _ in range(draw(st.integers(1, 2))):
        a = min(max(draw(st.sampled_from(pivots)) + draw(st.integers(-18, 18)) * 5, 0), 24 * 60 - 5)
        b = draw(st.integers(a + 5, min(a + 180, 24 * 60)))
        end = END_OF_DAY if b == 24 * 60 else time(b // 60, b % 60)
        days = draw(st.frozensets(st.integers(0, 6))) | {weekday}
        result.append(DailyWindow(days, time(a // 60, a % 60), end))
    return result


@settings(max_examples=400, deadline=None)
@given(
    data=st.data(),
    transition=st.sampled_from(TRANSITIONS),
    minutes=st.integers(-26 * 60, 6 * 60),
    seconds=st.integers(0, 59),
)
def test_next_allowed_is_exact_around_dst_changes(
    data: st.DataObject, transition: tuple[ZoneInfo, datetime], minutes: int, seconds: int
) -> None:
    tz, change = transition
    windows = data.draw(windows_near(tz, change))
    at = change + timedelta(minutes=minutes, seconds=seconds)
    result = next_allowed(at, tz, windows, None)
    if result is None:
        return  # covered by test_next_allowed_properties
    assert result >= at
    assert is_allowed(result, tz, windows, None)
    if result > at:
        assert not is_allowed(result - timedelta(microseconds=1), tz, windows, None)
        assert not is_allowed(max(at, result - timedelta(seconds=1)), tz, windows, None)
