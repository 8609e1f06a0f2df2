"""Jurisdiction policy as data: legal contact hours, Do-Not-Call registry freshness and holiday calendars.

Shipped defaults (COMPLIANCE.md) cover the US (TCPA calling hours), Indonesia (OJK hours, WIB/WITA/WIT by
region, national holidays), Singapore (DNC register results valid 21 days), the UK (TPS screening) and a
default (the cadence window only). An operator overrides them with a YAML file (``OMNIREACH_POLICY_FILE``,
parsed by ``parse_policy``) in the same shape as ``DEFAULTS``; a country named there replaces the shipped
entry key by key (``hours``, ``registry``, ``holidays``, ``regions``).

Pure: no clock (``today`` / ``now`` are parameters), no IO (the caller reads the file). Legal hours come
out as ``LegalWindow`` (a ``DailyWindow``), so ``core.timewindow`` intersects them with the cadence window:
the stricter one wins at every instant, DST included.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import holidays
import phonenumbers

from core.timewindow import DailyWindow, parse_days, parse_hours, resolve_timezone
from core.yamlsource import LocatedDocument, SourceError, YamlSourceError, load_located

CHANNELS = ("email", "sms", "whatsapp", "voice")
PURPOSES = ("marketing", "sales", "service")
TELEMARKETING = ("marketing", "sales")  # DNC registries and solicitation hours concern offers, not service
DEFAULT_KEY = "default"


def _split(names: str) -> list[str]:
    return names.split("|")


# The shipped defaults, in the same shape an operator's override file uses (see parse_policy).
DEFAULTS: dict[str, Any] = {
    "version": 1,
    "countries": {
        "US": {
            "name": "United States",
            "hours": [
                {
                    "channels": ["voice", "sms"],
                    "purposes": list(TELEMARKETING),
                    "days": ["mon-sun"],
                    "hours": "08:00-21:00",
                    "source": "TCPA, 47 CFR 64.1200(c)(1)",
                }
            ],
            "registry": {
                "name": "National Do Not Call Registry",
                "channels": ["voice"],
                "purposes": list(TELEMARKETING),
                "max_age_days": 31,
            },
        },
        "ID": {
            "name": "Indonesia",
            "hours": [
                {
                    "channels": list(CHANNELS),
                    "purposes": list(TELEMARKETING),
                    "days": ["mon-sat"],
                    "hours": "08:00-18:00",
                    "skip_holidays": True,
                    "source": "OJK, POJK 6/2022 art. 25 (verify: may be superseded by POJK 22/2023)",
                }
            ],
            "zones": {
                "WIB": ["Asia/Jakarta", "Asia/Pontianak"],
                "WITA": ["Asia/Makassar"],
                "WIT": ["Asia/Jayapura"],
            },
            # ISO 3166-2 province codes (and names) -> zone, for contacts with a region but no timezone.
            "regions": {
                "Asia/Jakarta": _split(
                    "ID-AC|ID-SU|ID-SB|ID-RI|ID-KR|ID-JA|ID-SS|ID-BB|ID-BE|ID-LA|ID-JK|ID-JB|ID-BT|ID-JT|ID-YO|ID-JI|"
                    "Aceh|Sumatera Utara|Sumatera Barat|Riau|Kepulauan Riau|Jambi|Sumatera Selatan|"
                    "Kepulauan Bangka Belitung|Bengkulu|Lampung|DKI Jakarta|Jakarta|Jawa Barat|Banten|Jawa Tengah|"
                    "DI Yogyakarta|Yogyakarta|Jawa Timur"
                ),
                "Asia/Pontianak": _split("ID-KB|ID-KT|Kalimantan Barat|Kalimantan Tengah"),
                "Asia/Makassar": _split(
                    "ID-BA|ID-NB|ID-NT|ID-KS|ID-KI|ID-KU|ID-SA|ID-GO|ID-ST|ID-SR|ID-SN|ID-SG|"
                    "Bali|Nusa Tenggara Barat|Nusa Tenggara Timur|Kalimantan Selatan|Kalimantan Timur|"
                    "Kalimantan Utara|Sulawesi Utara|Gorontalo|Sulawesi Tengah|Sulawesi Barat|Sulawesi Selatan|"
                    "Sulawesi Tenggara"
                ),
                "Asia/Jayapura": _split(
                    "ID-MA|ID-MU|ID-PA|ID-PB|ID-PD|ID-PT|ID-PE|ID-PS|Maluku|Maluku Utara|Papua|Papua Barat|"
                    "Papua Barat Daya|Papua Tengah|Papua Pegunungan|Papua Selatan"
                ),
            },
        },
        "SG": {
            "name": "Singapore",
            "registry": {
                "name": "DNC Register",
                "channels": ["voice", "sms"],
                "purposes": list(TELEMARKETING),
                "max_age_days": 21,
            },
        },
        "GB": {
            "name": "United Kingdom",
            "hours": [
                {
                    "channels": ["voice"],
                    "purposes": list(TELEMARKETING),
                    "days": ["mon-sun"],
                    "hours": "08:00-21:00",
                    "source": "industry practice (DMA code; verify), no statutory calling hours",
                }
            ],
            "registry": {
                "name": "Telephone Preference Service (TPS)",
                "channels": ["voice"],
                "purposes": list(TELEMARKETING),
                "max_age_days": 28,
            },
        },
    },
    "default": {"name": "default: the cadence window only"},
}


@dataclass(frozen=True)
class LegalWindow(DailyWindow):
    """A legal-hours window: like ``DailyWindow`` but closed on its own holiday calendar and extra dates.

    ``calendar`` names the ``holidays`` country whose public holidays close it (``skip_holidays``), which
    is the jurisdiction's, not necessarily the contact's stored country.
    """

    calendar: str | None = None
    closed_dates: frozenset[date] = frozenset()
    source: str = ""

    def contains_wall_time(self, local: datetime, country: str | None) -> bool:
        if not super().contains_wall_time(local, self.calendar or country):
            return False
        return local.date() not in self.closed_dates


@dataclass(frozen=True)
class HoursRule:
    """Legal hours for some channels x purposes of one country."""

    channels: frozenset[str]
    purposes: frozenset[str]
    window: LegalWindow

    def applies(self, channel: str, purpose: str) -> bool:
        return channel in self.channels and purpose in self.purposes


@dataclass(frozen=True)
class RegistryRule:
    """A national Do-Not-Call registry that must be checked, and how old a copy may be."""

    name: str
    channels: frozenset[str]
    purposes: frozenset[str]
    max_age_days: int
    required: bool = True  # no copy imported at all blocks too (never "call unchecked")

    def applies(self, channel: str, purpose: str) -> bool:
        return channel in self.channels and purpose in self.purposes


@dataclass(frozen=True)
class CountryPolicy:
    code: str  # ISO 3166-1 alpha-2, or "default"
    name: str
    hours: tuple[HoursRule, ...] = ()
    registry: RegistryRule | None = None
    holiday_calendar: str | None = None  # a `holidays` country code; default: the country itself
    extra_holidays: frozenset[date] = frozenset()
    zones: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # label (WIB) -> IANA zones
    regions: Mapping[str, str] = field(default_factory=dict)  # casefolded region code or name -> IANA zone


@dataclass(frozen=True)
class RegistryStatus:
    """Whether the registry copies for a country are fresh enough to reach someone there."""

    ok: bool
    reason: str = "registry_fresh"  # registry_fresh | registry_stale | registry_missing | registry_not_needed
    detail: str = ""


@dataclass(frozen=True)
class JurisdictionPolicy:
    countries: Mapping[str, CountryPolicy]
    default: CountryPolicy

    def for_country(self, country: str | None) -> CountryPolicy:
        key = (country or "").strip().upper()
        return self.countries.get(key, self.default)

    def legal_windows(self, country: str | None, channel: str, purpose: str) -> tuple[LegalWindow, ...]:
        """The legal-hours windows for reaching someone in ``country`` on ``channel`` for ``purpose``."""
        return tuple(r.window for r in self.for_country(country).hours if r.applies(channel, purpose))

    def registry_rule(self, country: str | None, channel: str, purpose: str) -> RegistryRule | None:
        rule = self.for_country(country).registry
        return rule if rule is not None and rule.applies(channel, purpose) else None

    def resolve_zone(self, tz_name: str | None, country: str | None, region: str | None = None) -> ZoneInfo | None:
        """The contact's zone: a known IANA ``tz_name``; else the zone of their ``region`` (e.g. ``ID-BA``
        -> WITA); else the country's only zone; else None (never a guessed hour)."""
        zone = resolve_timezone(tz_name, None)
        if zone is not None:
            return zone
        if isinstance(region, str) and region.strip():
            name = self.for_country(country).regions.get(region.strip().casefold())
            if name is not None:
                return ZoneInfo(name)
        return resolve_timezone(None, country)

    def zone_label(self, country: str | None, zone: ZoneInfo | None) -> str | None:
        """The local name of a zone in a country (``Asia/Makassar`` in ID -> ``WITA``), if it has one."""
        if zone is None:
            return None
        for label, names in self.for_country(country).zones.items():
            if zone.key in names:
                return label
        return None


