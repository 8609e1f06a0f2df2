"""The honesty proof of `omnireach simulate`: the same story, told to the real workflow and to the simulator,
produces the same action trace, line for line.

Each story is a cadence, a contact (timezone, consents) and a script of signals at virtual offsets. The
workflow runs on the time-skipping server with the real worker, database and console channel (the
deliver activity decides windows, caps, consent and fallbacks); the simulator replays the same signals
at the same instants through `core.sim.driver.Driver`. Their traces (`state` query vs the driver) must
be equal: waits, conditions, variants, windows, caps, fallbacks, exits, escalation, handoff, callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from temporalio.testing import WorkflowEnvironment

from bench.simulate_vs_temporal import first_step_at
from content.queues import load_queues, queues_path
from core import engine
from core.jurisdiction import default_policy
from core.messages import WHATSAPP_TEMPLATE
from core.sim.calls import CallDesk
from core.sim.driver import Driver, SendRules, SimContact
from tests.workflows.harness import TEMPLATES, Harness
from workflows.contact_cadence import DispositionSignal, EventSignal, StopSignal

WHATSAPP_TEMPLATES = {
    **TEMPLATES,
    "reminder/whatsapp.j2": "Hi {{ contact.first_name }}, {{ facts.title }} is soon. Reply STOP to opt out",
    "nudge/whatsapp.j2": "Hi {{ contact.first_name }}, still thinking about {{ facts.title }}?",
    "nudge/sms.j2": "Still thinking about {{ facts.title }}? Reply STOP to opt out",
    "reminder/whatsapp.yaml": "content_sid: HX0123456789abcdef0123456789abcdef\ncategory: MARKETING\n"
    "variables:\n  '1': contact.first_name\n",
    "invite/a/email.subject.j2": "A: {{ facts.title }}",
    "invite/b/email.subject.j2": "B: {{ facts.title }}",
}


@dataclass
class Told:
    """What each driver ended with: the action trace, and which channel carried each step or why it was skipped."""

    trace: list[str]
    sent: dict[str, str]
    skipped: dict[str, str]
    status: str


# The simulator takes no time to deliver; a real activity takes some, so on a loaded machine the workflow may
# stamp the command after a delivery a second later. Commands, their order and every `until` must be equal;
# the stamp of each command may trail the simulator's by at most this much, never lead it.
ACTIVITY_LATENCY = timedelta(seconds=3)


def assert_same_story(workflow: Told, simulated: Told) -> None:
    """Equal traces (actions and deadlines exactly; stamps within ACTIVITY_LATENCY), sends, skips, status."""
    assert (workflow.sent, workflow.skipped, workflow.status) == (simulated.sent, simulated.skipped, simulated.status)
    assert _actions(workflow.trace) == _actions(simulated.trace), (workflow.trace, simulated.trace)
    for real, virtual in zip(workflow.trace, simulated.trace, strict=True):
        lag = datetime.fromisoformat(real.split()[0]) - datetime.fromisoformat(virtual.split()[0])
        assert timedelta(0) <= lag <= ACTIVITY_LATENCY, (real, virtual)


@dataclass(frozen=True)
class Signal:
    """One scripted signal: `at` after the enrollment started."""

    at: timedelta
    kind: str  # event | disposition | stop
    name: str = ""
    step_id: str | None = None
    callback_after: timedelta | None = None  # disposition callback: the agreed time, after the signal
    queue: str = "telemarketing"  # the queue of the task a disposition closes


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment, tmp_path):
    h = Harness(time_skipping_env.client, tmp_path, templates=dict(WHATSAPP_TEMPLATES))
    async with h.worker:
        yield h


@pytest.fixture
async def lawful_harness(fresh_time_skipping_env: WorkflowEnvironment, tmp_path):
    """The shipped jurisdiction rules: legal hours apply on top of the cadence window. Its own server, whose
    clock starts today: the shared one may have skipped decades ahead (holiday calendars end)."""
    h = Harness(fresh_time_skipping_env.client, tmp_path, templates=dict(WHATSAPP_TEMPLATES), policy=default_policy())
    async with h.worker:
        yield h


async def _aligned_now(env: WorkflowEnvironment) -> datetime:
    """Move the test server's clock just past a whole second, so the few milliseconds each activity takes
    never push a time stamp across a second boundary (traces are compared to the second)."""
    now = await env.get_current_time()
    target = now.replace(microsecond=0) + timedelta(seconds=1, milliseconds=20)
    await env.sleep(target - now)
    return await env.get_current_time()


async def _advance_to_local(env: WorkflowEnvironment, zone: ZoneInfo, at: time) -> None:
    """Move the test server's clock to the next ``at`` in ``zone``."""
    now = (await env.get_current_time()).astimezone(zone)
    target = datetime.combine(now.date(), at, tzinfo=zone)
    if target <= now:
        target = datetime.combine(now.date() + timedelta(days=1), at, tzinfo=zone)
    await env.sleep(target - now)


