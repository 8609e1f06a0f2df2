"""The API's only door to Temporal: start an enrollment, signal an event, stop, check health.

Keeping the Temporal calls here means routes deal in plain results and two exceptions: a workflow that is
not running (``False`` / ``None``) and ``TemporalUnavailable`` (answered with 503, nothing changed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.common import RawValue, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core.model import Cadence
from workflows.contact_cadence import (
    ContactCadenceWorkflow,
    EnrollmentInput,
    EventSignal,
    StopSignal,
    enrollment_id,
)

log = logging.getLogger("omnireach.api.temporal")
DEFAULT_RPC_TIMEOUT = timedelta(seconds=10)
HEALTH_TIMEOUT = timedelta(seconds=3)
JSON_ENCODING = b"json/plain"


class TemporalUnavailable(RuntimeError):
    """Temporal could not be reached or refused the call; the message is safe to show to the caller."""


@dataclass(frozen=True)
class StartedEnrollment:
    id: str
    run_id: str
    started: bool  # False: the enrollment was already running and is returned as it is


class TemporalGateway:
    """Wraps a temporalio ``Client`` for the API (``TemporalGateway(client, settings.task_queue)``)."""

    def __init__(self, client: Client, task_queue: str, *, rpc_timeout: timedelta = DEFAULT_RPC_TIMEOUT):
        self.client = client
        self.task_queue = task_queue
        self.rpc_timeout = rpc_timeout
        self._inputs = EnrollmentInputs(client)

    async def start_enrollment(
        self, cadence: Cadence, contact_id: str, *, snapshot: dict | None = None, reenroll: bool = True
    ) -> StartedEnrollment | None:
        """Start ``cadence:{cadence}:{contact}``, or return the run already going (USE_EXISTING).

        ``reenroll=False`` (bulk loads): an enrollment that already ran and ended is not started again;
        the answer is then None. ``snapshot``: the cadence's snapshot, when the caller made it once for many.
        """
        workflow_id = enrollment_id(cadence.id, contact_id)
        try:
            handle = await self.client.start_workflow(
                ContactCadenceWorkflow.run,
                self._inputs.build(cadence, contact_id, snapshot),
                id=workflow_id,
                task_queue=self.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=(
                    WorkflowIDReusePolicy.ALLOW_DUPLICATE if reenroll else WorkflowIDReusePolicy.REJECT_DUPLICATE
                ),
                rpc_timeout=self.rpc_timeout,
            )
        except WorkflowAlreadyStartedError:
            return None
        except RPCError as exc:
            raise _unavailable("start the enrollment", exc) from exc
        run_id = handle.result_run_id or handle.first_execution_run_id or ""
        return StartedEnrollment(workflow_id, run_id, _was_started(handle))

    async def signal_event(self, workflow_id: str, signal: EventSignal) -> bool:
        """Send an event to a running enrollment; False when it is not running (ended or never started)."""
        try:
            await self.client.get_workflow_handle(workflow_id).signal(
                ContactCadenceWorkflow.event, signal, rpc_timeout=self.rpc_timeout
            )
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise _unavailable("signal the enrollment", exc) from exc
        return True

    async def stop(self, workflow_id: str, reason: str) -> bool:
        """Ask a running enrollment to stop; False when there is no such running workflow."""
        try:
            await self.client.get_workflow_handle(workflow_id).signal(
                ContactCadenceWorkflow.stop, StopSignal(reason), rpc_timeout=self.rpc_timeout
            )
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return False
            raise _unavailable("stop the enrollment", exc) from exc
        return True

    async def healthy(self) -> bool:
        try:
            return await self.client.service_client.check_health(timeout=HEALTH_TIMEOUT)
        except Exception as exc:  # any failure means "unreachable" to a health check
            log.warning("event=temporal_health ok=false error=%s", type(exc).__name__)
            return False


class EnrollmentInputs:
    """The workflow's input, with the cadence snapshot encoded once per cadence rather than once per start.

    Encoding the input (a pydantic dump of the cadence, then the payload converter's deep copy and JSON of every
    step) was the largest part of an enrollment's Python work on the event loop, and all but the contact id is
    the same for every contact of a cadence. The payload sent is byte for byte what the client's own converter
    makes of ``EnrollmentInput(cadence.snapshot(), contact_id)``: the converter's JSON of the snapshot (kept
    per cadence) and of the contact id go into the converter's JSON of an input with an empty cadence and a
    marked contact id, cut once around those two. A converter that does not write plain JSON gets the whole
    input to encode, as before.
    """

    MAX_CADENCES = 1024  # the library is fixed for the process's life; a bound all the same
    CONTACT_MARK = "\x00contact-id\x00"  # escaped in JSON, it cannot occur anywhere else in the input's JSON

    def __init__(self, client: Client):
        self.converter = client.data_converter.payload_converter
        self._snapshots: dict[int, tuple[Cadence, bytes | None]] = {}
        self._frame = self._input_frame()

    def build(self, cadence: Cadence, contact_id: str, snapshot: dict | None = None) -> EnrollmentInput | RawValue:
        if snapshot is not None:  # the caller made its own snapshot (bulk loads): encode it as given
            return EnrollmentInput(cadence=snapshot, contact_id=contact_id)
        encoded = self._snapshot_json(cadence) if self._frame is not None else None
        contact = self._json(contact_id) if encoded is not None else None
        if self._frame is None or encoded is None or contact is None:  # not plain JSON: the whole input
            return EnrollmentInput(cadence=cadence.snapshot(), contact_id=contact_id)
        head, middle, tail = self._frame
        contact.data = head + encoded + middle + contact.data + tail
        return RawValue(contact)

    def _input_frame(self) -> tuple[bytes, bytes, bytes] | None:
        """The JSON of an input around its cadence and its contact id, or None when the converter's is not
        plain JSON with the cadence first (keys are sorted)."""
        payload = self._json(EnrollmentInput(cadence={}, contact_id=self.CONTACT_MARK))
        mark = self._json(self.CONTACT_MARK)
        head = b'{"cadence":'
        if payload is None or mark is None or not payload.data.startswith(head + b"{}"):
            return None
        rest = payload.data[len(head) + 2 :]
        if rest.count(mark.data) != 1:
            return None
        middle, tail = rest.split(mark.data)
        return head, middle, tail

    def _snapshot_json(self, cadence: Cadence) -> bytes | None:
        # Keyed by identity (a cadence is a frozen model, but hashing it would walk every step); the entry
        # holds the cadence, so its id cannot be reused by another object while the entry exists.
        entry = self._snapshots.get(id(cadence))
        if entry is None or entry[0] is not cadence:
            if len(self._snapshots) >= self.MAX_CADENCES:
                self._snapshots.clear()
            payload = self._json(cadence.snapshot())
            entry = (cadence, payload.data if payload is not None else None)
            self._snapshots[id(cadence)] = entry
        return entry[1]

    def _json(self, value: object) -> Payload | None:
        [payload] = self.converter.to_payloads([value])
        return payload if payload.metadata.get("encoding") == JSON_ENCODING else None


def _was_started(handle: object) -> bool:
    """Whether the start call created a new run (USE_EXISTING answers ``started=false`` otherwise).

    temporalio keeps the server's StartWorkflowExecutionResponse on the handle but has no public accessor
    for its ``started`` flag; without it we assume a new run (the pre-1.24-server behaviour).
    """
    response = getattr(handle, "_start_workflow_response", None)
    return bool(getattr(response, "started", True))


def _unavailable(action: str, exc: RPCError) -> TemporalUnavailable:
    log.warning("event=temporal_error action=%r status=%s", action, getattr(exc.status, "name", exc.status))
    return TemporalUnavailable(
        f"could not {action}: Temporal answered {getattr(exc.status, 'name', exc.status)}"
        f" ({exc.message}); nothing was changed, retry the same request later"
    )
