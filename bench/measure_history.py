"""(f) history events per enrollment of the example cadences, from bench/record_histories.py's scenarios."""

from __future__ import annotations

from pathlib import Path

from bench.record_histories import record
from bench.results import Figure


async def history_events(out: Path) -> Figure:
    index = await record(out)
    per = {
        file.removesuffix(".json").split(".", 1)[1]: entry["events"]
        for file, entry in index.items()
        if entry["workflow_type"] == "contact-cadence"
    }
    children: dict[str, int] = {}
    for file, entry in index.items():
        if entry["workflow_type"] == "call-task":
            parent = file.removesuffix(".json").split(".", 1)[1].rsplit("-", 1)[0]
            children[parent] = children.get(parent, 0) + entry["events"]
    plain = {k: v for k, v in per.items() if k in ("demo-welcome", "flash-sale-won", "webinar-nurture")}
    detail = ", ".join(
        f"{k} {v}" + (f" (+{children[k]} in call tasks)" if k in children else "") for k, v in per.items()
    )
    return Figure(
        "f",
        "history events per enrollment, example cadences",
        max(plain.values()) if plain else 0,
        "events",
        notes=f"largest of the three example cadences run to the end; per scenario: {detail}; "
        "Temporal suggests continue-as-new at ~4,096 events and enrollments do so",
        extra={"per_scenario": per, "call_tasks": children},
    )
