"""`outbound-webhook`: deliver one business event to one endpoint, retried with backoff by Temporal.

Also ``emit_event(event)``, the one call other workflows make to record a business milestone (MQL,
SQL handoff, disposition, won/lost, SLA breach): it runs the ``emit-event`` activity, which journals the
event for the reports and starts one ``outbound-webhook`` workflow per subscribed endpoint.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.types import OutboundEvent, OutboundEventResult, WebhookDeliveryRequest

WORKFLOW_TYPE = "outbound-webhook"
# 1s, 2s, 4s ... 2048s, then hourly: 18 attempts over about 7 hours.
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(hours=1),
    maximum_attempts=18,
    non_retryable_error_types=["WebhookRejected", "UnknownDelivery"],
)
EMIT_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1), non_retryable_error_types=["BadEvent"])


async def emit_event(event: OutboundEvent) -> OutboundEventResult:
    """Inside a workflow: record a business event and send it to webhook subscribers (idempotent by key)."""
    return await workflow.execute_activity(
        "emit-event",
        event,
        result_type=OutboundEventResult,
        start_to_close_timeout=timedelta(seconds=30),
        retry_policy=EMIT_RETRY,
    )


@workflow.defn(name=WORKFLOW_TYPE)
class OutboundWebhookWorkflow:
    @workflow.run
    async def run(self, request: WebhookDeliveryRequest) -> str:
        try:
            return await workflow.execute_activity(
                "deliver-webhook",
                request,
                result_type=str,
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=DELIVERY_RETRY,
            )
        except ActivityError as err:
            reason = str(getattr(err.cause, "message", None) or err.cause or err)
            await workflow.execute_activity(
                "webhook-delivery-failed",
                WebhookDeliveryRequest(request.delivery_id, final_error=reason[:500]),
                start_to_close_timeout=timedelta(seconds=30),
                retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            )
            return "failed"
