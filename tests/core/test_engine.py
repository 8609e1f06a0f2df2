"""The cadence engine on a virtual clock, no Temporal: what it sends, when, and why it stops.

`Driver` plays the part the `contact-cadence` workflow plays: it asks `advance` for the next command,
sends (reporting what the deliver activity would report), sleeps on the virtual clock until a wait ends
or a scripted event arrives, and records the trace.
"""

from __future__ import annotations

import copy
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from core.cadence_loader import parse_cadence
from core.engine import (
    MAX_DEFERRALS_PER_STEP,
    Command,
    ContactProfile,
    CreateTask,
    DispositionRecorded,
    EnrollmentState,
    EventArrived,
    Finish,
    Happening,
    Send,
    SendReported,
    Started,
    StopRequested,
    TimerFired,
    Wait,
    advance,
    assign_variant,
)
from core.model import Cadence

JAKARTA = ContactProfile("contact-jkt", external_id="crm-1", country="ID", timezone="Asia/Jakarta", locale="id")
NEW_YORK = ContactProfile("contact-nyc", external_id="crm-2", country="US", timezone="America/New_York")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


T0 = utc(2026, 3, 2, 3, 0)  # Monday 10:00 in Jakarta


def cadence(body: str, head: str = "id: test\nname: Test\npurpose: marketing\n") -> Cadence:
    load = parse_cadence(head + textwrap.dedent(body), "test.yaml")
    assert load.cadence is not None, [str(e) for e in load.errors]
    return load.cadence


Report = Callable[[Send, datetime], SendReported]


def sent(command: Send, now: datetime) -> SendReported:
    return SendReported(command.step_id, "sent", command.channel)


@dataclass
class Driver:
    """A virtual-clock driver of the engine (what the workflow and the simulator do for real)."""

    cadence: Cadence
    contact: ContactProfile = JAKARTA
    now: datetime = T0
    report: Report = sent
    state: EnrollmentState = field(default_factory=EnrollmentState)
    trace: list[tuple[datetime, Command]] = field(default_factory=list)
    events: list[tuple[datetime, Happening]] = field(default_factory=list)

    def at(self, when: datetime, happening: Happening) -> Driver:
        self.events.append((when, happening))
        self.events.sort(key=lambda e: e[0])
        return self

    def tell(self, happening: Happening) -> Command:
        self.state, command = advance(self.cadence, self.contact, self.state, happening, self.now)
        self.trace.append((self.now, command))
        return command

    def run(self, until: datetime | None = None, limit: int = 500) -> Command:
        """Drive until Finish, an open-ended wait with no scripted event left, or `until`."""
        command = self.tell(Started())
        for _ in range(limit):
            if isinstance(command, Finish):
                return command
            if isinstance(command, Send):
                command = self.tell(self.report(command, self.now))
            elif isinstance(command, CreateTask):
                command = self.tell(TimerFired())  # as the workflow does once the task is recorded
            else:
                assert isinstance(command, Wait)
                wake = command.until
                if self.events and (wake is None or self.events[0][0] < wake):
                    when, happening = self.events.pop(0)
                    self.now = max(self.now, when)
                    command = self.tell(happening)
                elif wake is None or (until is not None and wake > until):
                    return command
                else:
                    self.now = max(self.now, wake)
                    command = self.tell(TimerFired())
        raise AssertionError("the engine did not settle")

    def sends(self) -> list[tuple[datetime, str, str, str | None]]:
        return [(t, c.step_id, c.channel, c.variant) for t, c in self.trace if isinstance(c, Send)]

    def tasks(self) -> list[tuple[datetime, str, str]]:
        return [(t, c.kind, c.queue) for t, c in self.trace if isinstance(c, CreateTask)]


NURTURE = """\
score:
  email.opened: 1
  email.clicked: 3
exit_on: [replied, purchased]
steps:
  - id: invite
    send: email
    message: invite
  - wait: 2d
  - id: reminder
    send: whatsapp
    message: reminder
    fallback: sms
    if: "not opened('invite')"
  - wait: 1d
    until: "clicked('invite') or event('webinar.registered')"
  - id: last
    send: sms
    message: last
"""


