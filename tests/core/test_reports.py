"""Reports against a scripted scenario whose numbers are worked out by hand below.

Scenario (t0 = Mon 2026-01-05 09:00 UTC, report "now" = t0 + 4d 12h). Cadence c1 has an A/B email step
`invite` and an SMS step `reminder`; cadence c2 has one email step. Costs: email 0.01, SMS 0.05 per
segment, call minute 0.10, agent hour 30.

| enrollment | messages                               | events / milestones                                          |
|------------|----------------------------------------|--------------------------------------------------------------|
| E1 (K1,c1) | invite a clicked; reminder 2 segments  | email.opened; MQL +1d; call +1d2h qualified (300s talk,      |
|            | delivered (+2d)                        | 600s handled); SQL +1d2h; call +1d5h telesales won (600/900);|
|            |                                        | won 1000 at +1d5h                                            |
| E2 (K2,c1) | invite a delivered; reminder sent (+2d)| sms.replied at +2d1h (no enrollment, no step); MQL +3d       |
| E3 (K3,c1) | invite b opened                        | webinar.attended +1d (no enrollment); MQL +2d; SLA breach +3d|
|            |                                        | call +3d1h no_answer (0/120); call +3d5h not_interested      |
|            |                                        | (120/240)                                                    |
| E4 (K4,c1) | invite b bounced                       | email.bounced; MQL +4d (still within its 24h SLA at "now")   |
| E5 (K5,c1) | invite b failed (never sent)           | lost +5d                                                     |
| E6 (K6,c1) | none; ended at +10d                    | webinar.attended at +20d (after it ended: not attributed)    |
| E7 (K1,c2) | invite-x sent                          | K1's "purchased" at +1d has no enrollment: E1 and E7 both    |
|            |                                        | running then, so both get it                                 |
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from core.reports import (
    Costs,
    EnrollmentFact,
    EventFact,
    MessageFact,
    MilestoneFact,
    ReportData,
    funnel,
    sla,
    steps,
    two_proportion_z,
)

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
D, H = timedelta(days=1), timedelta(hours=1)
NOW = T0 + 4 * D + 12 * H
COSTS = Costs(currency="USD", per_message={"email": 0.01, "sms": 0.05}, per_call_minute=0.10, per_agent_hour=30.0)
TM, TS = "telemarketing", "telesales"


def e(n: int, cadence: str = "c1", contact: int | None = None, ended: datetime | None = None) -> EnrollmentFact:
    k = contact or n
    return EnrollmentFact(f"cadence:{cadence}:K{k}", cadence, f"K{k}", T0, ended)


def msg(enr: str, step: str, channel: str, status: str, at: datetime | None, variant=None, segments=None):
    return MessageFact(enr, step, channel, status, at, variant, segments, f"{enr}/{step}/1")


def ms(kind: str, enr: str, at: datetime, **payload) -> MilestoneFact:
    return MilestoneFact(kind, at, enrollment_id=enr, payload=payload)


E1, E2, E3, E4, E5, E6 = (f"cadence:c1:K{i}" for i in range(1, 7))
E7 = "cadence:c2:K1"

SCENARIO = ReportData(
    enrollments=[e(1), e(2), e(3), e(4), e(5), e(6, ended=T0 + 10 * D), e(7, "c2", contact=1)],
    messages=[
        msg(E1, "invite", "email", "clicked", T0, "a"),
        msg(E2, "invite", "email", "delivered", T0, "a"),
        msg(E3, "invite", "email", "opened", T0, "b"),
        msg(E4, "invite", "email", "bounced", T0, "b"),
        msg(E5, "invite", "email", "failed", None, "b"),
        msg(E1, "reminder", "sms", "delivered", T0 + 2 * D, segments=2),
        msg(E2, "reminder", "sms", "sent", T0 + 2 * D, segments=1),
        msg(E7, "invite-x", "email", "sent", T0),
    ],
    events=[
        EventFact("K2", "sms.replied", T0 + 2 * D + H),
        EventFact("K3", "webinar.attended", T0 + D),
        EventFact("K4", "email.bounced", T0 + H, enrollment_id=E4, step_id="invite"),
        EventFact("K1", "email.opened", T0 + H, enrollment_id=E1, step_id="invite"),
        EventFact("K6", "webinar.attended", T0 + 20 * D),
        EventFact("K1", "purchased", T0 + D),
    ],
    milestones=[
        ms("mql.created", E1, T0 + D, queue=TM, sla_seconds=86400),
        ms(
            "task.disposed", E1, T0 + D + 2 * H, queue=TM, disposition="qualified", talk_seconds=300, handle_seconds=600
        ),
        ms("sql.handed_off", E1, T0 + D + 2 * H, queue=TS, sla_seconds=14400),
        ms("task.disposed", E1, T0 + D + 5 * H, queue=TS, disposition="won", talk_seconds=600, handle_seconds=900),
        ms("deal.won", E1, T0 + D + 5 * H, amount=1000, currency="USD"),
        ms("mql.created", E2, T0 + 3 * D, queue=TM, sla_seconds=86400),
        ms("mql.created", E3, T0 + 2 * D, queue=TM, sla_seconds=86400),
        ms("sla.breached", E3, T0 + 3 * D, queue=TM),
        ms("task.disposed", E3, T0 + 3 * D + H, queue=TM, disposition="no_answer", talk_seconds=0, handle_seconds=120),
        ms(
            "task.disposed",
            E3,
            T0 + 3 * D + 5 * H,
            queue=TM,
            disposition="not_interested",
            talk_seconds=120,
            handle_seconds=240,
        ),
        ms("mql.created", E4, T0 + 4 * D, queue=TM, sla_seconds=86400),
        MilestoneFact("deal.lost", T0 + 5 * D, contact_id="K5", cadence_id="c1", payload={"reason": "price"}),
        ms("mql.created", "cadence:c9:K1", T0, queue=TM),  # an enrollment outside the report: ignored
    ],
)


def test_funnel_per_cadence_matches_the_hand_count() -> None:
    c1, c2 = funnel(SCENARIO, COSTS)
    assert (c1.cadence_id, c1.enrolled, c1.contacted, c1.engaged) == ("c1", 6, 4, 3)  # E5 never sent, E6 idle
    assert (c1.mql, c1.connected, c1.sql, c1.won, c1.lost) == (4, 2, 1, 1, 1)  # E3's no_answer is not a connect
    assert c1.revenue == 1000
    # messages: 4 emails x 0.01 + SMS (2 + 1 segments) x 0.05 = 0.04 + 0.15
    assert c1.cost_messages == pytest.approx(0.19)
    # calls: (300 + 600 + 0 + 120) s = 17 min x 0.10
    assert c1.cost_calls == pytest.approx(1.70)
    # agents: (600 + 900 + 120 + 240) s = 1860 s = 0.51667 h x 30
    assert c1.cost_agents == pytest.approx(15.50)
    assert c1.cost == pytest.approx(17.39)
    assert c1.cost_per_lead == pytest.approx(17.39 / 4)
    assert c1.cac == pytest.approx(17.39)
    assert (c1.response_rate, c1.mql_to_sql, c1.call_to_sale) == (0.75, 0.25, 0.5)
    assert c1.median_days_to_close == pytest.approx(29 / 24)  # won 1 day 5 hours after enrolling
    assert c1.mean_days_to_close == pytest.approx(29 / 24)

    assert (c2.cadence_id, c2.enrolled, c2.contacted, c2.engaged, c2.mql) == ("c2", 1, 1, 1, 0)
    assert c2.cost == pytest.approx(0.01) and c2.cost_per_lead is None and c2.cac is None
    assert c2.response_rate == 1.0 and c2.median_days_to_close is None


def test_steps_and_variants_match_the_hand_count() -> None:
    rows = {(r.cadence_id, r.step_id, r.variant): r for r in steps(SCENARIO)}
    a, b = rows[("c1", "invite", "a")], rows[("c1", "invite", "b")]
    assert (a.sent, a.delivered, a.opened, a.clicked, a.replied, a.bounced) == (2, 2, 1, 1, 0, 0)
    assert (b.sent, b.delivered, b.opened, b.clicked, b.replied, b.bounced) == (2, 1, 1, 0, 0, 1)  # E5 failed
    assert (a.conversions, b.conversions) == (2, 2)  # all four reached MQL after the invite
    assert b.control == "a" and b.z == 0 and b.p_value == 1 and b.significant is False
    assert a.control is None and a.z is None  # the control is not compared with itself

    reminder = rows[("c1", "reminder", None)]
    # E2's reply has no step: it goes to E2's latest message before it, the reminder
    assert (reminder.sent, reminder.delivered, reminder.replied, reminder.channel) == (2, 1, 1, "sms")
    assert reminder.conversions == 1  # E1 was an MQL before the reminder went out; E2 after
    assert reminder.conversion_rate == 0.5 and reminder.z is None

    assert rows[("c2", "invite-x", None)].sent == 1
    won = {(r.step_id, r.variant): r.conversions for r in steps(SCENARIO, goal="won") if r.cadence_id == "c1"}
    assert won == {("invite", "a"): 1, ("invite", "b"): 0, ("reminder", None): 0}  # E1 won before the reminder
    with pytest.raises(ValueError, match="goal must be one of"):
        steps(SCENARIO, goal="vibes")


def test_sla_matches_the_hand_count() -> None:
    mql, sql = sla(SCENARIO, NOW)
    # E1 called 2h after its MQL (within 24h); E3 breached (called after 25h, breach recorded);
    # E2 never called and its deadline (+4d) has passed; E4's deadline (+5d) is still ahead.
    assert (mql.stage, mql.queue, mql.tasks, mql.within_sla, mql.breached, mql.pending) == ("mql", TM, 4, 1, 2, 1)
    assert mql.share_within_sla == pytest.approx(1 / 3)
    assert mql.median_seconds_to_first_call == (2 * 3600 + 25 * 3600) / 2
    assert (sql.stage, sql.queue, sql.tasks, sql.within_sla, sql.share_within_sla) == ("sql", TS, 1, 1, 1.0)
    assert sql.median_seconds_to_first_call == 3 * 3600  # the telemarketing call at +1d2h does not count


def test_two_proportion_z_test_by_hand() -> None:
    # a: 20/200 = 0.10, b: 40/200 = 0.20; pooled 0.15; se = sqrt(0.15 * 0.85 * (1/200 + 1/200)) = 0.035707
    z, p = two_proportion_z(20, 200, 40, 200)
    assert z == pytest.approx(0.1 / math.sqrt(0.15 * 0.85 * 0.01))
    assert z == pytest.approx(2.8006, abs=1e-4)
    assert p == pytest.approx(0.00510, abs=1e-4)
    assert two_proportion_z(0, 0, 1, 1) == (0.0, 1.0)


def ab_data(clicks_a: int, clicks_b: int, n: int = 200) -> ReportData:
    enrollments, messages = [], []
    for variant, clicks in (("a", clicks_a), ("b", clicks_b)):
        for i in range(n):
            enr = EnrollmentFact(f"cadence:ab:{variant}{i}", "ab", f"{variant}{i}", T0)
            enrollments.append(enr)
            messages.append(
                MessageFact(enr.id, "hello", "email", "clicked" if i < clicks else "delivered", T0, variant)
            )
    return ReportData(enrollments, messages)


def test_ab_significance_through_the_steps_report() -> None:
    rows = {r.variant: r for r in steps(ab_data(20, 40), goal="clicked")}
    assert (rows["a"].conversions, rows["b"].conversions, rows["b"].control) == (20, 40, "a")
    assert rows["b"].p_value == pytest.approx(0.00510, abs=1e-4) and rows["b"].significant is True
    # 20/200 vs 24/200: z = 0.02 / sqrt(0.11 * 0.89 * 0.01) = 0.6392, p = 0.5227: not significant
    near = {r.variant: r for r in steps(ab_data(20, 24), goal="clicked")}
    assert near["b"].z == pytest.approx(0.6392, abs=1e-4) and near["b"].p_value == pytest.approx(0.5227, abs=1e-4)
    assert near["b"].significant is False


def test_an_opened_or_clicked_message_is_engagement_without_any_event() -> None:
    enrollment = EnrollmentFact("cadence:x:K1", "x", "K1", T0)
    for status, engaged in (("clicked", 1), ("opened", 1), ("delivered", 0)):
        data = ReportData([enrollment], [MessageFact(enrollment.id, "s", "email", status, T0)])
        assert funnel(data, COSTS)[0].engaged == engaged, status