async def tell_both(
    harness: Harness,
    env: WorkflowEnvironment,
    cadence_yaml: str,
    script: list[Signal],
    *,
    timezone: str = "Asia/Jakarta",
    country: str = "ID",
    channels: tuple[str, ...] = ("email", "sms", "voice"),
    settle: timedelta = timedelta(days=1),
) -> tuple[Told, Told]:
    """Run the story through the workflow and the simulator; return what each ended with."""
    cadence = harness.cadence(cadence_yaml)
    purpose = cadence.purpose
    contact_id = harness.contact(timezone=timezone, country=country, consents=tuple((c, purpose) for c in channels))
    start = await _aligned_now(env)
    handle = await harness.start(cadence, contact_id)
    first_step = await first_step_at(handle)  # the workflow's first engine step, to the second
    told: list[tuple[datetime, engine.Happening]] = []
    queues = load_queues(queues_path(harness.settings.cadences_dir)).book
    assert queues is not None
    desk = CallDesk(queues)  # a disposition reaches the enrollment with its queue's retry policy, as in call-task
    for signal in sorted(script, key=lambda s: s.at):
        now = await env.get_current_time()
        if start + signal.at > now:
            await env.sleep(start + signal.at - now)
        at = await env.get_current_time()
        if signal.kind == "event":
            await handle.signal("event", EventSignal(signal.name, signal.step_id, f"evt-{len(told)}"))
            told.append((at, engine.EventArrived(signal.name, signal.step_id, f"evt-{len(told)}")))
        elif signal.kind == "disposition":
            callback = at + signal.callback_after if signal.callback_after else None
            callback_text = callback.isoformat() if callback else None
            await handle.signal("disposition", DispositionSignal(signal.name, callback_text))
            told.append((at, desk.disposed(signal.queue, signal.name, callback)))
        else:
            await handle.signal("stop", StopSignal(signal.name or "stopped by request"))
            told.append((at, engine.StopRequested(signal.name or "stopped by request")))
    await env.sleep(settle)
    view = await handle.query("state")
    view = view if isinstance(view, dict) else vars(view)
    workflow = Told(list(view["trace"]), dict(view["sent"]), dict(view["skipped"]), view["status"])

    templates = harness.catalog
    approved = frozenset(m for m in templates.messages() if templates.resolve(m, WHATSAPP_TEMPLATE) is not None)
    policy = harness.policy
    rules = SendRules(
        legal_hours=lambda channel, country: policy.legal_windows(country, channel, purpose),
        whatsapp_templates=approved,
    )
    driver = Driver(cadence, rules, desk=desk)
    driver.enroll(SimContact(contact_id, timezone=timezone, country=country, reachable=frozenset(channels)), first_step)
    for at, happening in told:
        driver.schedule(contact_id, at, happening)
    driver.run(until=start + (script[-1].at if script else timedelta(0)) + settle)
    enrollment = driver.enrollment(contact_id)
    assert enrollment.trace is not None
    state = enrollment.state
    return workflow, Told(enrollment.trace, dict(state.sent), dict(state.skipped), state.status)


