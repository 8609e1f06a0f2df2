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
        async with heartbeating(every=timedelta(seconds=0.02)):
            for _ in range(500):  # a provider that takes its time (up to 10 s, however loaded the machine)
                if len(beats) >= 3:
                    return
                await asyncio.sleep(0.02)
            raise AssertionError(f"{len(beats)} heartbeats while the block ran")

    await env.run(slow_send)
    during = len(beats)
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
