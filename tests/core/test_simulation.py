"""The simulator as a marketer reads it: what goes out on which day, who escalates, what it costs, and why."""

from __future__ import annotations

import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from content.cadences import load_cadence_file, load_catalog
from content.engagement import DEFAULT_MODEL, load_engagement
from core.cadence_loader import parse_cadence
from core.model import Cadence
from core.sim.driver import SendRules
from core.sim.engagement import EngagementError, EngagementModel, parse_engagement
from core.sim.metrics import erlang_c_agents, service_level
from core.sim.population import PopulationError, country_of, make_population, parse_timezones
from core.sim.simulation import SimulationSettings, simulate
from core.timewindow import DailyWindow
from tests.conftest import REPO

SATURDAY_JAKARTA = datetime(2026, 11, 7, 10, 0, tzinfo=UTC) - timedelta(hours=7)  # Sat 7 Nov 2026 10:00 WIB
MONDAY_JAKARTA = datetime(2026, 11, 2, 9, 0, tzinfo=UTC) - timedelta(hours=7)  # Mon 2 Nov 2026 09:00 WIB
QUIET = EngagementModel()  # nobody reacts: only the cadence and the send rules decide


def cadence(text: str) -> Cadence:
    load = parse_cadence(textwrap.dedent(text), "test.yaml")
    assert load.cadence is not None, [str(e) for e in load.errors]
    return load.cadence


def settings(**overrides) -> SimulationSettings:
    base = {
        "contacts": 50,
        "days": 7,
        "seed": 3,
        "start": MONDAY_JAKARTA,
        "timezones": [("Asia/Jakarta", 1.0)],
    }
    return SimulationSettings(**{**base, **overrides})


ONE_EMAIL = """
    id: one-email
    name: One email
    purpose: marketing
    steps:
      - id: hello
        send: email
        message: hello
"""


def test_a_cadence_without_window_sends_everything_on_day_zero():
    result = simulate(cadence(ONE_EMAIL), QUIET, settings(start=SATURDAY_JAKARTA))
    assert result.tally.sends["email"] == [50, 0, 0, 0, 0, 0, 0]
    assert result.outcome == {"completed: all steps done": 50}


def test_a_window_closed_on_weekends_moves_weekend_sends_to_monday():
    weekdays = cadence(ONE_EMAIL + '    window: {days: [mon, tue, wed, thu, fri], hours: "09:00-17:00"}\n')
    result = simulate(weekdays, QUIET, settings(start=SATURDAY_JAKARTA))
    dates = [d.strftime("%a") for d in result.book.dates()]
    assert dates[:3] == ["Sat", "Sun", "Mon"]
    assert result.tally.sends["email"] == [0, 0, 50, 0, 0, 0, 0]


def test_legal_hours_hook_holds_sends_to_the_stricter_window():
    legal = SendRules(
        legal_hours=SendRules.table({("email", "ID"): [DailyWindow.from_spec(["mon-fri"], "13:00-14:00")]})
    )
    windowed = cadence(ONE_EMAIL + '    window: {hours: "09:00-17:00"}\n')
    result = simulate(windowed, QUIET, settings(rules=legal, traced=1))
    assert result.tally.deferred == {"outside_legal_hours": 50}
    [trace] = result.traces.values()
    assert "2026-11-02T06:00:00+00:00 send hello email" in "\n".join(trace)  # 13:00 WIB


def test_a_daily_cap_pushes_the_second_message_to_the_next_day():
    capped = cadence("""
        id: capped
        name: Capped
        purpose: marketing
        caps: {per_day: 1}
        steps:
          - {id: first, send: email, message: hello}
          - {id: second, send: sms, message: hello}
    """)
    result = simulate(capped, QUIET, settings())
    assert result.tally.sends["email"][:2] == [50, 0]
    assert result.tally.sends["sms"][:2] == [0, 50]
    assert result.tally.deferred == {"cap_per_day": 50}


