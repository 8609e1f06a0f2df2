"""Our counters reach the Prometheus endpoint of the Temporal runtime: sends, deferrals and skips by reason,
opt-outs once committed (never when rolled back), SLA breaches by queue."""

from __future__ import annotations

import re
import socket
from datetime import UTC, datetime

import httpx
import pytest
from temporalio import activity
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.testing import ActivityEnvironment

from activities import metrics
from activities.task_types import BreachResult, SupervisorNotice, TaskRef
from activities.types import DeliverRequest, DeliverResult
from bench.world import add_contacts, open_store
from store.repos.consent import append_consent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def scrape():
    address = f"127.0.0.1:{_free_port()}"
    metrics.use(Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address))))

    def read(name: str, **labels: str) -> float:
        text = httpx.get(f"http://{address}/metrics", timeout=5).text
        total = 0.0
        for line in text.splitlines():
            match = re.match(rf"^{name}(?:_total)?\{{(.*)\}} ([0-9.e+]+)$", line)
            if match and all(f'{k}="{v}"' in match.group(1) for k, v in labels.items()):
                total += float(match.group(2))
        return total

    yield read
    metrics.use(None)


RESULTS = {
    "a": DeliverResult("sent", "allowed", channel="sms"),
    "b": DeliverResult("sent", "allowed", channel="sms"),
    "c": DeliverResult("sent", "already_sent", channel="sms"),  # a retry that found it sent: not a new send
    "d": DeliverResult("deferred", "outside_legal_hours", channel="sms"),
    "e": DeliverResult("skipped", "no_consent", channel="email"),
}


@activity.defn(name="deliver")
async def fake_deliver(request: DeliverRequest) -> DeliverResult:
    return RESULTS[request.step_id]


@activity.defn(name="call-task-sla-breach")
async def fake_breach(ref: TaskRef) -> BreachResult:
    breached = ref.task_id != "claimed-in-time"
    return BreachResult(breached, notice=SupervisorNotice(ref.task_id, "telesales") if breached else None)


def _request(step: str) -> DeliverRequest:
    return DeliverRequest("e1", f"e1/{step}/1", "c", "C", "marketing", "ct", step, "sms", "m", "en")


async def test_deliver_outcomes_are_counted_by_channel_and_reason(scrape):
    deliver, breach = metrics.instrument([fake_deliver, fake_breach])
    env = ActivityEnvironment()
    for step in RESULTS:
        assert await env.run(deliver, _request(step)) == RESULTS[step]  # what the activity returns is unchanged
    await env.run(breach, TaskRef("late-task"))
    await env.run(breach, TaskRef("claimed-in-time"))

    assert scrape("omnireach_sends", channel="sms") == 2
    assert scrape("omnireach_deferrals", reason="outside_legal_hours") == 1
    assert scrape("omnireach_skips", reason="no_consent") == 1
    assert scrape("omnireach_sla_breaches", queue="telesales") == 1


def test_opt_outs_count_when_committed_and_not_when_rolled_back(scrape, tmp_path):
    sessions = open_store(f"sqlite:///{tmp_path / 'metrics.db'}")
    metrics.watch_opt_outs()
    contact = add_contacts(sessions, 1)[0]

    def withdraw(session, purpose: str) -> None:
        append_consent(
            session,
            contact_id=contact,
            channel="sms",
            purpose=purpose,
            status="withdrawn",
            method="keyword",
            occurred_at=datetime.now(UTC),
        )

    with sessions.begin() as session:
        withdraw(session, "marketing")
        withdraw(session, "sales")
    with pytest.raises(RuntimeError), sessions.begin() as session:
        withdraw(session, "service")
        raise RuntimeError("the request failed after the flush: nothing is recorded")

    assert scrape("omnireach_opt_outs", channel="sms", method="keyword") == 2
    assert scrape("omnireach_opt_outs", purpose="service") == 0
