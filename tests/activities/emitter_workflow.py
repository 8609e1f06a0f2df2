"""A stand-in for the task workflows: records a milestone with the helper they call (sandbox-safe module)."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.types import OutboundEvent
    from workflows.outbound_webhook import emit_event


@workflow.defn(name="test-emitter")
class EmitterWorkflow:
    @workflow.run
    async def run(self, key: str) -> int:
        result = await emit_event(
            OutboundEvent(kind="mql.created", key=key, payload={"queue": "telemarketing", "sla_seconds": 86400})
        )
        return len(result.deliveries)