def registry_status(
    rule: RegistryRule | None, country: str | None, latest_as_of: Mapping[str, date], today: date
) -> RegistryStatus:
    """Judge the registry copies imported for ``country`` (list name -> newest snapshot date).

    Every list imported for the country must be within ``max_age_days`` of ``today``; with ``required``,
    at least one must exist. A stale or missing copy blocks instead of reaching someone unchecked.
    """
    if rule is None:
        return RegistryStatus(True, "registry_not_needed")
    how = f"import a current copy: omnireach dnc import FILE --list NAME --country {country} --as-of DATE"
    if not latest_as_of:
        if not rule.required:
            return RegistryStatus(True, "registry_not_needed")
        return RegistryStatus(False, "registry_missing", f"no copy of the {country} {rule.name} was imported; {how}")
    stale = sorted((name, as_of) for name, as_of in latest_as_of.items() if (today - as_of).days > rule.max_age_days)
    if stale:
        lists = ", ".join(f"{name} as of {as_of.isoformat()} ({(today - as_of).days} days)" for name, as_of in stale)
        return RegistryStatus(
            False,
            "registry_stale",
            f"the {country} {rule.name} copy is older than {rule.max_age_days} days: {lists}; {how}",
        )
    return RegistryStatus(True, "registry_fresh")


