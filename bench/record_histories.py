"""Record workflow histories for the replay tests (tests/workflows/test_replay.py).

    .venv/bin/python -m bench.record_histories            # every scenario, into tests/workflows/histories/
    .venv/bin/python -m bench.record_histories --only demo  # scenarios whose name contains "demo"

Each scenario runs the example cadences (cadences/*.yaml with templates/) on the time-skipping Temporal
server with the product's worker (worker.py), a SQLite store and the console channel, then saves
``await handle.fetch_history()`` as JSON (``history.to_json()``). index.json maps each file to its
workflow id and type and counts its events.

Re-run it after every change to a workflow, once the change is behind ``workflow.patched()`` and the
replay tests pass against the OLD histories (docs/determinism.md): commit the new files beside the old
ones when the old runs may still be in flight, so both code paths stay covered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from temporalio import activity
from temporalio.client import Client, WorkflowHandle, WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.types import WebhookDeliveryRequest
from bench.long_cadence import long_cadence
from bench.world import (
    WorkerParts,
    add_contacts,
    console_channel,
    open_store,
    product_worker,
    repo_library,
    virtual_clock,
)
from core.settings import Settings
from workflows.contact_cadence import (
    WORKFLOW_TYPE,
    DispositionSignal,
    EnrollmentInput,
    EnrollmentResult,
    EventSignal,
    StopSignal,
    enrollment_id,
)

HISTORIES = Path(__file__).resolve().parent.parent / "tests" / "workflows" / "histories"
BIN = Path(sys.executable).parent
SCENARIO_TIMEOUT = 120  # seconds of wall time; a scenario stuck on a failing activity must not hang


@dataclass
class Context:
    env: WorkflowEnvironment
    parts: WorkerParts
    task_queue: str

    @property
    def client(self) -> Client:
        return self.env.client

    def contact(self) -> str:
        return add_contacts(self.parts.sessions, 1)[0]

    async def enroll(self, cadence_id: str) -> WorkflowHandle:
        cadence = self.parts.library.get(cadence_id)
        contact = self.contact()
        return await self.client.start_workflow(
            WORKFLOW_TYPE,
            EnrollmentInput(cadence.snapshot(), contact),
            id=enrollment_id(cadence.id, contact),
            task_queue=self.task_queue,
            result_type=EnrollmentResult,
        )

    async def sleep(self, **delta: float) -> None:
        await self.env.sleep(timedelta(**delta))


Scenario = Callable[[Context], Awaitable[WorkflowHandle]]


async def demo_welcome(ctx: Context) -> WorkflowHandle:
    """The demo series end to end: email, WhatsApp (approved template), SMS check-in."""
    handle = await ctx.enroll("demo-welcome")
    await _finished(handle, "completed")
    return handle


async def demo_welcome_escalated(ctx: Context) -> WorkflowHandle:
    """A custom event scores 10: escalation opens a call task; the agent's disposition ends the enrollment."""
    handle = await ctx.enroll("demo-welcome")
    await ctx.sleep(seconds=5)
    await handle.signal("event", EventSignal("demo.activated", None, "evt-activated-1"))
    await ctx.sleep(minutes=5)
    await handle.signal("disposition", DispositionSignal("not_interested"))
    await _finished(handle, "exited")
    return handle


async def flash_sale_won(ctx: Context) -> WorkflowHandle:
    """Opens, clicks and custom events (one delivered twice) escalate; 'qualified' hands off; 'won' ends it."""
    handle = await ctx.enroll("flash-sale")
    await ctx.sleep(hours=1)
    for name, step, key in (
        ("email.opened", "cart-email", "e1"),
        ("email.clicked", "cart-email", "e2"),
        ("email.clicked", "cart-email", "e2"),  # a webhook delivered twice counts once
        ("cart.viewed", None, "e3"),
        ("cart.viewed", None, "e4"),
    ):
        await handle.signal("event", EventSignal(name, step, key))
    await ctx.sleep(hours=1)
    await handle.signal("disposition", DispositionSignal("qualified"))
    await ctx.sleep(hours=1)
    await handle.signal("disposition", DispositionSignal("won"))
    await _finished(handle, "completed")
    return handle


async def webinar_nurture(ctx: Context) -> WorkflowHandle:
    """Weekday office hours with holidays (deferrals), a skipped call step, caps: the whole nurture."""
    handle = await ctx.enroll("webinar-nurture")
    await _finished(handle, "completed")
    return handle