# -- send and wait ---------------------------------------------------------------------------------------
def test_sends_and_waits_at_the_right_virtual_times() -> None:
    driver = Driver(cadence(NURTURE))
    assert driver.run() == Finish("completed", "all steps done")
    assert driver.sends() == [
        (T0, "invite", "email", None),
        (T0 + timedelta(days=2), "reminder", "whatsapp", None),
        (T0 + timedelta(days=3), "last", "sms", None),
    ]
    waits = [(t, c) for t, c in driver.trace if isinstance(c, Wait) and c.until is not None]
    assert waits == [
        (T0, Wait(T0 + timedelta(days=2), "wait")),
        (T0 + timedelta(days=2), Wait(T0 + timedelta(days=3), "until")),
    ]
    reminder = driver.trace[[c for _, c in driver.trace].index(Send("reminder", "whatsapp", "reminder", None, "sms"))]
    assert reminder[1].fallback == "sms"
    assert driver.state.sent == {"invite": "email", "reminder": "whatsapp", "last": "sms"}


def test_wait_until_ends_early_on_its_event() -> None:
    registered = T0 + timedelta(days=2, hours=5)
    driver = Driver(cadence(NURTURE)).at(registered, EventArrived("webinar.registered", event_id="e1"))
    driver.run()
    assert driver.sends()[-1] == (registered, "last", "sms", None)


def test_wait_until_times_out_and_other_events_do_not_end_it() -> None:
    driver = Driver(cadence(NURTURE))
    driver.at(T0 + timedelta(days=2, hours=1), EventArrived("email.opened", step_id="invite", event_id="e1"))
    driver.at(T0 + timedelta(days=2, hours=2), EventArrived("webinar.attended", event_id="e2"))
    driver.run()
    assert driver.sends()[-1] == (T0 + timedelta(days=3), "last", "sms", None)
    woken = [c for t, c in driver.trace if T0 + timedelta(days=2) < t < T0 + timedelta(days=3)]
    assert woken == [Wait(T0 + timedelta(days=3), "until")] * 2  # woken twice, same deadline both times


def test_a_click_on_the_step_named_ends_the_wait() -> None:
    clicked = T0 + timedelta(days=2, hours=3)
    driver = Driver(cadence(NURTURE)).at(clicked, EventArrived("email.clicked", step_id="invite", event_id="e1"))
    driver.run()
    assert driver.sends()[-1] == (clicked, "last", "sms", None)
    assert driver.state.score == 3


def test_wait_until_already_true_does_not_wait() -> None:
    driver = Driver(cadence(NURTURE)).at(T0 + timedelta(hours=1), EventArrived("webinar.registered"))
    driver.run()
    assert [s[0] for s in driver.sends()] == [T0, T0 + timedelta(days=2), T0 + timedelta(days=2)]


# -- if ------------------------------------------------------------------------------------------------
def test_if_skips_a_step_whose_condition_is_false_when_it_is_reached() -> None:
    opened = T0 + timedelta(hours=4)
    driver = Driver(cadence(NURTURE)).at(opened, EventArrived("email.opened", step_id="invite", event_id="e1"))
    driver.run()
    assert [s[1] for s in driver.sends()] == ["invite", "last"]
    assert driver.state.skipped == {"reminder": "condition_false"}


def test_if_on_a_wait_and_a_call_step() -> None:
    flow = cadence(
        """\
        steps:
          - wait: 1d
            if: "score > 0"
          - id: ring
            call: telemarketing
            script: qualify
            if: "score >= 3"
          - id: done
            send: sms
            message: done
        """
    )
    driver = Driver(flow)
    driver.run()
    assert driver.sends() == [(T0, "done", "sms", None)]
    assert driver.state.skipped == {"wait-1": "condition_false", "ring": "condition_false"}
    assert driver.tasks() == []


# -- A/B variants ----------------------------------------------------------------------------------------
AB = """\
steps:
  - id: invite
    send: email
    message: invite
    variants: {a: 50, b: 50}
"""


