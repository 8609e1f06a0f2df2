"""The contact-cadence workflow on the time-skipping Temporal server: what is sent, when, and what is not."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import holidays
import pytest
from temporalio.testing import WorkflowEnvironment

from channels.base import OutgoingMessage, SendReceipt
from tests.workflows.harness import Harness
from workflows.contact_cadence import EventSignal

NURTURE = """
    id: t-nurture
    name: Test nurture
    purpose: marketing
    locale: en
    facts: {title: Tax 101}
    exit_on: [purchased]
    steps:
      - id: invite
        send: email
        message: invite
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
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTE = timedelta(minutes=1)


def close(actual: datetime | None, expected: datetime, tolerance: timedelta = MINUTE) -> bool:
    assert actual is not None
    return abs(actual - expected) <= tolerance


@pytest.fixture
async def harness(time_skipping_env: WorkflowEnvironment, tmp_path):
    h = Harness(time_skipping_env.client, tmp_path)
    async with h.worker:
        yield h


@pytest.fixture
async def calendar_harness(fresh_time_skipping_env: WorkflowEnvironment, tmp_path):
    """For tests whose expectations depend on the calendar: a server whose clock starts today."""
    h = Harness(fresh_time_skipping_env.client, tmp_path)
    async with h.worker:
        yield h


async def test_multi_day_cadence_sends_each_step_at_its_virtual_time(harness, time_skipping_env):
    cadence = harness.cadence(NURTURE)
    contact = harness.contact()
    t0 = await time_skipping_env.get_current_time()
    handle = await harness.start(cadence, contact)
    result = await handle.result()

    assert result.status == "completed"
    sent = harness.sent(contact)
    assert [(m.step_id, m.channel) for m in sent] == [("invite", "email"), ("reminder", "sms"), ("last", "sms")]
    assert close(sent[0].sent_at, t0)
    assert close(sent[1].sent_at, t0 + timedelta(days=2))
    assert close(sent[2].sent_at, t0 + timedelta(days=3))  # the 1d wait-until timed out
    assert "Tax 101" in sent[0].subject and "/u/" in sent[0].body  # rendered with facts and unsubscribe link
    assert [r["message_key"] for r in harness.console.records()] == [m.message_key for m in sent]


async def test_if_skips_and_wait_until_ends_early_on_its_event(harness, time_skipping_env):
    cadence = harness.cadence(NURTURE)
    contact = harness.contact()
    t0 = await time_skipping_env.get_current_time()
    handle = await harness.start(cadence, contact)
    await time_skipping_env.sleep(timedelta(hours=1))
    await handle.signal("event", EventSignal("email.opened", "invite", "evt-open-1"))
    await time_skipping_env.sleep(timedelta(days=2, hours=1))
    await handle.signal("event", EventSignal("email.clicked", "invite", "evt-click-1"))
    result = await handle.result()

    sent = harness.sent(contact)
    assert [m.step_id for m in sent] == ["invite", "last"]
    assert close(sent[1].sent_at, t0 + timedelta(days=2, hours=2), tolerance=timedelta(minutes=10))
    assert result.skipped == {"reminder": "condition_false"}
    skip = [d for d in harness.decisions(contact) if d.step_id == "reminder"]
    assert [(d.decision, d.reason) for d in skip] == [("skipped", "condition_false")]


async def test_exit_on_event_ends_the_enrollment(harness, time_skipping_env):
    cadence = harness.cadence(NURTURE)
    contact = harness.contact()
    handle = await harness.start(cadence, contact)
    await time_skipping_env.sleep(timedelta(days=1))
    await handle.signal("event", EventSignal("purchased", None, "order-77"))
    result = await handle.result()

    assert (result.status, result.reason) == ("exited", "exit_on:purchased")
    assert [m.step_id for m in harness.sent(contact)] == ["invite"]


def _windowed(days: list[str], hours: str, *, skip_holidays: bool = False, wait: str | None = None) -> str:
    wait_step = f"\n      - wait: {wait}" if wait else ""
    return f"""
    id: t-window
    name: Window test
    purpose: marketing
    facts: {{title: Tax 101}}
    window: {{days: [{", ".join(days)}], hours: "{hours}", skip_holidays: {str(skip_holidays).lower()}}}
    steps:{wait_step}
      - id: invite
        send: email
        message: invite
"""


async def test_send_outside_window_waits_for_the_opening_in_jakarta(harness, time_skipping_env):
    jakarta = ZoneInfo("Asia/Jakarta")
    t0 = await time_skipping_env.get_current_time()
    target_day = t0.astimezone(jakarta).date() + timedelta(days=3)
    cadence = harness.cadence(_windowed([WEEKDAYS[target_day.weekday()]], "10:00-11:00"))
    contact = harness.contact(timezone="Asia/Jakarta")
    await (await harness.start(cadence, contact)).result()

    [message] = harness.sent(contact)
    expected = datetime.combine(target_day, time(10, 0), tzinfo=jakarta)
    assert close(message.sent_at, expected, tolerance=timedelta(seconds=5))
    deferred = [d for d in harness.decisions(contact) if d.decision == "deferred"]
    assert deferred == []  # the engine waited for the window itself; the activity found it open