def test_contacts_without_whatsapp_get_the_fallback_and_the_rest_are_skipped():
    mixed = cadence("""
        id: mixed
        name: Mixed
        purpose: marketing
        steps:
          - {id: nudge, send: whatsapp, message: nudge, fallback: sms}
          - {id: last, send: whatsapp, message: nudge}
    """)
    model = EngagementModel(audience={"whatsapp": 0.0})
    result = simulate(mixed, model, settings())
    assert result.tally.sends["whatsapp"] == [0] * 7
    assert result.tally.sends["sms"][0] == 50
    assert result.tally.skipped == {"no_consent": 50}


def test_no_approved_whatsapp_template_means_the_fallback_carries_the_message():
    mixed = cadence("""
        id: templates
        name: Templates
        purpose: marketing
        steps:
          - {id: nudge, send: whatsapp, message: nudge, fallback: sms}
    """)
    result = simulate(mixed, QUIET, settings(rules=SendRules(whatsapp_templates=frozenset())))
    assert result.tally.sends["sms"][0] == 50 and sum(result.tally.sends["whatsapp"]) == 0


ROUTED = """
    id: routed
    name: Routed
    purpose: marketing
    score: {email.clicked: 3, webinar.attended: 10}
    exit_on: [unsubscribed]
    escalate: {when: "score >= 10", queue: telemarketing, script: qualify, sla: 24h}
    handoff: {when: "disposition in ['qualified']", queue: telesales, script: close, sla: 4h}
    steps:
      - {id: invite, send: email, message: invite}
      - wait: 10d
      - {id: last, send: sms, message: last}
"""

EVERYONE_BUYS = """
version: 1
currency: IDR
channels:
  email:
    open: {probability: 1.0, delay: 1h}
    click: {probability: 1.0, delay: 10m}
    cost: 100
events:
  - {name: webinar.registered, after: clicked, probability: 1.0, delay: 1h}
  - {name: webinar.attended, after: webinar.registered, probability: 1.0, delay: 1d}
queues:
  telemarketing: {pickup: 1h, handle_time: 6m, answer: 1.0, outcomes: {qualified: 1}}
  telesales: {pickup: 1h, handle_time: 10m, answer: 1.0, outcomes: {won: 1}, deal_value: 500000}
agents: {hourly_cost: 50000}
"""


def test_engaged_contacts_escalate_qualify_and_buy_through_both_queues():
    model = parse_engagement(EVERYONE_BUYS, "model.yaml")
    result = simulate(cadence(ROUTED), model, settings(contacts=40, days=14))
    data = result.to_json()
    totals = data["totals"]
    assert (totals["mql"], totals["sql"], totals["won"]) == (40, 40, 40)
    assert totals["revenue"] == 40 * 500000
    assert totals["call_tasks"] == {"telemarketing": 40, "telesales": 40}
    assert result.outcome == {"completed: won": 40}
    assert totals["sends"]["sms"] == 0  # everyone bought before the last SMS was due
    assert totals["cost"]["email"] == 40 * 100
    assert totals["cost"]["agents"] > 0 and all(n >= 1 for n in data["agents_needed"]["telemarketing"] if n)


def test_replies_end_the_enrollment_when_the_cadence_exits_on_them():
    model = parse_engagement("channels:\n  email:\n    reply: {probability: 1.0, delay: 2h}\n", "model.yaml")
    replying = cadence(ROUTED.replace("exit_on: [unsubscribed]", "exit_on: [replied]"))
    result = simulate(replying, model, settings())
    assert result.outcome == {"exited: exit_on:email.replied": 50}
    assert sum(result.tally.sends["sms"]) == 0


def test_the_same_seed_gives_the_same_numbers_and_another_seed_other_ones():
    model = load_engagement()
    webinar = cadence((REPO / "cadences" / "webinar-nurture.yaml").read_text())
    first = simulate(webinar, model, settings(contacts=300, days=10, seed=11)).to_json()
    again = simulate(webinar, model, settings(contacts=300, days=10, seed=11)).to_json()
    other = simulate(webinar, model, settings(contacts=300, days=10, seed=12)).to_json()
    for data in (first, again, other):
        del data["performance"]
    assert first == again
    assert first["events"] != other["events"]


