"""Temporal's own ceiling on this machine: the same work without omnireach in it.

- ``bench-empty``: a workflow that returns at once (what a raw ``start_workflow`` costs);
- ``bench-noop``: as many no-op activities as an enrollment's first send runs (load profile, record the
  enrollment, deliver), then a long timer, like an enrollment waiting for its next step;
- ``bench-waiting``: waits for signals and counts them (the raw-signal baseline).

Run as a worker process with the product worker's options (sandbox, pass-through modules, 50 concurrent
activities): ``python -m bench.baseline --address 127.0.0.1:7233 --task-queue bench-baseline``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

NOOP_ACTIVITIES = 3  # load-contact-profile, record-enrollment, deliver


_MARKS = os.environ.get("BENCH_MARKS")  # the bench reads when each workflow's last activity ran


@activity.defn(name="bench-noop")
async def noop(step: str) -> str:
    if _MARKS and step == str(NOOP_ACTIVITIES - 1):
        with open(_MARKS, "a") as marks:
            marks.write(f"{time.time()}\n")
    return step


@workflow.defn(name="bench-empty")
class EmptyWorkflow:
    @workflow.run
    async def run(self) -> None:
        return None


@workflow.defn(name="bench-noop")
class NoopActivitiesWorkflow:
    @workflow.run
    async def run(self) -> None:
        for step in range(NOOP_ACTIVITIES):
            await workflow.execute_activity(noop, str(step), start_to_close_timeout=timedelta(seconds=30))
        await workflow.sleep(timedelta(hours=1))


@workflow.defn(name="bench-waiting")
class WaitingWorkflow:
    def __init__(self) -> None:
        self.seen = 0

    @workflow.signal(name="event")
    def event(self, _payload: dict) -> None:
        self.seen += 1

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.seen < 0, timeout=timedelta(hours=1))
        return self.seen


WORKFLOWS = [EmptyWorkflow, NoopActivitiesWorkflow, WaitingWorkflow]


def baseline_worker(client: Client, task_queue: str) -> Worker:
    from worker import workflow_runner

    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[noop],
        workflow_runner=workflow_runner(),
        max_concurrent_activities=50,
    )


async def _serve(address: str, task_queue: str) -> None:
    client = await Client.connect(address)
    worker = baseline_worker(client, task_queue)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with worker:
        print(f"worker polling task queue '{task_queue}'", flush=True)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True)
    parser.add_argument("--task-queue", required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.address, args.task_queue))


if __name__ == "__main__":
    main()