def _next_dst_change(zone: ZoneInfo, start: datetime) -> datetime:
    day = start
    offset = start.astimezone(zone).utcoffset()
    while day.astimezone(zone).utcoffset() == offset:
        day += timedelta(days=1)
    return day


async def test_window_follows_new_york_local_time_across_a_dst_change(calendar_harness, fresh_time_skipping_env):
    new_york = ZoneInfo("America/New_York")
    t0 = await fresh_time_skipping_env.get_current_time()
    weeks = (_next_dst_change(new_york, t0) - t0).days // 7 + 2
    cadence = calendar_harness.cadence(f"""
    id: t-dst
    name: DST test
    purpose: marketing
    facts: {{title: Tax 101}}
    window: {{hours: "09:00-10:00"}}
    steps:
      - id: invite
        send: email
        message: invite
      - wait: {weeks}w
      - id: reminder
        send: email
        message: reminder
    """)
    contact = calendar_harness.contact(timezone="America/New_York", country="US")
    await (await calendar_harness.start(cadence, contact)).result()

    first, second = calendar_harness.sent(contact)
    for message in (first, second):
        local = message.sent_at.astimezone(new_york)
        assert time(9, 0) <= local.time() < time(10, 0), local
    assert first.sent_at.astimezone(new_york).utcoffset() != second.sent_at.astimezone(new_york).utcoffset()
    opening = datetime.combine(second.sent_at.astimezone(new_york).date(), time(9, 0), tzinfo=new_york)
    assert close(second.sent_at, opening, tolerance=timedelta(seconds=1))  # deferred to 09:00 in the new offset


async def test_public_holiday_is_skipped_when_the_window_says_so(calendar_harness, fresh_time_skipping_env):
    jakarta = ZoneInfo("Asia/Jakarta")
    t0 = await fresh_time_skipping_env.get_current_time()
    today = t0.astimezone(jakarta).date()
    calendar = holidays.country_holidays("ID", years=[today.year, today.year + 1, today.year + 2])
    holiday = min(d for d in calendar if d > today + timedelta(days=1) and d.weekday() < 5)
    expected_day = holiday + timedelta(days=7)
    while expected_day in calendar:
        expected_day += timedelta(days=7)
    days_before = (holiday - today).days - 1
    cadence = calendar_harness.cadence(
        _windowed([WEEKDAYS[holiday.weekday()]], "09:00-17:00", skip_holidays=True, wait=f"{days_before}d")
    )
    contact = calendar_harness.contact(timezone="Asia/Jakarta")
    await (await calendar_harness.start(cadence, contact)).result()

    [message] = calendar_harness.sent(contact)
    expected = datetime.combine(expected_day, time(9, 0), tzinfo=jakarta)
    assert close(message.sent_at, expected, tolerance=timedelta(seconds=1)), (holiday, message.sent_at)


async def test_no_consent_means_skipped_with_the_reason_recorded(harness):
    cadence = harness.cadence(NURTURE)
    contact = harness.contact(consents=(("email", "marketing"),))  # no SMS consent
    result = await (await harness.start(cadence, contact)).result()

    assert [m.step_id for m in harness.sent(contact)] == ["invite"]
    assert result.skipped == {"reminder": "no_consent", "last": "no_consent"}
    reasons = {(d.step_id, d.decision, d.reason) for d in harness.decisions(contact)}
    assert ("reminder", "skipped", "no_consent") in reasons and ("last", "skipped", "no_consent") in reasons


async def test_consent_withdrawn_after_the_send_was_scheduled_is_honoured(harness, time_skipping_env):
    cadence = harness.cadence("""
    id: t-withdraw
    name: Withdrawal test
    purpose: marketing
    facts: {title: Tax 101}
    steps:
      - wait: 1d
      - id: reminder
        send: sms
        message: reminder
    """)
    contact = harness.contact()
    handle = await harness.start(cadence, contact)
    await time_skipping_env.sleep(timedelta(hours=3))
    now = await time_skipping_env.get_current_time()
    with harness.sessions.begin() as session:
        harness.grant(session, contact, "sms", "marketing", status="withdrawn", at=now)
    result = await handle.result()

    assert harness.sent(contact) == []
    assert harness.console.records() == []
    assert result.skipped == {"reminder": "consent_withdrawn"}


class CrashAfterProviderAccepts:
    """The provider takes the message, then the worker 'dies' before recording it: the classic double send."""

    name = "console"

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        self.calls += 1
        receipt = await self.inner.send(message)
        if self.calls == 1:
            raise RuntimeError("worker lost after the provider accepted the message")
        return receipt

    async def lookup(self, message_key: str) -> SendReceipt | None:
        return await self.inner.lookup(message_key)


async def test_retry_after_the_channel_call_sends_exactly_once(time_skipping_env, tmp_path):
    harness = Harness(time_skipping_env.client, tmp_path, channel_wrapper=CrashAfterProviderAccepts)
    cadence = harness.cadence(
        NURTURE.replace("exit_on: [purchased]", "exit_on: [purchased]").split("      - wait: 2d")[0]
    )
    contact = harness.contact()
    async with harness.worker:
        result = await (await harness.start(cadence, contact)).result()

    assert result.status == "completed"
    assert len(harness.console.records()) == 1
    [row] = harness.sent(contact)
    assert row.status == "sent" and row.provider == "console"