def test_ten_thousand_style_run_of_the_webinar_example_is_fast():
    library = load_catalog(REPO / "templates")
    load = load_cadence_file(REPO / "cadences" / "webinar-nurture.yaml", library)
    assert load.cadence is not None
    began = time.process_time()
    result = simulate(
        load.cadence,
        load_engagement(),
        settings(contacts=2000, days=30, timezones=[("Asia/Jakarta", 3), ("America/New_York", 1)]),
    )
    spent = time.process_time() - began
    totals = result.to_json()["totals"]
    assert totals["sends"]["email"] == 2000
    assert totals["sends"]["whatsapp"] + totals["sends"]["sms"] > 2000
    assert totals["mql"] > 0 and totals["sql"] > 0
    assert spent < 15, f"2,000 contacts x 30 days took {spent:.1f} s of CPU; 10,000 must stay under a minute"


def test_erlang_c_matches_the_textbook_example():
    # 100 calls in 30 minutes, 3-minute handle time, 80% answered within 20 seconds: 14 agents
    assert erlang_c_agents(200, 1.0, 3.0, 20 / 60, 0.8, 1.0) == 14
    assert service_level(13, 10.0, 3.0, 20 / 60) < 0.8 < service_level(14, 10.0, 3.0, 20 / 60)
    assert erlang_c_agents(0, 9.0, 6.0, 240, 0.8, 0.85) == 0
    # long SLAs: the occupancy ceiling decides (8.5 Erlangs of work at most 85% busy -> 10 agents)
    assert erlang_c_agents(765, 9.0, 6.0, 24 * 60, 0.8, 0.85) == 10


def test_engagement_model_errors_name_file_line_and_column():
    with pytest.raises(EngagementError) as caught:
        parse_engagement("channels:\n  email:\n    open: {probability: 1.5}\n    bogus: 1\n", "my-model.yaml")
    lines = [str(e) for e in caught.value.errors]
    assert any(line.startswith("my-model.yaml:3:") and "probability" in line for line in lines), lines
    assert any(line.startswith("my-model.yaml:4:5: unknown key 'bogus'") for line in lines), lines
    with pytest.raises(EngagementError) as caught:
        parse_engagement("events:\n  - {name: attended, after: nothing, probability: 0.5}\n", "m.yaml")
    assert "neither a stage" in str(caught.value)


def test_the_shipped_model_loads_and_says_what_it_costs():
    model = load_engagement(DEFAULT_MODEL)
    assert model.channel("sms").cost > 0 and model.queue("telesales").deal_value > 0
    with pytest.raises(EngagementError) as caught:
        load_engagement(Path("/nonexistent/model.yaml"))
    assert "cannot read" in str(caught.value)


def test_timezones_are_weighted_and_carry_their_country():
    zones = parse_timezones("Asia/Jakarta:3, america/new_york")
    assert zones == [("Asia/Jakarta", 3.0), ("America/New_York", 1.0)]
    people = make_population(4000, zones, seed=5)
    jakarta = sum(1 for p in people if p.timezone == "Asia/Jakarta")
    assert 2850 < jakarta < 3150
    assert {p.country for p in people} == {"ID", "US"} and country_of("UTC") is None
    assert make_population(10, zones, seed=5) == make_population(10, zones, seed=5)
    for bad in ("Mars/Olympus", "Asia/Jakarta:x", "Asia/Jakarta:0", ""):
        with pytest.raises(PopulationError):
            parse_timezones(bad)


def test_a_contacts_story_is_the_same_alone_or_among_many():
    webinar = cadence((REPO / "cadences" / "webinar-nurture.yaml").read_text())
    crowd = make_population(500, [("Asia/Jakarta", 3), ("America/New_York", 1)], seed=9)
    chosen = crowd[137]
    many = simulate(webinar, load_engagement(), settings(contacts=500, days=10, population=crowd, traced=500))
    alone = simulate(webinar, load_engagement(), settings(contacts=1, days=10, population=[chosen], traced=1))
    assert alone.traces[chosen.contact_id] == many.traces[chosen.contact_id]
    assert alone.scripts[chosen.contact_id] == many.scripts[chosen.contact_id]
    assert len(many.traces[chosen.contact_id]) >= 3