def test_the_same_contact_always_gets_the_same_variant() -> None:
    first = Driver(cadence(AB))
    first.run()
    again = Driver(cadence(AB))
    again.run()
    assert first.sends()[0][3] == again.sends()[0][3] == first.state.variants["invite"]
    assert assign_variant({"a": 50, "b": 50}, "test", "invite", "contact-jkt") == first.state.variants["invite"]


def test_variants_split_contacts_by_weight() -> None:
    ids = [f"contact-{n}" for n in range(10_000)]
    even = [assign_variant({"a": 50, "b": 50}, "webinar", "invite", c) for c in ids]
    assert 4_800 <= even.count("a") <= 5_200  # 4 standard deviations of a fair coin
    skewed = [assign_variant({"a": 70, "b": 30, "off": 0}, "webinar", "invite", c) for c in ids]
    assert 6_800 <= skewed.count("a") <= 7_200
    assert "off" not in skewed
    other_step = [assign_variant({"a": 50, "b": 50}, "webinar", "reminder", c) for c in ids]
    agree = sum(x == y for x, y in zip(even, other_step, strict=True))
    assert 4_800 <= agree <= 5_200  # steps are split independently


def test_variant_assignment_does_not_depend_on_the_order_weights_are_written() -> None:
    for contact in ("a1", "b2", "c3", "d4"):
        assert assign_variant({"a": 30, "b": 70}, "c", "s", contact) == assign_variant(
            {"b": 70, "a": 30}, "c", "s", contact
        )


# -- exit_on ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("event", "ends"),
    [
        ("email.replied", True),  # the event kind matches `replied`
        ("sms.replied", True),
        ("replied", True),
        ("purchased", True),  # a custom name
        ("email.opened", False),
        ("purchased.refunded", False),
    ],
)
def test_exit_on_by_event_kind_or_custom_name(event: str, ends: bool) -> None:
    driver = Driver(cadence(NURTURE)).at(T0 + timedelta(hours=1), EventArrived(event, event_id="e1"))
    result = driver.run()
    if ends:
        assert result == Finish("exited", f"exit_on:{event}")
        assert [s[1] for s in driver.sends()] == ["invite"]
    else:
        assert result == Finish("completed", "all steps done")


def test_exit_on_a_channel_specific_name_ignores_other_channels() -> None:
    flow = cadence("exit_on: [email.replied]\nsteps:\n  - wait: 1d\n  - send: sms\n    message: x\n")
    assert Driver(flow).at(T0, EventArrived("sms.replied")).run() == Finish("completed", "all steps done")
    assert Driver(flow).at(T0, EventArrived("email.replied")).run() == Finish("exited", "exit_on:email.replied")


# -- windows in the contact's timezone ---------------------------------------------------------------------
WINDOWED = """\
window:
  days: [mon, tue, wed, thu, fri]
  hours: "09:00-17:00"
  skip_holidays: {holidays}
steps:
  - id: hello
    send: sms
    message: hello
"""