def number_country(e164: str | None) -> str | None:
    """The country a phone number belongs to (``+12125550147`` -> ``US``), or None when unknown."""
    if not e164:
        return None
    return _region_of_number(e164)


@functools.lru_cache(maxsize=65536)  # parsing costs ~40 us and every send and claim asks, often for the same number
def _region_of_number(e164: str) -> str | None:
    text = e164.strip()
    if text.lower().startswith("whatsapp:"):
        text = text[len("whatsapp:") :].strip()
    try:
        region = phonenumbers.region_code_for_number(phonenumbers.parse(text, None))
    except phonenumbers.NumberParseException:
        return None
    return region if region and region != "ZZ" else None


# ---- parsing ------------------------------------------------------------------------------------------
class PolicyError(ValueError):
    """A policy file that cannot be used; ``errors`` are ``path:line:col: message``."""

    def __init__(self, errors: Sequence[SourceError]):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def parse_policy(text: str, path: str) -> JurisdictionPolicy:
    """The shipped defaults overridden by an operator's YAML ``text`` (errors name ``path:line:col``)."""
    try:
        doc = load_located(text, path)
    except YamlSourceError as exc:
        raise PolicyError([exc.error]) from None
    return _Reader(doc).policy(DEFAULTS)


@functools.cache
def default_policy() -> JurisdictionPolicy:
    """The shipped defaults alone."""
    return _Reader(LocatedDocument(path="<defaults>", data={})).policy(DEFAULTS)


def permissive_policy() -> JurisdictionPolicy:
    """No legal hours and no registries anywhere: only the cadence's own rules (tests of other concerns)."""
    return JurisdictionPolicy({}, CountryPolicy(DEFAULT_KEY, "none"))


_TOP_KEYS = ("version", "countries", "default")
_COUNTRY_KEYS = ("name", "hours", "registry", "holidays", "zones", "regions")
_HOURS_KEYS = ("channels", "purposes", "days", "hours", "skip_holidays", "source")
_REGISTRY_KEYS = ("name", "channels", "purposes", "max_age_days", "required")
_HOLIDAY_KEYS = ("calendar", "extra")


