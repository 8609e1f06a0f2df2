"""Heartbeats for activities whose worker may die mid-flight.

An activity with a heartbeat timeout is retried as soon as its worker stops heartbeating, instead of after
its whole start-to-close timeout: a SIGKILLed worker's sends resume in seconds, not minutes. The beat
comes from a background task, so it keeps coming while the activity waits on the database, a pacing
slot or a provider, and stops the moment the worker does.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from temporalio import activity

# The workflow side sets the timeout (workflows/contact_cadence.DELIVER_HEARTBEAT_TIMEOUT); beating three
# times per timeout leaves room for a slow beat. The SDK batches beats, so this costs no extra round trips.
BEAT_EVERY = timedelta(seconds=10)


@contextlib.asynccontextmanager
async def heartbeating(every: timedelta = BEAT_EVERY) -> AsyncIterator[None]:
    """Heartbeat every ``every`` while the block runs (outside an activity, e.g. a direct call in a test:
    nothing)."""
    if not activity.in_activity():
        yield
        return
    beat = asyncio.create_task(_beat(every.total_seconds()))
    try:
        yield
    finally:
        beat.cancel()


async def _beat(seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        activity.heartbeat()