NURTURE = """
    id: diff-nurture
    name: Differential nurture
    purpose: marketing
    locale: en
    facts: {title: Tax 101}
    score: {email.opened: 1, email.clicked: 3}
    exit_on: [purchased]
    steps:
      - id: invite
        send: email
        message: invite
        variants: {a: 50, b: 50}
      - wait: 2d
      - id: reminder
        send: sms
        message: reminder
        if: "not opened('invite')"
      - wait: 1d
        until: "clicked('invite')"
      - id: last
        send: sms
        message: last
"""


async def test_waits_conditions_and_variants_match(harness, time_skipping_env):
    script = [
        Signal(timedelta(hours=1), "event", "email.opened", "invite"),
        Signal(timedelta(days=2, hours=3), "event", "email.clicked", "invite"),
    ]
    workflow, simulated = await tell_both(harness, time_skipping_env, NURTURE, script)
    assert simulated.status == "completed"
    assert _actions(simulated.trace)[0] in ("send invite email variant=a", "send invite email variant=b")
    assert simulated.sent == {"invite": "email", "last": "sms"}
    assert simulated.skipped == {"reminder": "condition_false"}  # opened: the condition skipped the reminder
    # the click ended the 1d wait-until early: the last SMS went out 2d3h after the start, not 3d
    assert simulated.trace[-2][:19] != simulated.trace[0][:19]
    assert_same_story(workflow, simulated)


def _actions(trace: list[str]) -> list[str]:
    """The trace without time stamps, for readable assertions about what happened."""
    return [line.split(" ", 1)[1] for line in trace]


WINDOWED = """
    id: diff-window
    name: Differential window and caps
    purpose: marketing
    locale: en
    facts: {title: Tax 101}
    window: {days: [mon, tue, wed, thu, fri], hours: "09:00-17:00", skip_holidays: true}
    caps: {per_day: 1}
    steps:
      - id: invite
        send: email
        message: invite
      - id: reminder
        send: sms
        message: reminder
      - wait: 1d
      - id: last
        send: sms
        message: last
"""


@pytest.mark.parametrize(("timezone", "country"), [("Asia/Jakarta", "ID"), ("America/New_York", "US")])
async def test_windows_holidays_and_caps_match(harness, time_skipping_env, timezone, country):
    workflow, simulated = await tell_both(
        harness, time_skipping_env, WINDOWED, [], timezone=timezone, country=country, settle=timedelta(days=10)
    )
    assert simulated.status == "completed"
    actions = _actions(simulated.trace)
    attempts = [line for line in simulated.trace if " send " in line]
    # the daily cap of 1 made the activity defer the reminder: tried right after the invite, then again at
    # the next day's opening; the three messages go out on three different days
    assert [a.split()[1] for a in _actions(attempts)] == ["invite", "reminder", "reminder", "last"]
    assert attempts[1][:10] == attempts[0][:10] != attempts[2][:10] != attempts[3][:10]
    first_try = actions.index("send reminder sms variant=None")
    assert actions[first_try + 1].startswith("wait deferred until=")
    assert_same_story(workflow, simulated)


ANYTIME = """
    id: diff-legal
    name: Differential legal hours
    purpose: marketing
    locale: en
    facts: {title: Tax 101}
    steps:
      - wait: 13h
      - id: invite
        send: email
        message: invite
      - wait: 13h
      - id: reminder
        send: sms
        message: reminder
      - wait: 13h
      - id: last
        send: sms
        message: last
"""


