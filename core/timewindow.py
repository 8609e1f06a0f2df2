"""When may we contact someone, in their local time.

A send is allowed at an instant when the contact's local wall-clock time is inside *every* window that
applies (the cadence window, the jurisdiction's legal hours, ...): windows intersect, so the stricter one
wins. A window is a set of weekdays plus a daily ``[start, end)`` range of wall-clock times, optionally
closed on the public holidays of the contact's country.

Pure and deterministic (it runs inside Temporal's workflow sandbox): no clock, no network; the only data
read is package data (tzdata's ``zone.tab``; the ``holidays`` package's calendars).

DST: ``is_allowed`` judges an instant by the wall-clock time it shows locally, so it is the single source
of truth. ``next_allowed`` only proposes candidate instants (``at_utc``, every UTC instant whose wall-clock
time is a window start, in both folds, and every UTC-offset transition) and returns the earliest one that
``is_allowed`` accepts. Because allowedness can only switch from "no" to "yes" at such a candidate, the
answer is exact, and it can never be an instant ``is_allowed`` rejects. Consequences: a window opening at a
wall-clock time that does not exist (spring-forward gap) opens at the transition, the first real instant
after it; in the autumn overlap the first occurrence comes first.

In a Temporal workflow: pass ``core`` and ``holidays`` through the sandbox (the sandbox proxies ZoneInfo
objects created inside it, and ``holidays`` reads the clock when imported), and call the functions that
may look up holidays under ``workflow.unsafe.sandbox_unrestricted()``: ``holidays`` loads its name
catalogues through gettext/locale, which the sandbox refuses; the dates it returns are deterministic.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays

__all__ = [
    "END_OF_DAY",
    "DailyWindow",
    "is_allowed",
    "next_allowed",
    "parse_days",
    "parse_hours",
    "resolve_timezone",
]

#: ``end`` value meaning "until midnight" (written ``24:00`` in ``parse_hours``).
END_OF_DAY = time.max

_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_DAYS_FORM = "a list of day names such as [mon, tue, wed, thu, fri] (mon..sun, or ranges like mon-fri)"
_HOURS_FORM = "'HH:MM-HH:MM' on a 24-hour clock, e.g. '09:00-17:00' (end may be '24:00')"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOURS_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class DailyWindow:
    """Weekdays (0=Mon..6=Sun) and a daily wall-clock range ``start <= t < end`` (end exclusive).

    ``end == END_OF_DAY`` means until midnight. Windows crossing midnight are refused: write them as
    separate cadences or legal-hour rules (windows intersect, they do not add up).
    """

    days: frozenset[int]
    start: time
    end: time
    skip_holidays: bool = False

    def __post_init__(self) -> None:
        days = frozenset(self.days)
        object.__setattr__(self, "days", days)
        if not days:
            raise ValueError(f"window has no days: no instant would ever be allowed; use {_DAYS_FORM}")
        if any(not isinstance(d, int) or isinstance(d, bool) or not 0 <= d <= 6 for d in days):
            raise ValueError(f"window days {sorted(days, key=str)} must be integers 0 (Mon) .. 6 (Sun)")
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("window start/end are local wall-clock times and must not carry a tzinfo")
        if self.end != END_OF_DAY and self.start >= self.end:
            raise ValueError(
                f"window {self.start:%H:%M}-{self.end:%H:%M} is empty or crosses midnight; end must be "
                f"later than start on the same day ({_HOURS_FORM})"
            )

    @classmethod
    def from_spec(cls, days: Iterable[str], hours: str, skip_holidays: bool = False) -> DailyWindow:
        """Build from the YAML form: ``days: [mon, ...]``, ``hours: "09:00-17:00"``."""
        start, end = parse_hours(hours)
        return cls(parse_days(days), start, end, bool(skip_holidays))

    def contains_wall_time(self, local: datetime, country: str | None) -> bool:
        """Whether a local (naive or aware) wall-clock datetime is inside this window."""
        if local.weekday() not in self.days:
            return False
        t = local.time()
        if t < self.start or (self.end != END_OF_DAY and t >= self.end):
            return False
        return not (self.skip_holidays and country and local.date() in _holiday_dates(country, local.year))


def parse_hours(text: str) -> tuple[time, time]:
    """Parse ``"09:00-17:00"`` into ``(time(9), time(17))``; ``24:00`` as end means END_OF_DAY."""
    if not isinstance(text, str):
        raise ValueError(f"hours {text!r} must be a string in the form {_HOURS_FORM}")
    m = _HOURS_RE.match(text)
    if not m:
        raise ValueError(f"hours {text!r} are not in the form {_HOURS_FORM}")
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if not (0 <= h1 <= 23 and 0 <= m1 <= 59):
        raise ValueError(f"hours {text!r}: start {h1:02d}:{m1:02d} is not a time of day ({_HOURS_FORM})")
    if (h2, m2) == (24, 0):
        end = END_OF_DAY
    elif 0 <= h2 <= 23 and 0 <= m2 <= 59:
        end = time(h2, m2)
    else:
        raise ValueError(f"hours {text!r}: end {h2:02d}:{m2:02d} is not a time of day ({_HOURS_FORM})")
    start = time(h1, m1)
    if end != END_OF_DAY and start >= end:
        raise ValueError(
            f"hours {text!r}: end must be later than start; windows that cross midnight or are empty "
            f"are not supported ({_HOURS_FORM})"
        )
    return start, end


def _day_index(name: str, whole: object) -> int:
    key = name.strip().lower()
    if key in _DAY_NAMES:
        return _DAY_NAMES.index(key)
    if key in _FULL_DAY_NAMES:
        return _FULL_DAY_NAMES.index(key)
    raise ValueError(f"days {whole!r}: unknown day {name!r}; expected {_DAYS_FORM}")


def parse_days(names: Iterable[str]) -> frozenset[int]:
    """Parse ``["mon", "tue", "sat-sun"]`` (any case, 3-letter or full names) into weekday numbers."""
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise ValueError(f"days {names!r} must be {_DAYS_FORM}")
    result: set[int] = set()
    for item in names:
        if not isinstance(item, str):
            raise ValueError(f"days {names!r}: {item!r} is not a day name; expected {_DAYS_FORM}")
        if "-" in item:
            first, _, last = item.partition("-")
            i, j = _day_index(first, names), _day_index(last, names)
            result.update((i + k) % 7 for k in range((j - i) % 7 + 1))  # wraps: fri-mon is fine
        else:
            result.add(_day_index(item, names))
    if not result:
        raise ValueError(f"days {names!r} is empty: no day would be allowed; expected {_DAYS_FORM}")
    return frozenset(result)


@functools.lru_cache(maxsize=512)
def _holiday_dates(country: str, year: int) -> frozenset[date]:
    """Dates of the public holidays of ``country`` in ``year``; a country ``holidays`` does not know has
    none. Only dates are kept: holiday *names* depend on the process locale, dates do not.
    """
    try:
        return frozenset(holidays.country_holidays(country.strip().upper(), years=year).keys())
    except NotImplementedError:  # holidays raises it for a country it does not know
        return frozenset()


def _require_aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"instant {at.isoformat()} must be timezone-aware (UTC), not naive")
    return at.astimezone(UTC)


def is_allowed(at_utc: datetime, tz: ZoneInfo, windows: Sequence[DailyWindow], country: str | None) -> bool:
    """Whether ``at_utc`` falls inside ALL ``windows`` in the zone ``tz``; no windows means no limit."""
    local = _require_aware(at_utc).astimezone(tz)
    return all(w.contains_wall_time(local, country) for w in windows)


def _offset(at: datetime, tz: ZoneInfo) -> timedelta | None:
    return at.astimezone(tz).utcoffset()


def _transition_in(a: datetime, b: datetime, tz: ZoneInfo) -> datetime | None:
    """The first instant in (a, b] where tz's UTC offset differs from a's (assumes at most one).

    Offsets change on whole seconds, so a binary search over epoch seconds finds it exactly.
    """
    before = _offset(a, tz)
    if _offset(b, tz) == before:
        return None
    second = timedelta(seconds=1)
    lo = -((_EPOCH - a) // second)  # ceil: whole seconds since the epoch, >= a
    hi = -((_EPOCH - b) // second)
    if _offset(_EPOCH + lo * second, tz) != before:
        return _EPOCH + lo * second
    while hi - lo > 1:  # offset(lo) == before != offset(hi)
        mid = (lo + hi) // 2
        if _offset(_EPOCH + mid * second, tz) == before:
            lo = mid
        else:
            hi = mid
    return _EPOCH + hi * second


def _wall_to_utc(day: date, wall: time, tz: ZoneInfo, fold: int) -> datetime:
    return datetime.combine(day, wall, tzinfo=tz).replace(fold=fold).astimezone(UTC)


def next_allowed(
    at_utc: datetime,
    tz: ZoneInfo,
    windows: Sequence[DailyWindow],
    country: str | None,
    horizon_days: int = 400,
) -> datetime | None:
    """The earliest UTC instant >= ``at_utc`` inside all windows, or None within ``horizon_days``.

    Returns ``at_utc`` (as UTC) when it is already allowed. See the module docstring for DST handling.
    """
    at = _require_aware(at_utc)
    if horizon_days < 0:
        raise ValueError(f"horizon_days must be >= 0, got {horizon_days}")
    if is_allowed(at, tz, windows, country):
        return at
    common_days = frozenset(range(7)).intersection(*(w.days for w in windows))
    latest_start = max(w.start for w in windows)
    earliest_end = min(w.end for w in windows)
    if not common_days or (earliest_end != END_OF_DAY and latest_start >= earliest_end):
        return None  # the windows never overlap
    starts = sorted({w.start for w in windows})
    limit = at + timedelta(days=horizon_days)
    a = at
    while a < limit:
        b = min(a + timedelta(days=1), limit)
        candidates: set[datetime] = set()
        transition = _transition_in(a, b, tz)
        if transition is not None:
            candidates.add(transition)
        first_day = a.astimezone(tz).date() - timedelta(days=1)
        last_day = b.astimezone(tz).date() + timedelta(days=1)
        day = first_day
        while day <= last_day:
            if day.weekday() in common_days:
                for start in starts:
                    for fold in (0, 1):
                        candidates.add(_wall_to_utc(day, start, tz, fold))
            day += timedelta(days=1)
        for candidate in sorted(c for c in candidates if a <= c <= b):
            if is_allowed(candidate, tz, windows, country):
                return candidate
        a = b
    return None


@functools.lru_cache(maxsize=1)
def _zone_keys() -> dict[str, str]:
    """Every IANA zone name tzdata knows, lower-cased -> canonical spelling (links included)."""
    text = resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8")
    return {k.lower(): k for k in (line.strip() for line in text.splitlines()) if k and k != "Factory"}


@functools.lru_cache(maxsize=1)
def _country_zones() -> dict[str, tuple[str, ...]]:
    """ISO 3166 country code -> its zones, from tzdata's zone.tab (one country per line)."""
    text = resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8")
    zones: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        zones.setdefault(fields[0].upper(), []).append(fields[2].strip())
    return {code: tuple(names) for code, names in zones.items()}


def resolve_timezone(tz_name: str | None, country: str | None) -> ZoneInfo | None:
    """The contact's zone: ``tz_name`` if it is a known IANA name (any case), else the country's zone
    when the country has exactly one, else None (the caller defers and reports; never a guessed hour).
    Never raises on bad input.
    """
    if isinstance(tz_name, str) and tz_name.strip():
        key = _zone_keys().get(tz_name.strip().lower())
        if key is not None:
            try:
                return ZoneInfo(key)
            except (ZoneInfoNotFoundError, ValueError, OSError):
                pass
    if isinstance(country, str) and country.strip():
        zones = _country_zones().get(country.strip().upper(), ())
        if len(zones) == 1:
            try:
                return ZoneInfo(zones[0])
            except (ZoneInfoNotFoundError, ValueError, OSError):
                return None
    return None
