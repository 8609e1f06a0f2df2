"""Simulated contacts: spread over the timezones a marketer asks for, reachable per the model's audience.

`--timezones "Asia/Jakarta:3,America/New_York:1"` means three Jakarta contacts for each New York one.
A contact's country is the zone's country (tzdata's zone.tab), so holidays and legal hours follow it.
The same seed always yields the same contacts.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from importlib import resources

from core.model import CHANNELS
from core.sim.driver import SimContact
from core.timewindow import resolve_timezone


class PopulationError(ValueError):
    """A --timezones value that cannot be used; the message says which part and how to write it."""


def parse_timezones(text: str) -> list[tuple[str, float]]:
    """`"Asia/Jakarta:3,America/New_York"` -> [("Asia/Jakarta", 3.0), ("America/New_York", 1.0)]."""
    zones: list[tuple[str, float]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, _, weight_text = part.partition(":")
        name = name.strip()
        zone = resolve_timezone(name, None)
        if zone is None:
            raise PopulationError(f"unknown timezone '{name}'; use IANA names such as Asia/Jakarta or America/New_York")
        try:
            weight = float(weight_text) if weight_text.strip() else 1.0
        except ValueError:
            raise PopulationError(f"weight of '{name}' must be a number, e.g. {name}:3 (got {weight_text!r})") from None
        if weight <= 0:
            raise PopulationError(f"weight of '{name}' must be more than 0 (got {weight_text})")
        zones.append((zone.key, weight))
    if not zones:
        raise PopulationError("give at least one timezone, e.g. Asia/Jakarta or Asia/Jakarta:3,America/New_York:1")
    return zones


@functools.lru_cache(maxsize=1)
def _zone_countries() -> dict[str, str]:
    """IANA zone -> ISO country code, from tzdata's zone.tab (a zone belongs to one country there)."""
    text = resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8")
    found: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        found[fields[2].strip()] = fields[0].upper()
    return found


def country_of(zone: str) -> str | None:
    """The country of a zone (`Asia/Jakarta` -> `ID`), or None for zones of no country (`UTC`)."""
    return _zone_countries().get(zone)


def make_population(
    count: int,
    timezones: Sequence[tuple[str, float]],
    *,
    seed: int,
    audience: Mapping[str, float] | None = None,
    id_prefix: str = "sim",
) -> list[SimContact]:
    """`count` contacts, zones drawn by weight, each channel reachable with the audience's probability."""
    if count < 0:
        raise PopulationError(f"the number of contacts must be 0 or more (got {count})")
    rng = random.Random(f"population:{seed}")
    names = [name for name, _ in timezones]
    weights = [weight for _, weight in timezones]
    shares = {channel: (audience or {}).get(channel, 1.0) for channel in CHANNELS}
    width = max(6, len(str(count)))
    contacts = []
    for index in range(count):
        zone = rng.choices(names, weights)[0]
        reachable = frozenset(c for c in CHANNELS if shares[c] >= 1.0 or rng.random() < shares[c])
        contacts.append(
            SimContact(f"{id_prefix}-{index:0{width}d}", timezone=zone, country=country_of(zone), reachable=reachable)
        )
    return contacts


def enrollment_times(count: int, start: datetime, ramp: timedelta) -> list[datetime]:
    """Enrollment instants spread evenly over `ramp` (all at `start` when the ramp is zero)."""
    if count <= 0:
        return []
    if ramp <= timedelta(0):
        return [start] * count
    step = ramp / count
    return [start + step * i for i in range(count)]