class _Reader:
    """Validates the override document by hand so every error points at its line and column."""

    def __init__(self, doc: LocatedDocument):
        self.doc = doc
        self.errors: list[SourceError] = []

    def fail(self, where: tuple, message: str, *, key: bool = False) -> None:
        self.errors.append(self.doc.error(where, message, key=key))

    def policy(self, defaults: Mapping[str, Any]) -> JurisdictionPolicy:
        data = self.doc.data
        if not isinstance(data, dict):
            self.fail((), "a policy file must be a mapping with 'countries' (and optionally 'default')")
            raise PolicyError(self.errors)
        self._keys((), data, _TOP_KEYS)
        if data.get("version", 1) != 1:
            self.fail(("version",), f"unknown policy version {data.get('version')!r}; this omnireach reads version 1")
        overrides = data.get("countries") or {}
        if not isinstance(overrides, dict):
            self.fail(("countries",), "countries must be a mapping of ISO country codes (US, ID, ...) to rules")
            overrides = {}
        countries: dict[str, CountryPolicy] = {}
        codes = {str(c).upper() for c in defaults["countries"]} | {str(c).strip().upper() for c in overrides}
        for code in sorted(codes):
            written = next((k for k in overrides if str(k).strip().upper() == code), None)
            if written is not None and (len(code) != 2 or not code.isalpha()):
                self.fail(("countries", written), f"'{written}' is not an ISO 3166-1 alpha-2 code", key=True)
                continue
            base = defaults["countries"].get(code, {})
            entry = overrides.get(written) if written is not None else None
            countries[code] = self._country(code, base, entry, ("countries", written))
        default = self._country(DEFAULT_KEY, defaults["default"], data.get("default"), ("default",))
        if self.errors:
            raise PolicyError(sorted(self.errors, key=lambda e: (e.line, e.column)))
        return JurisdictionPolicy(countries, default)

    def _keys(self, where: tuple, data: dict, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        for key in data:
            if key not in allowed:
                self.fail((*where, key), f"unknown key '{key}'; allowed here: {', '.join(allowed)}", key=True)

    def _country(self, code: str, base: Mapping[str, Any], entry: Any, where: tuple) -> CountryPolicy:
        if entry is None:
            entry, where = {}, ()
        elif not isinstance(entry, dict):
            self.fail(where, f"{code}: expected a mapping with {', '.join(_COUNTRY_KEYS)}")
            entry = {}
        else:
            self._keys(where, entry, _COUNTRY_KEYS)
        merged = {**base, **entry}  # a key written by the operator replaces the shipped one wholly

        def at(key: str) -> tuple:
            return (*where, key) if key in entry else ()

        holidays_spec = merged.get("holidays") or {}
        calendar, extra = self._holidays(code, holidays_spec, at("holidays"))
        hours = tuple(
            rule
            for i, raw in enumerate(self._list(merged.get("hours") or [], at("hours"), "hours"))
            if (rule := self._hours(code, raw, (*at("hours"), i) if at("hours") else (), calendar, extra))
        )
        registry = self._registry(code, merged.get("registry"), at("registry"))
        zones = self._zones(merged.get("zones") or {}, at("zones"))
        regions = self._regions(merged.get("regions") or {}, at("regions"))
        return CountryPolicy(code, str(merged.get("name") or code), hours, registry, calendar, extra, zones, regions)

    def _list(self, value: Any, where: tuple, name: str) -> list:
        if not isinstance(value, list):
            self.fail(where, f"{name} must be a list")
            return []
        return value

    def _choices(self, value: Any, where: tuple, name: str, allowed: tuple[str, ...]) -> frozenset[str]:
        if value is None:
            return frozenset(allowed)
        if not isinstance(value, list) or not value:
            self.fail(where, f"{name} must be a non-empty list of {', '.join(allowed)}")
            return frozenset()
        bad = [v for v in value if v not in allowed]
        if bad:
            self.fail(where, f"{name}: unknown {', '.join(map(str, bad))}; use {', '.join(allowed)}")
        return frozenset(v for v in value if v in allowed)

    def _holidays(self, code: str, spec: Any, where: tuple) -> tuple[str | None, frozenset[date]]:
        if not isinstance(spec, dict):
            self.fail(where, "holidays must be a mapping: {calendar: ID, extra: [2026-12-24, ...]}")
            return (None if code == DEFAULT_KEY else code), frozenset()
        self._keys(where, spec, _HOLIDAY_KEYS)
        calendar = spec.get("calendar", None if code == DEFAULT_KEY else code)
        if calendar is not None and (not isinstance(calendar, str) or len(calendar.strip()) != 2):
            self.fail((*where, "calendar"), f"calendar {calendar!r} must be a country code such as ID")
            calendar = None
        elif calendar is not None and not _known_calendar(calendar.strip().upper()):
            self.fail((*where, "calendar"), f"no public-holiday calendar is known for {calendar!r}")
        extra: set[date] = set()
        for i, value in enumerate(self._list(spec.get("extra") or [], (*where, "extra"), "holidays.extra")):
            if isinstance(value, str):
                with contextlib.suppress(ValueError):
                    value = date.fromisoformat(value.strip())
            if isinstance(value, date) and not isinstance(value, datetime):
                extra.add(value)
            else:
                self.fail((*where, "extra", i), f"{value!r} is not a date; write it as YYYY-MM-DD")
        return (calendar.strip().upper() if isinstance(calendar, str) else None), frozenset(extra)

    def _hours(
        self, code: str, raw: Any, where: tuple, calendar: str | None, extra: frozenset[date]
    ) -> HoursRule | None:
        if not isinstance(raw, dict):
            self.fail(where, "each hours rule must be a mapping with channels, days and hours")
            return None
        self._keys(where, raw, _HOURS_KEYS)
        channels = self._choices(raw.get("channels"), (*where, "channels"), "channels", CHANNELS)
        purposes = self._choices(raw.get("purposes"), (*where, "purposes"), "purposes", PURPOSES)
        try:
            days = parse_days(raw.get("days", ["mon-sun"]))
        except ValueError as exc:
            self.fail((*where, "days"), str(exc))
            return None
        try:
            start, end = parse_hours(raw.get("hours", ""))
        except ValueError as exc:
            self.fail((*where, "hours"), str(exc))
            return None
        skip = raw.get("skip_holidays", False)
        if not isinstance(skip, bool):
            self.fail((*where, "skip_holidays"), "skip_holidays must be true or false")
            skip = True
        window = LegalWindow(
            days, start, end, skip, calendar=calendar, closed_dates=extra, source=str(raw.get("source") or code)
        )
        return HoursRule(channels, purposes, window)

    def _registry(self, code: str, raw: Any, where: tuple) -> RegistryRule | None:
        if raw is None or raw is False:
            return None
        if not isinstance(raw, dict):
            self.fail(where, "registry must be a mapping with name, channels and max_age_days (or null for none)")
            return None
        self._keys(where, raw, _REGISTRY_KEYS)
        age = raw.get("max_age_days")
        if not isinstance(age, int) or isinstance(age, bool) or age < 0:
            self.fail((*where, "max_age_days"), f"max_age_days must be a whole number of days >= 0, got {age!r}")
            return None
        required = raw.get("required", True)
        if not isinstance(required, bool):
            self.fail((*where, "required"), "required must be true or false")
            required = True
        return RegistryRule(
            name=str(raw.get("name") or f"{code} registry"),
            channels=self._choices(raw.get("channels"), (*where, "channels"), "channels", CHANNELS),
            purposes=self._choices(
                raw.get("purposes", list(TELEMARKETING)), (*where, "purposes"), "purposes", PURPOSES
            ),
            max_age_days=age,
            required=required,
        )

    def _zones(self, raw: Any, where: tuple) -> dict[str, tuple[str, ...]]:
        if not isinstance(raw, dict):
            self.fail(where, "zones must map a local name (WIB) to a list of IANA zones")
            return {}
        zones: dict[str, tuple[str, ...]] = {}
        for label, names in raw.items():
            names = names if isinstance(names, list) else [names]
            for name in names:
                if resolve_timezone(str(name), None) is None:
                    self.fail((*where, label), f"{name!r} is not an IANA time zone such as Asia/Jakarta")
            zones[str(label)] = tuple(str(n) for n in names)
        return zones

    def _regions(self, raw: Any, where: tuple) -> dict[str, str]:
        if not isinstance(raw, dict):
            self.fail(where, "regions must map an IANA zone to a list of region codes or names")
            return {}
        regions: dict[str, str] = {}
        for zone_name, names in raw.items():
            zone = resolve_timezone(str(zone_name), None)
            if zone is None:
                self.fail(
                    (*where, zone_name), f"{zone_name!r} is not an IANA time zone such as Asia/Makassar", key=True
                )
                continue
            for name in names if isinstance(names, list) else [names]:
                regions[str(name).strip().casefold()] = zone.key
        return regions


@functools.cache
def _known_calendar(code: str) -> bool:
    return code in holidays.list_supported_countries()