@pytest.mark.parametrize(
    ("contact", "now", "opening", "holidays"),
    [
        # Friday 18:00 WIB -> Monday 09:00 WIB (UTC+7, no DST)
        (JAKARTA, utc(2026, 3, 6, 11, 0), utc(2026, 3, 9, 2, 0), "false"),
        # Friday 18:00 EST -> Monday 09:00 EDT: DST began on Sunday 8 March, so 13:00 UTC, not 14:00
        (NEW_YORK, utc(2026, 3, 6, 23, 0), utc(2026, 3, 9, 13, 0), "false"),
        # Saturday 10:00 EDT -> Monday 09:00 EST after DST ended on 1 November: 14:00 UTC
        (NEW_YORK, utc(2026, 10, 31, 14, 0), utc(2026, 11, 2, 14, 0), "false"),
        # Friday 14 August 18:00 WIB; Monday 17 August is Independence Day -> Tuesday 09:00 WIB
        (JAKARTA, utc(2026, 8, 14, 11, 0), utc(2026, 8, 18, 2, 0), "true"),
        (JAKARTA, utc(2026, 8, 14, 11, 0), utc(2026, 8, 17, 2, 0), "false"),
        # Thursday 2 July 18:00 EDT; Friday 3 July is Independence Day (observed) -> Monday 6 July 09:00 EDT
        (NEW_YORK, utc(2026, 7, 2, 22, 0), utc(2026, 7, 6, 13, 0), "true"),
        # Early Monday 06:00 WIB -> the same day at 09:00
        (JAKARTA, utc(2026, 3, 1, 23, 0), utc(2026, 3, 2, 2, 0), "false"),
    ],
)
def test_a_send_outside_the_window_waits_for_the_next_opening_in_the_contacts_timezone(
    contact: ContactProfile, now: datetime, opening: datetime, holidays: str
) -> None:
    driver = Driver(cadence(WINDOWED.format(holidays=holidays)), contact=contact, now=now)
    assert driver.tell(Started()) == Wait(opening, "outside_window")
    assert driver.tell(Started()) == Wait(opening, "deferred")  # an event or a spurious wake-up changes nothing
    assert driver.run() == Finish("completed", "all steps done")
    assert driver.sends() == [(opening, "hello", "sms", None)]


def test_inside_the_window_it_sends_at_once() -> None:
    driver = Driver(cadence(WINDOWED.format(holidays="true")), contact=NEW_YORK, now=utc(2026, 3, 10, 15, 0))
    driver.run()
    assert driver.sends() == [(utc(2026, 3, 10, 15, 0), "hello", "sms", None)]


def test_without_a_usable_timezone_the_engine_sends_and_lets_deliver_decide() -> None:
    nowhere = ContactProfile("contact-x", country="US", timezone=None)  # the US has many zones: no guess
    driver = Driver(cadence(WINDOWED.format(holidays="false")), contact=nowhere, now=utc(2026, 3, 7, 12, 0))
    assert driver.tell(Started()) == Send("hello", "sms", "hello", None, None)


# -- deferral reported by deliver -------------------------------------------------------------------------
def test_a_deferral_reported_by_deliver_waits_then_sends_the_same_step_again() -> None:
    later = T0 + timedelta(hours=20)
    reports = iter([("deferred", later), ("sent", None)])

    def deliver(command: Send, now: datetime) -> SendReported:
        outcome, until = next(reports)
        return SendReported(command.step_id, outcome, command.channel, until, "cap_per_day" if until else "")

    driver = Driver(cadence(AB), report=deliver)
    driver.run()
    commands = [(t, c) for t, c in driver.trace]
    first, second = [(t, c) for t, c in commands if isinstance(c, Send)]
    assert commands[1] == (T0, Wait(later, "deferred"))
    assert first == (T0, Send("invite", "email", "invite", first[1].variant, None))
    assert second == (later, first[1])  # same step, same variant, same attempt key
    assert driver.state.sent == {"invite": "email"} and driver.state.deferrals == 0


def test_a_deferred_send_checks_its_condition_again_when_it_would_go_out() -> None:
    flow = cadence("steps:\n  - id: hello\n    send: sms\n    message: x\n    if: not event('purchased')\n")
    later = T0 + timedelta(hours=3)

    def deliver(command: Send, now: datetime) -> SendReported:
        return SendReported("hello", "deferred", "sms", later, "cap") if now < later else sent(command, now)

    bought = Driver(flow, report=deliver).at(T0 + timedelta(hours=1), EventArrived("purchased"))
    assert bought.run() == Finish("completed", "all steps done")
    assert [s[0] for s in bought.sends()] == [T0]  # not sent again after the purchase
    assert bought.state.skipped == {"hello": "condition_false"} and bought.state.deferred_until is None
    still = Driver(flow, report=deliver).at(T0 + timedelta(hours=1), EventArrived("webinar.attended"))
    still.run()
    assert [s[0] for s in still.sends()] == [T0, later]


