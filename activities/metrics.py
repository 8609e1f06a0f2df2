"""Our own counters, on the same Prometheus endpoint as the Temporal SDK's metrics (docs/runbook.md).

| counter | labels | counted when |
|---|---|---|
| ``omnireach_sends`` | channel | the ``deliver`` activity handed a message to a provider |
| ``omnireach_deferrals`` | reason | a send was postponed (outside the window or legal hours, caps, pacing...) |
| ``omnireach_skips`` | reason | a send was not made (no consent, suppressed, no address...) |
| ``omnireach_opt_outs`` | channel, purpose, method | a consent withdrawal was committed, in any process |
| ``omnireach_sla_breaches`` | queue | a call task passed its SLA unclaimed |

``serve(address)`` starts the endpoint (the Temporal runtime's Prometheus exporter, made the process's
default runtime so clients created afterwards report there too) and starts counting opt-outs.
``instrument(activities)`` wraps the ``deliver`` and ``call-task-sla-breach`` activities; it changes
nothing they do or return. Without ``serve`` the counters go to a runtime nobody reads (no cost worth
mentioning).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.common import MetricCounter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from activities.task_types import BreachResult, TaskRef
from activities.types import DeliverRequest, DeliverResult

log = logging.getLogger("omnireach.metrics")
COUNTERS = {
    "omnireach_sends": "Messages handed to a provider, by channel",
    "omnireach_deferrals": "Sends postponed, by reason",
    "omnireach_skips": "Sends not made, by reason",
    "omnireach_opt_outs": "Consent withdrawals committed, by channel, purpose and method",
    "omnireach_sla_breaches": "Call tasks that passed their SLA unclaimed, by queue",
}
_PENDING = "omnireach_opt_outs"  # session.info key: withdrawals flushed, not yet committed
_state: dict[str, Any] = {"runtime": None, "counters": {}, "watching": False}


def serve(address: str) -> Runtime:
    """Expose Prometheus metrics on ``address`` (host:port) for this process; call before any Temporal client."""
    runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=address)))
    Runtime.set_default(runtime, error_if_already_set=False)
    use(runtime)
    watch_opt_outs()
    log.info("event=metrics_serving address=%s", address)
    return runtime


def use(runtime: Runtime | None) -> None:
    """Report to ``runtime`` (None: the process's default runtime)."""
    _state["runtime"], _state["counters"] = runtime, {}


def counter(name: str) -> MetricCounter:
    counters: dict[str, MetricCounter] = _state["counters"]
    if name not in counters:
        runtime = _state["runtime"] or Runtime.default()
        counters[name] = runtime.metric_meter.create_counter(name, COUNTERS[name])
    return counters[name]


# -- activities ------------------------------------------------------------------------------------------------
def instrument(activities: list[Callable]) -> list[Callable]:
    """The same activities, ``deliver`` and ``call-task-sla-breach`` counting what they did."""
    wrapped = []
    for fn in activities:
        name = getattr(getattr(fn, "__temporal_activity_definition", None), "name", None)
        if name == "deliver":
            fn = _counted_deliver(fn)
        elif name == "call-task-sla-breach":
            fn = _counted_breach(fn)
        wrapped.append(fn)
    return wrapped


def count_delivery(result: DeliverResult) -> None:
    if result.outcome == "sent" and result.reason != "already_sent":
        counter("omnireach_sends").add(1, {"channel": result.channel or "unknown"})
    elif result.outcome == "deferred":
        counter("omnireach_deferrals").add(1, {"reason": result.reason or "unknown"})
    elif result.outcome == "skipped":
        counter("omnireach_skips").add(1, {"reason": result.reason or "unknown"})


def _counted_deliver(inner: Callable) -> Callable:
    @activity.defn(name="deliver")
    async def deliver(request: DeliverRequest) -> DeliverResult:
        result = await inner(request)
        count_delivery(result)
        return result

    return deliver


def _counted_breach(inner: Callable) -> Callable:
    owner = getattr(inner, "__self__", None)

    @activity.defn(name="call-task-sla-breach")
    async def sla_breach(ref: TaskRef) -> BreachResult:
        result = await inner(ref)
        if result.breached:
            queue = result.notice.queue if result.notice else _queue_of(owner, ref.task_id)
            counter("omnireach_sla_breaches").add(1, {"queue": queue})
        return result

    return sla_breach


def _queue_of(owner: Any, task_id: str) -> str:
    from store.task_models import CallTask

    sessions = getattr(owner, "sessions", None)
    if sessions is None:
        return "unknown"
    with sessions() as session:
        task = session.get(CallTask, task_id)
        return task.queue if task is not None else "unknown"


# -- opt-outs, wherever they are recorded (API webhooks, unsubscribe page, activities) ---------------------------
def watch_opt_outs() -> None:
    """Count consent withdrawals when their transaction commits (not when it rolls back)."""
    if _state["watching"]:
        return
    event.listen(Session, "after_flush", _collect_withdrawals)
    event.listen(Session, "after_commit", _count_withdrawals)
    event.listen(Session, "after_rollback", _forget_withdrawals)
    _state["watching"] = True


def _collect_withdrawals(session: Session, _context: Any) -> None:
    from store.models import ConsentRecord

    for obj in session.new:
        if isinstance(obj, ConsentRecord) and obj.status == "withdrawn":
            session.info.setdefault(_PENDING, []).append((obj.channel, obj.purpose, obj.method or "unknown"))


def _count_withdrawals(session: Session) -> None:
    if session.in_nested_transaction():  # a SAVEPOINT released: the outer transaction may still roll back
        return
    for channel, purpose, method in session.info.pop(_PENDING, []):
        counter("omnireach_opt_outs").add(1, {"channel": channel, "purpose": purpose, "method": method})


def _forget_withdrawals(session: Session) -> None:
    session.info.pop(_PENDING, None)
