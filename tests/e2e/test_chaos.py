"""The chaos run of bench/chaos.py at CI size: worker SIGKILLs, a dev server restart, a provider failing 20%
of sends (429 / 500 / timeouts), every callback twice and out of order, STOPs mid-flight. Nothing may be
sent twice, no enrollment lost, nothing sent after an opt-out.

Most of its ~2.5 minutes is Temporal waiting out the `deliver` activities the killed worker held
(start-to-close 2 minutes): that is the recovery time a real crash costs today.
"""

from __future__ import annotations

import pytest

from bench.chaos import ChaosConfig, run_chaos
from tests.store.conftest import require_postgres

pytestmark = [pytest.mark.e2e, pytest.mark.postgres, pytest.mark.timeout(400)]


async def test_chaos_run_sends_nothing_twice_loses_nothing_and_respects_stops(tmp_path):
    require_postgres()
    config = ChaosConfig(
        contacts=24,
        stop_share=0.25,
        kill_every=(3.0, 6.0),
        max_kills=2,
        restart_server_at=0.3,
        chaos_until=0.9,
        spacing=2,
        deadline=300,
    )
    report = await run_chaos(config, tmp_path)
    print("\n" + report.summary())

    assert report.kills >= 1 and report.server_restarts == 1, "the chaos itself did not happen"
    assert sum(report.faults.values()) > 0, "the provider injected no failure"
    assert report.stops == 6
    assert report.lost == []
    assert (report.duplicate_keys, report.duplicate_steps, report.duplicate_outbox) == (0, 0, 0)
    assert report.sends_after_optout == 0
    assert report.missing_sends == 0, "contacts who did not opt out received every step"
    assert report.completed == report.enrolled == config.contacts
