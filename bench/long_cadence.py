"""A year-long cadence for continue-as-new checks: one SMS a day, scored daily engagement, an exit event.

It renders the shipped `demo-check-in` message (templates/), so any worker built from the repository can
run it. Used by tests/workflows/test_continue_as_new.py and bench/record_histories.py.
"""

from __future__ import annotations

from core.cadence_loader import parse_cadence
from core.model import Cadence


def long_cadence_yaml(days: int = 365, *, cadence_id: str = "year-long") -> str:
    """``days`` daily steps (send, then wait 1d until the contact buys); `sms.clicked` scores a point."""
    lines = [
        f"id: {cadence_id}",
        "name: A year of daily check-ins",
        "purpose: service",
        "locale: en",
        "facts: {product: Acme Books, setup_minutes: 5, setup_url: 'https://books.example.com/setup'}",
        "score: {sms.clicked: 1, daily.used: 1}",
        "exit_on: [purchased]",
        "steps:",
    ]
    for day in range(1, days + 1):
        lines += [
            f"  - id: day-{day}",
            "    send: sms",
            "    message: demo-check-in",
            "  - wait: 1d",
            "    until: \"event('purchased')\"",
        ]
    return "\n".join(lines) + "\n"


def long_cadence(days: int = 365, *, cadence_id: str = "year-long") -> Cadence:
    load = parse_cadence(long_cadence_yaml(days, cadence_id=cadence_id), f"{cadence_id}.yaml")
    if load.cadence is None:
        raise ValueError("; ".join(map(str, load.errors)))
    return load.cadence