@pytest.mark.parametrize(("timezone", "country"), [("Asia/Jakarta", "ID"), ("America/New_York", "US")])
async def test_legal_hours_defer_sends_the_same_way(lawful_harness, fresh_time_skipping_env, timezone, country):
    # no cadence window: only the shipped legal hours (ID: Mon-Sat 08:00-18:00 for every channel; US: SMS
    # 08:00-21:00) hold sends back. The run starts at 02:00 local time whenever the suite runs: the SMS, 26h
    # in, falls at 04:00, outside both (from the wall clock's time of day, the US SMS fell inside half the day)
    await _advance_to_local(fresh_time_skipping_env, ZoneInfo(timezone), time(2, 0))
    workflow, simulated = await tell_both(
        lawful_harness,
        fresh_time_skipping_env,
        ANYTIME,
        [],
        timezone=timezone,
        country=country,
        settle=timedelta(days=6),
    )
    assert simulated.status == "completed"
    assert any(a.startswith("wait deferred until=") for a in _actions(simulated.trace))
    assert_same_story(workflow, simulated)


EXITS = """
    id: diff-exit
    name: Differential exits
    purpose: marketing
    locale: en
    facts: {title: Tax 101}
    exit_on: [purchased, unsubscribed]
    steps:
      - id: invite
        send: email
        message: invite
      - wait: 3d
      - id: last
        send: sms
        message: last
"""


@pytest.mark.parametrize("event", ["purchased", "email.unsubscribed"])
async def test_exit_events_match(harness, time_skipping_env, event):
    script = [Signal(timedelta(days=1, hours=2), "event", event, "invite" if "." in event else None)]
    workflow, simulated = await tell_both(harness, time_skipping_env, EXITS, script)
    assert simulated.status == "exited"
    assert _actions(simulated.trace)[-1] == f"finish exited exit_on:{event}"
    assert not any(" send last " in line for line in simulated.trace)
    assert_same_story(workflow, simulated)


async def test_stop_request_matches(harness, time_skipping_env):
    script = [Signal(timedelta(hours=5), "stop", "operator stopped it")]
    workflow, simulated = await tell_both(harness, time_skipping_env, EXITS, script)
    assert simulated.status == "stopped"
    assert _actions(simulated.trace)[-1] == "finish stopped operator stopped it"
    assert_same_story(workflow, simulated)


ROUTED = """
    id: diff-routes
    name: Differential escalation and handoff
    purpose: marketing
    locale: en
    facts: {title: Tax 101}
    score: {email.clicked: 3, webinar.attended: 10}
    escalate: {when: "score >= 10", queue: telemarketing, script: qualify, sla: 24h}
    handoff: {when: "disposition in ['qualified', 'appointment_set']", queue: telesales, script: qualify, sla: 4h}
    steps:
      - id: invite
        send: email
        message: invite
      - wait: 2d
      - id: reminder
        send: sms
        message: reminder
      - wait: 2d
      - id: last
        send: sms
        message: last
"""


async def test_escalation_pauses_nurture_then_handoff_and_win_match(harness, time_skipping_env):
    script = [
        Signal(timedelta(hours=3), "event", "email.clicked", "invite"),
        Signal(timedelta(hours=20), "event", "webinar.attended"),  # score 13: MQL, telemarketing task
        Signal(timedelta(days=3), "disposition", "qualified"),  # the task outlived the 2d wait: nurture paused
        Signal(timedelta(days=3, hours=6), "disposition", "won"),
    ]
    workflow, simulated = await tell_both(harness, time_skipping_env, ROUTED, script)
    assert simulated.status == "completed"
    actions = _actions(simulated.trace)
    assert "task escalate telemarketing" in actions and "task handoff telesales" in actions
    assert actions.index("task escalate telemarketing") < actions.index("task handoff telesales")
    assert actions[-1] == "finish completed won"
    assert not any(" send reminder " in line for line in simulated.trace)  # paused while agents owned the contact
    assert_same_story(workflow, simulated)