async def webinar_nurture_stopped(ctx: Context) -> WorkflowHandle:
    """A stop request mid-flight (what DELETE /v1/enrollments sends)."""
    handle = await ctx.enroll("webinar-nurture")
    await ctx.sleep(days=1)
    await handle.signal("stop", StopSignal("stopped via API"))
    await _finished(handle, "stopped")
    return handle


async def year_long_continued(ctx: Context) -> WorkflowHandle:
    """Daily sends for 400 days continue-as-new; the LAST run is recorded (it starts from carried-over state)."""
    cadence = long_cadence(days=400)
    contact = ctx.contact()
    wid = enrollment_id(cadence.id, contact)
    handle = await ctx.client.start_workflow(
        WORKFLOW_TYPE,
        EnrollmentInput(cadence.snapshot(), contact),
        id=wid,
        task_queue=ctx.task_queue,
        result_type=EnrollmentResult,
    )
    await _finished(handle, "completed")
    latest = ctx.client.get_workflow_handle(wid)
    description = await latest.describe()
    if description.run_id == handle.first_execution_run_id:
        raise SystemExit(
            f"the year-long cadence did not continue-as-new ({description.history_length} events): nothing to record"
        )
    return latest


# -- outbound-webhook: recorded with stand-in activities (replay only checks the workflow's commands) --
@activity.defn(name="deliver-webhook")
async def _delivered(request: WebhookDeliveryRequest) -> str:
    if request.delivery_id == 2:
        raise ApplicationError("endpoint answered 410 Gone", type="WebhookRejected", non_retryable=True)
    return "delivered"


@activity.defn(name="webhook-delivery-failed")
async def _failed(request: WebhookDeliveryRequest) -> None:
    return None


async def _webhook(ctx: Context, delivery_id: int, expected: str) -> WorkflowHandle:
    from worker import workflow_runner
    from workflows.outbound_webhook import WORKFLOW_TYPE as WEBHOOK
    from workflows.outbound_webhook import OutboundWebhookWorkflow

    queue = f"{ctx.task_queue}-webhooks"
    async with Worker(
        ctx.client,
        task_queue=queue,
        workflows=[OutboundWebhookWorkflow],
        activities=[_delivered, _failed],
        workflow_runner=workflow_runner(),
    ):
        handle = await ctx.client.start_workflow(
            WEBHOOK,
            WebhookDeliveryRequest(delivery_id),
            id=f"webhook-delivery:{delivery_id}:{datetime.now(UTC).timestamp():.0f}",
            task_queue=queue,
            result_type=str,
        )
        result = await handle.result()
    if result != expected:
        raise SystemExit(f"outbound-webhook {delivery_id}: expected {expected!r}, got {result!r}")
    return handle


async def webhook_delivered(ctx: Context) -> WorkflowHandle:
    return await _webhook(ctx, 1, "delivered")


async def webhook_failed(ctx: Context) -> WorkflowHandle:
    return await _webhook(ctx, 2, "failed")


SCENARIOS: dict[str, Scenario] = {
    "contact-cadence.demo-welcome": demo_welcome,
    "contact-cadence.demo-welcome-escalated": demo_welcome_escalated,
    "contact-cadence.flash-sale-won": flash_sale_won,
    "contact-cadence.webinar-nurture": webinar_nurture,
    "contact-cadence.webinar-nurture-stopped": webinar_nurture_stopped,
    "contact-cadence.year-long-continued": year_long_continued,
    "outbound-webhook.delivered": webhook_delivered,
    "outbound-webhook.failed": webhook_failed,
}


async def _finished(handle: WorkflowHandle, status: str) -> None:
    result = await handle.result()
    if result.status != status:
        raise SystemExit(f"{handle.id}: expected status {status!r}, got {result.status!r} ({result.reason})")


