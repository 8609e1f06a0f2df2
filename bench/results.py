"""One benchmark figure beside Temporal's own ceiling, and the table / JSON they end up in."""

from __future__ import annotations

import asyncio
import json
import platform
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.console import Console
from rich.table import Table


@dataclass
class Figure:
    key: str  # a..f
    what: str
    ours: float
    unit: str
    baseline: float | None = None
    baseline_what: str = ""
    goal: str = ""  # ">= 0.7" / "<= 2.0" on the ratio, or "" when there is no goal
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        if self.baseline in (None, 0):
            return None
        return self.ours / self.baseline

    @property
    def met(self) -> bool | None:
        if not self.goal or self.ratio is None:
            return None
        op, _, target = self.goal.partition(" ")
        return self.ratio >= float(target) if op == ">=" else self.ratio <= float(target)

    def row(self) -> dict:
        return {**asdict(self), "ratio": self.ratio, "met": self.met}


def steady_rate(stamps: Iterable[float], *, low: float = 0.1, high: float = 0.9) -> float:
    """Events per second between the ``low`` and ``high`` quantiles of their times (no ramp-up or tail)."""
    times = sorted(stamps)
    if len(times) < 10:
        raise ValueError(f"too few events ({len(times)}) for a steady rate")
    a, b = int(len(times) * low), int(len(times) * high)
    span = times[b] - times[a]
    return (b - a) / span if span > 0 else float("inf")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run_limited(concurrency: int, jobs: Iterable[Callable[[], Awaitable]]) -> tuple[float, list]:
    """Run the jobs ``concurrency`` at a time; (elapsed seconds, results in order)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job):
        async with gate:
            return await job()

    started = time.perf_counter()
    results = await asyncio.gather(*(one(job) for job in jobs))
    return time.perf_counter() - started, list(results)


def machine() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    memory = 0
    if Path("/proc/meminfo").exists():
        memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024
    import os

    return {
        "cpus": os.cpu_count(),
        "cpu": cpu,
        "memory_mib": memory,
        "python": platform.python_version(),
        "system": platform.platform(),
    }


def table(figures: list[Figure], title: str) -> Table:
    out = Table(title=title, show_lines=False)
    for column in ("", "what", "omnireach", "Temporal alone", "ratio", "goal", "met"):
        out.add_column(column, overflow="fold")
    for f in figures:
        ratio = f"{f.ratio:.2f}" if f.ratio is not None else "-"
        base = f"{f.baseline:,.1f} {f.unit} ({f.baseline_what})" if f.baseline is not None else "-"
        met = {True: "[green]yes[/green]", False: "[red]no[/red]", None: "-"}[f.met]
        out.add_row(f.key, f.what, f"{f.ours:,.1f} {f.unit}", base, ratio, f.goal or "-", met)
    return out


def write(figures: list[Figure], path: Path, about: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**about, "figures": [f.row() for f in figures]}, indent=2) + "\n")


def show(figures: list[Figure], title: str) -> None:
    console = Console()
    console.print(table(figures, title))
    for f in figures:
        if f.notes:
            console.print(f"  ({f.key}) {f.notes}", highlight=False)


async def until_quiet(busy_below: float = 0.15, window: float = 0.25, timeout: float = 20.0) -> None:
    """Wait until the machine's CPUs are less than ``busy_below`` busy over ``window`` seconds (at most
    ``timeout``). A side's timed window then starts on a quiet machine and does not share the CPUs with work the
    other side left queued (a raw signal returns before its workflow task has run)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        before = _cpu_times()
        await asyncio.sleep(window)
        after = _cpu_times()
        total = after[0] - before[0]
        if total <= 0 or (after[1] - before[1]) / total < busy_below:
            return


def _cpu_times() -> tuple[int, int]:
    """(all, busy) jiffies of every CPU since boot; (0, 0) where /proc/stat does not exist."""
    stat = Path("/proc/stat")
    if not stat.exists():
        return 0, 0
    fields = [int(value) for value in stat.read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields[:8]), sum(fields[:8]) - idle
