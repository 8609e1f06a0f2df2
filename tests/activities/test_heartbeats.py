"""activities.heartbeats: an activity keeps heartbeating while it waits, and stops when it is done."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.testing import ActivityEnvironment

from activities.heartbeats import heartbeating


async def test_beats_while_the_block_runs_and_stops_after() -> None:
    beats: list[tuple] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)

    async def slow_send() -> None:
        async with heartbeating(every=timedelta(seconds=0.05)):
            await asyncio.sleep(0.3)  # a provider that takes its time

    await env.run(slow_send)
    during = len(beats)
    assert during >= 3
    await asyncio.sleep(0.2)
    assert len(beats) == during  # the beat stopped with the block


async def test_a_quick_block_never_beats_and_outside_an_activity_nothing_happens() -> None:
    beats: list[tuple] = []
    env = ActivityEnvironment()
    env.on_heartbeat = lambda *details: beats.append(details)

    async def quick() -> str:
        async with heartbeating(every=timedelta(seconds=10)):
            return "sent"

    assert await env.run(quick) == "sent"
    assert beats == []
    async with heartbeating(every=timedelta(seconds=0.01)):  # a direct call, as some tests make
        await asyncio.sleep(0.05)
