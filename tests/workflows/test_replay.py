"""Determinism: today's workflow code replays the histories recorded from earlier code (docs/determinism.md).

The histories under histories/ were recorded by bench/record_histories.py from the example cadences. A
failure here means a deploy would break running enrollments: put the change behind `workflow.patched()`.
The last two tests show the check has teeth: a command changed without a patch fails replay, and the same
change behind `workflow.patched()` passes.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

import worker
from workflows.contact_cadence import ContactCadenceWorkflow, EnrollmentInput, EnrollmentResult

HISTORIES = Path(__file__).resolve().parent / "histories"
INDEX = json.loads((HISTORIES / "index.json").read_text(encoding="utf-8"))


def _history(file: str) -> WorkflowHistory:
    text = (HISTORIES / file).read_text(encoding="utf-8")
    return WorkflowHistory.from_json(INDEX[file]["workflow_id"], text)


def _workflow_type(cls: type) -> str:
    definition = workflow._Definition.must_from_class(cls)
    assert definition.name is not None
    return definition.name


def test_every_registered_workflow_has_recorded_histories():
    recorded = {entry["workflow_type"] for entry in INDEX.values()}
    missing = sorted({_workflow_type(cls) for cls in worker.WORKFLOWS} - recorded)
    assert not missing, f"no recorded history for {missing}: add a scenario to bench/record_histories.py and run it"
    on_disk = {p.name for p in HISTORIES.glob("*.json")} - {"index.json"}
    assert on_disk == set(INDEX), "histories/ and histories/index.json disagree: re-run bench/record_histories.py"


@pytest.mark.parametrize("file", sorted(INDEX))
async def test_recorded_history_replays_with_todays_code(file: str):
    replayer = Replayer(workflows=worker.WORKFLOWS, workflow_runner=worker.workflow_runner())
    result = await replayer.replay_workflow(_history(file), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{file} no longer replays: {result.replay_failure}"


# -- the check has teeth --------------------------------------------------------------------------------------
# A plausible mistake: "emit an analytics event after every send", added to running code without a patch.
# Old histories have the next step's timer (or activity) where the new code now schedules an activity.
ANALYTICS = "record-enrollment"


@workflow.defn(name="contact-cadence", sandboxed=False)
class UnpatchedChange(ContactCadenceWorkflow):
    @workflow.run
    async def run(self, start: EnrollmentInput) -> EnrollmentResult:
        return await super().run(start)

    async def _deliver(self, wid, cadence, command):
        happened = await super()._deliver(wid, cadence, command)
        await workflow.execute_activity(ANALYTICS, wid, start_to_close_timeout=timedelta(seconds=30))
        return happened


@workflow.defn(name="contact-cadence", sandboxed=False)
class PatchedChange(ContactCadenceWorkflow):
    @workflow.run
    async def run(self, start: EnrollmentInput) -> EnrollmentResult:
        return await super().run(start)

    async def _deliver(self, wid, cadence, command):
        happened = await super()._deliver(wid, cadence, command)
        if workflow.patched("analytics-after-send"):  # old runs keep their old commands
            await workflow.execute_activity(ANALYTICS, wid, start_to_close_timeout=timedelta(seconds=30))
        return happened


SENDING_HISTORY = "contact-cadence.demo-welcome.json"
OTHERS = [cls for cls in worker.WORKFLOWS if cls is not ContactCadenceWorkflow]


async def test_a_command_changed_without_a_patch_fails_replay():
    replayer = Replayer(workflows=[UnpatchedChange, *OTHERS], workflow_runner=worker.workflow_runner())
    with pytest.raises(workflow.NondeterminismError, match="Nondeterminism"):
        await replayer.replay_workflow(_history(SENDING_HISTORY))


async def test_the_same_change_behind_workflow_patched_replays():
    replayer = Replayer(workflows=[PatchedChange, *OTHERS], workflow_runner=worker.workflow_runner())
    result = await replayer.replay_workflow(_history(SENDING_HISTORY), raise_on_replay_failure=False)
    assert result.replay_failure is None, result.replay_failure