def test_a_send_deferred_too_often_is_skipped() -> None:
    def always_later(command: Send, now: datetime) -> SendReported:
        return SendReported(command.step_id, "deferred", until=now + timedelta(hours=1), reason="no_timezone")

    driver = Driver(cadence(NURTURE.replace("    fallback: sms\n", "")), report=always_later)
    driver.run(until=T0 + timedelta(days=4))
    assert len(driver.sends()) == MAX_DEFERRALS_PER_STEP + 1
    assert driver.state.skipped["invite"] == "deferred_too_long"
    assert driver.state.step_index == 1


def test_skipped_and_failed_sends_move_on_and_stale_reports_change_nothing() -> None:
    flow = cadence(NURTURE)
    state, command = advance(flow, JAKARTA, EnrollmentState(), Started(), T0)
    assert isinstance(command, Send)
    stale_state, stale = advance(flow, JAKARTA, state, SendReported("last", "sent", "sms"), T0)
    assert (stale_state, stale) == (state, Wait(None, "send_in_flight"))
    state, command = advance(flow, JAKARTA, state, SendReported("invite", "skipped", reason="no_consent"), T0)
    assert state.skipped == {"invite": "no_consent"} and command == Wait(T0 + timedelta(days=2), "wait")


# -- escalation, handoff and dispositions ----------------------------------------------------------------
ROUTED = """\
score:
  email.clicked: 3
  webinar.attended: 10
escalate:
  when: "score >= 5"
  queue: telemarketing
  script: qualify
  sla: 4h
handoff:
  when: "disposition in ['qualified', 'appointment_set']"
  queue: telesales
  script: close
  sla: 1h
steps:
  - id: invite
    send: email
    message: invite
  - wait: 3d
  - id: last
    send: sms
    message: last
"""


def test_escalation_opens_one_task_and_pauses_marketing_until_its_disposition() -> None:
    driver = Driver(cadence(ROUTED))
    driver.at(T0 + timedelta(hours=1), EventArrived("email.clicked", step_id="invite", event_id="e1"))
    driver.at(T0 + timedelta(hours=2), EventArrived("email.clicked", step_id="invite", event_id="e2"))
    driver.at(T0 + timedelta(hours=3), EventArrived("webinar.attended", event_id="e3"))
    command = driver.run()
    assert driver.tasks() == [(T0 + timedelta(hours=2), "escalate", "telemarketing")]
    assert command == Wait(None, "task_open")
    assert driver.state.score == 16
    escalated = next(c for _, c in driver.trace if isinstance(c, CreateTask))
    assert escalated == CreateTask("escalate", "escalate", "telemarketing", "qualify", 4 * 3600)
    # the wait of 3 days is over, but the agent owns the contact: nothing is sent
    driver.now = T0 + timedelta(days=4)
    assert driver.tell(TimerFired()) == Wait(None, "task_open")
    assert driver.tell(DispositionRecorded("no_answer")) == Send("last", "sms", "last", None, None)
    assert driver.state.attempts == 1


def test_qualified_hands_off_once() -> None:
    driver = Driver(cadence(ROUTED)).at(T0 + timedelta(hours=1), EventArrived("webinar.attended", event_id="e1"))
    driver.run()
    assert driver.tell(DispositionRecorded("qualified")) == CreateTask("handoff", "handoff", "telesales", "close", 3600)
    assert driver.tell(TimerFired()) == Wait(None, "task_open")
    next_command = driver.tell(DispositionRecorded("appointment_set"))
    assert not isinstance(next_command, CreateTask)  # handed off already
    assert [t[1] for t in driver.tasks()] == ["escalate", "handoff"]


@pytest.mark.parametrize(
    ("disposition", "finish"),
    [
        ("not_interested", Finish("exited", "not_interested")),
        ("do_not_call", Finish("exited", "do_not_call")),
        ("won", Finish("completed", "won")),
        ("lost", Finish("completed", "lost")),
    ],
)
def test_ending_dispositions(disposition: str, finish: Finish) -> None:
    driver = Driver(cadence(ROUTED)).at(T0 + timedelta(hours=1), EventArrived("webinar.attended", event_id="e1"))
    driver.run()
    assert driver.tell(DispositionRecorded(disposition)) == finish
    assert driver.state.status == finish.status