async def record(out_dir: Path, only: str | None = None, keep_as: str | None = None) -> dict[str, dict]:
    """Run the scenarios (all, or those whose name contains ``only``) and write their histories.

    ``keep_as``: first rename the histories about to be replaced to ``<name>.<keep_as>.json`` (index entries
    too), so the replay tests keep covering the old branch of a ``workflow.patched()`` change.
    """
    wanted = [part for part in (only or "").split(",") if part]
    chosen = {name: fn for name, fn in SCENARIOS.items() if not wanted or any(w in name for w in wanted)}
    if not chosen:
        raise SystemExit(f"no scenario matches {only!r}; scenarios: {', '.join(SCENARIOS)}")
    out_dir.mkdir(parents=True, exist_ok=True)
    index_path = out_dir / "index.json"
    index: dict[str, dict] = json.loads(index_path.read_text()) if index_path.exists() else {}
    index = {file: entry for file, entry in index.items() if (out_dir / file).exists()}
    if keep_as:
        index.update(_keep_old(out_dir, index, chosen, keep_as))
    for file in [f for f in index if any(_is_child_of(f, name) for name in chosen)]:
        (out_dir / file).unlink()  # a re-recorded scenario may open fewer call tasks than before
        del index[file]
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=str(BIN / "temporal-test-server"))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            var = Path(tmp)
            settings = Settings(database_url=f"sqlite:///{var / 'omnireach.db'}", secret_key="replay", var_dir=var)
            parts = WorkerParts(settings, open_store(settings.database_url), repo_library(), console_channel(var))
            ctx = Context(env, parts, "record-histories")
            async with product_worker(env.client, parts, ctx.task_queue, clock=virtual_clock):
                for name, scenario in chosen.items():
                    try:  # one at a time: the time-skipping server needs it
                        handle = await asyncio.wait_for(scenario(ctx), SCENARIO_TIMEOUT)
                    except TimeoutError:
                        raise SystemExit(
                            f"scenario {name} did not finish in {SCENARIO_TIMEOUT}s: look for failing activities "
                            "in the output above (the worker logs each failed attempt)"
                        ) from None
                    history = await handle.fetch_history()
                    about = (scenario.__doc__ or "").strip()
                    index[f"{name}.json"] = _save(out_dir / f"{name}.json", history, name.split(".")[0], about)
                    # Child workflows (call tasks) are recorded too: "<child type>.<scenario>-<n>.json".
                    for n, (child_id, child_type) in enumerate(_children(history), start=1):
                        child = await ctx.client.get_workflow_handle(child_id).fetch_history()
                        file = f"{child_type}.{name.split('.', 1)[1]}-{n}.json"
                        index[file] = _save(out_dir / file, child, child_type, f"child of {name}: {about}")
    finally:
        await env.shutdown()
    index_path.write_text(json.dumps(dict(sorted(index.items())), indent=2) + "\n")
    return index


def _keep_old(out_dir: Path, index: dict[str, dict], chosen: dict[str, Scenario], suffix: str) -> dict[str, dict]:
    kept = {}
    for file in list(index):
        if not any(file == f"{name}.json" or _is_child_of(file, name) for name in chosen):
            continue
        new_name = f"{file.removesuffix('.json')}.{suffix}.json"
        (out_dir / file).rename(out_dir / new_name)
        kept[new_name] = {**index.pop(file), "kept": suffix}
        print(f"kept {file} as {new_name}")
    return kept


def _is_child_of(file: str, scenario: str) -> bool:
    """call-task.flash-sale-won-1.json is a child history of contact-cadence.flash-sale-won."""
    stem = scenario.split(".", 1)[1]
    rest = file.split(".", 1)[1].removesuffix(".json") if "." in file else ""
    return rest.startswith(f"{stem}-") and rest[len(stem) + 1 :].isdigit()


def _save(path: Path, history: WorkflowHistory, workflow_type: str, about: str) -> dict:
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n", encoding="utf-8")
    print(f"recorded {path.name}: {len(history.events)} events")
    return {
        "workflow_id": history.workflow_id,
        "workflow_type": workflow_type,
        "events": len(history.events),
        "scenario": about,
    }


def _children(history: WorkflowHistory) -> list[tuple[str, str]]:
    """(workflow id, type) of every child workflow the history started."""
    found = []
    for event in history.events:
        if event.HasField("child_workflow_execution_started_event_attributes"):
            attrs = event.child_workflow_execution_started_event_attributes
            found.append((attrs.workflow_execution.workflow_id, attrs.workflow_type.name))
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HISTORIES, help="folder for the JSON histories")
    parser.add_argument("--only", help="record only scenarios whose name contains one of these comma-separated texts")
    parser.add_argument(
        "--keep-as",
        metavar="SUFFIX",
        help="keep the histories being replaced as <name>.<SUFFIX>.json (use the patch id of the change)",
    )
    args = parser.parse_args(argv)
    logging.getLogger("temporalio.activity").setLevel(logging.ERROR)  # the scenarios fail some on purpose
    asyncio.run(record(args.out, args.only, args.keep_as))


if __name__ == "__main__":
    main()