async def test_unanswered_calls_are_retried_then_nurture_resumes_and_matches(harness, time_skipping_env):
    # queues.yaml: telemarketing calls an unanswered contact 3 times in all, 2h apart, in its calling hours;
    # the gaps below leave room for evenings, Sundays and holidays before each retry task opens
    script = [
        Signal(timedelta(hours=20), "event", "webinar.attended"),
        Signal(timedelta(days=1), "disposition", "no_answer"),
        Signal(timedelta(days=5), "disposition", "busy"),
        Signal(timedelta(days=9), "disposition", "voicemail"),
    ]
    workflow, simulated = await tell_both(harness, time_skipping_env, ROUTED, script, settle=timedelta(days=5))
    assert simulated.status == "completed"
    actions = _actions(simulated.trace)
    assert actions.count("task escalate telemarketing") == 3
    assert any(a.startswith("wait retry_scheduled until=") for a in actions)
    assert actions.index("send reminder sms variant=None") > max(
        i for i, a in enumerate(actions) if a == "task escalate telemarketing"
    )  # nurture resumed only after the last attempt
    assert_same_story(workflow, simulated)


async def test_task_nobody_may_call_is_cancelled_and_matches(harness, time_skipping_env):
    script = [Signal(timedelta(hours=20), "event", "webinar.attended")]
    workflow, simulated = await tell_both(
        harness, time_skipping_env, ROUTED, script, channels=("email", "sms"), settle=timedelta(days=5)
    )
    assert simulated.status == "completed"
    actions = _actions(simulated.trace)
    assert "task escalate telemarketing" in actions  # an MQL, but no voice consent: the task closes at once
    assert simulated.sent == {"invite": "email", "reminder": "sms", "last": "sms"}
    assert_same_story(workflow, simulated)


CALLS = """
    id: diff-calls
    name: Differential call step and callback
    purpose: marketing
    locale: en
    facts: {title: Tax 101}
    steps:
      - id: invite
        send: email
        message: invite
      - id: warm-call
        call: telemarketing
        script: qualify
      - id: last
        send: sms
        message: last
        if: "disposition != 'not_interested'"
"""


async def test_call_step_with_callback_matches(harness, time_skipping_env):
    script = [
        Signal(timedelta(hours=2), "disposition", "callback", callback_after=timedelta(days=1, hours=1)),
        Signal(timedelta(days=1, hours=5), "disposition", "appointment_set"),
    ]
    workflow, simulated = await tell_both(harness, time_skipping_env, CALLS, script)
    assert simulated.status == "completed"
    actions = _actions(simulated.trace)
    assert [a for a in actions if a.startswith("task")] == ["task call telemarketing", "task callback telemarketing"]
    assert any(a.startswith("wait callback_scheduled until=") for a in actions)
    assert_same_story(workflow, simulated)


FALLBACKS = """
    id: diff-fallback
    name: Differential fallbacks
    purpose: marketing
    locale: en
    facts: {title: Tax 101}
    steps:
      - id: reminder
        send: whatsapp
        message: reminder
        fallback: sms
      - wait: 1h
      - id: nudge
        send: whatsapp
        message: nudge
        fallback: sms
      - wait: 1h
      - id: invite
        send: email
        message: invite
"""


@pytest.mark.parametrize(
    ("channels", "expected"),
    [
        # WhatsApp allowed: the approved template carries the reminder; the nudge has none, so SMS carries it
        (("whatsapp", "sms", "email"), {"reminder": "whatsapp", "nudge": "sms", "invite": "email"}),
        # no WhatsApp consent: both fall back to SMS
        (("sms", "email"), {"reminder": "sms", "nudge": "sms", "invite": "email"}),
    ],
)
async def test_fallbacks_and_consent_skips_match(harness, time_skipping_env, channels, expected):
    workflow, simulated = await tell_both(harness, time_skipping_env, FALLBACKS, [], channels=channels)
    assert simulated.status == "completed"
    assert simulated.sent == expected
    assert_same_story(workflow, simulated)