def test_callback_opens_a_new_task_at_the_agreed_time() -> None:
    driver = Driver(cadence(ROUTED)).at(T0 + timedelta(hours=1), EventArrived("webinar.attended", event_id="e1"))
    driver.run()
    callback_at = T0 + timedelta(days=1, hours=6)
    assert driver.tell(DispositionRecorded("callback", callback_at=callback_at)) == Wait(
        callback_at, "callback_scheduled"
    )
    driver.now = callback_at - timedelta(minutes=1)
    assert driver.tell(TimerFired()) == Wait(callback_at, "callback_scheduled")
    driver.now = callback_at
    assert driver.tell(TimerFired()) == CreateTask("callback", "escalate", "telemarketing", "qualify", 4 * 3600)
    assert driver.tell(TimerFired()) == Wait(None, "task_open")


def test_a_call_step_opens_a_task_and_continues_after_its_disposition() -> None:
    flow = cadence(
        "steps:\n  - id: ring\n    call: telemarketing\n    script: qualify\n  - id: after\n    send: sms\n"
        "    message: x\n"
    )
    driver = Driver(flow)
    assert driver.run() == Wait(None, "task_open")
    assert driver.tasks() == [(T0, "call", "telemarketing")]
    assert driver.tell(DispositionRecorded("voicemail")) == Send("after", "sms", "x", None, None)


# -- events, stop and purity -----------------------------------------------------------------------------
def test_the_same_event_delivered_twice_counts_once() -> None:
    flow = cadence(ROUTED)
    state, _ = advance(flow, JAKARTA, EnrollmentState(), Started(), T0)
    click = EventArrived("email.clicked", step_id="invite", event_id="sg-123")
    for _ in range(3):
        state, _ = advance(flow, JAKARTA, state, click, T0)
    assert state.score == 3 and not state.escalated
    state, _ = advance(flow, JAKARTA, state, EventArrived("email.clicked", "invite", event_id="sg-124"), T0)
    assert state.score == 6 and state.escalated


def test_stop_ends_the_enrollment() -> None:
    driver = Driver(cadence(NURTURE)).at(T0 + timedelta(hours=1), StopRequested("operator"))
    assert driver.run() == Finish("stopped", "operator")
    assert [s[1] for s in driver.sends()] == ["invite"]


HAPPENINGS: list[Happening] = [
    Started(),
    TimerFired(),
    EventArrived("email.clicked", step_id="invite", event_id="e9"),
    EventArrived("replied", event_id="e10"),
    SendReported("invite", "sent", "email"),
    SendReported("invite", "deferred", "email", T0 + timedelta(hours=1), "cap"),
    DispositionRecorded("qualified"),
    DispositionRecorded("callback", callback_at=T0 + timedelta(days=1)),
    DispositionRecorded("won"),
    StopRequested(),
]


@pytest.mark.parametrize("happening", HAPPENINGS, ids=[type(h).__name__ for h in HAPPENINGS])
def test_the_engine_never_mutates_its_input(happening: Happening) -> None:
    flow = cadence(ROUTED)
    state, _ = advance(flow, JAKARTA, EnrollmentState(), Started(), T0)
    state, _ = advance(flow, JAKARTA, state, EventArrived("webinar.attended", event_id="e1"), T0)
    state.in_flight = "invite"
    before, snapshot, contact = copy.deepcopy(state), flow.snapshot(), copy.deepcopy(JAKARTA)
    new_state, _ = advance(flow, JAKARTA, state, happening, T0 + timedelta(hours=2))
    assert state == before
    assert flow.snapshot() == snapshot and contact == JAKARTA
    assert new_state is not state
    again, command = advance(flow, JAKARTA, before, happening, T0 + timedelta(hours=2))
    assert again == advance(flow, JAKARTA, before, happening, T0 + timedelta(hours=2))[0]  # deterministic
    assert command == advance(flow, JAKARTA, before, happening, T0 + timedelta(hours=2))[1]
