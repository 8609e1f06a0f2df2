"""`python -m bench`: omnireach's throughput, latency and memory beside Temporal's own ceiling, one run.

Starts a Temporal dev server (file database, `--sqlite-pragma journal_mode=WAL --sqlite-pragma
synchronous=OFF`), PostgreSQL database `omnireach_bench` (SQLite when there is no PostgreSQL), the fake
Twilio provider, `omnireach api` and `omnireach worker` processes, measures (a)..(f), prints a table and
writes bench/results/<timestamp>.json. Sized to finish in under 15 minutes on 2 cores; `--quick` is a
smoke run of a minute or two.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from temporalio.client import Client

from bench import measure_claims, measure_flow, measure_history
from bench.content import BENCH_HOLD, BENCH_SEND, TEMPLATES
from bench.results import Figure, machine, show, write
from bench.stack import Product, TemporalDev, drop_postgres, fresh_postgres, stop_process, write_content
from bench.world import open_store

RESULTS = Path(__file__).resolve().parent / "results"
# Another name lets two runs share one PostgreSQL server without dropping each other's database.
PG_DATABASE = os.environ.get("OMNIREACH_BENCH_DATABASE", "omnireach_bench")


def sizes(quick: bool) -> dict[str, int]:
    if quick:
        return {"enroll": 200, "baseline": 200, "webhooks": 100, "in_flight": 600, "agents": 50, "tasks": 1000}
    return {"enroll": 1000, "baseline": 500, "webhooks": 1000, "in_flight": 10_000, "agents": 50, "tasks": 5000}


async def run(quick: bool, keep: bool, only: str | None) -> list[Figure]:
    n = sizes(quick)
    var = Path(tempfile.mkdtemp(prefix="omnireach-bench-"))
    figures: list[Figure] = []
    want = set(only or "abcdef")
    began = time.monotonic()
    try:
        if want & set("abce"):
            figures += await _temporal_figures(var, n, want)
        if "d" in want:
            print("(d) claims with 50 agents on PostgreSQL ...", flush=True)
            _keep(figures, await asyncio.to_thread(measure_claims.claim_latency, n["agents"], n["tasks"]))
        if "f" in want:
            print("(f) history events per enrollment (time-skipping server) ...", flush=True)
            _keep(figures, await measure_history.history_events(var / "histories"))
    finally:
        if not keep:
            shutil.rmtree(var, ignore_errors=True)
        else:
            print(f"kept the run's files in {var}")
    print(f"bench finished in {time.monotonic() - began:.0f}s")
    return figures


async def _temporal_figures(var: Path, n: dict[str, int], want: set[str]) -> list[Figure]:
    from content.cadences import load_library
    from tests.e2e.fake_provider import FakeProvider

    temporal = TemporalDev(var / "temporal").start()
    database = fresh_postgres(PG_DATABASE) or f"sqlite:///{var / 'omnireach.db'}"
    cadences, templates = write_content(
        var / "content", {"bench-send": BENCH_SEND, "bench-hold": BENCH_HOLD}, TEMPLATES
    )
    provider = FakeProvider().start()
    product = Product(var, database, temporal.address, cadences, templates, provider_url=provider.url)
    figures: list[Figure] = []
    flow: measure_flow.Flow | None = None
    try:
        sessions = open_store(database)
        library = load_library([cadences], templates)
        if library.errors:
            raise SystemExit("bench content does not validate: " + "; ".join(map(str, library.errors)))
        client = await Client.connect(temporal.address)
        flow = measure_flow.Flow(
            client, product, provider, sessions, library.get("bench-send"), library.get("bench-hold")
        )
        with product.api() as api:
            flow.api_pid = api.pid
            print(f"(a) {n['enroll']} enrollments through the API vs raw starts ...", flush=True)
            _keep(figures, await measure_flow.enrollment_throughput(flow, n["enroll"]))
            if "b" in want:
                print(f"(b) one worker drains them; {n['baseline']} no-op workflows before and after ...", flush=True)
                _keep(figures, await measure_flow.sends_per_worker(flow, var, n["baseline"]))
            elif want & set("ce"):
                print("    the product worker drains (a)'s enrollments ...", flush=True)
                await measure_flow.start_product_worker(flow, var)
            if "c" in want:
                print(f"(c) {n['webhooks']} status callbacks vs raw signals ...", flush=True)
                _keep(figures, await measure_flow.webhook_signals(flow, n["webhooks"]))
            if "e" in want:
                print(f"(e) topping up to {n['in_flight']:,} enrollments in flight ...", flush=True)
                _keep(figures, await measure_flow.memory_in_flight(flow, n["in_flight"]))
        figures = [f for f in figures if f.key in want]
    finally:
        if flow is not None and flow.worker is not None:
            stop_process(flow.worker)
        provider.stop()
        temporal.stop()
        if database.startswith("postgresql"):
            drop_postgres(PG_DATABASE)
    return figures


def _keep(figures: list[Figure], figure: Figure) -> None:
    """Add a figure and say it at once (a long run shows its results as it goes)."""
    figures.append(figure)
    ratio = f", ratio {figure.ratio:.2f} (goal {figure.goal})" if figure.ratio is not None else ""
    baseline = f" vs {figure.baseline:,.1f}" if figure.baseline is not None else ""
    print(f"    ({figure.key}) {figure.ours:,.1f}{baseline} {figure.unit}{ratio}", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run of a minute or two")
    parser.add_argument("--only", help="letters of the figures to measure, e.g. 'abd' (default: all)")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder (logs, databases)")
    parser.add_argument("--out", type=Path, help="the JSON file (default: bench/results/<UTC time>.json)")
    args = parser.parse_args(argv)
    figures = asyncio.run(run(args.quick, args.keep, args.only))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    about = {"when": stamp, "quick": args.quick, "machine": machine(), "argv": sys.argv[1:]}
    out = args.out or RESULTS / f"{stamp}.json"
    write(figures, out, about)
    m = about["machine"]
    show(figures, f"omnireach vs Temporal alone - {m['cpus']} CPUs, {m['cpu']}, {m['memory_mib']:,} MiB")
    print(f"results written to {out}")
    missed = [f.key for f in figures if f.met is False]
    if missed:
        print(f"goals missed: {', '.join(missed)}")


if __name__ == "__main__":
    main()
