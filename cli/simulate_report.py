"""The outputs of `omnireach simulate`: a Rich table, simulation.json, PNG charts and an HTML page."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from core.sim.simulation import SimulationResult

CHANNEL_COLOURS = {"email": "#2f6db5", "sms": "#e08a1e", "whatsapp": "#25a244", "voice": "#8e44ad"}


def day_table(result: SimulationResult) -> Table:
    data = result.to_json()
    queues = sorted(set(data["call_tasks"]) | set(data["agents_needed"]))
    table = Table(title=f"{data['cadence']}: {data['contacts']} contacts over {data['days']} days", show_footer=True)
    table.add_column("day", footer="total")
    for channel, counts in data["sends"].items():
        table.add_column(channel, justify="right", footer=str(sum(counts)))
    table.add_column("MQL", justify="right", footer=str(sum(data["mql"])))
    table.add_column("SQL", justify="right", footer=str(sum(data["sql"])))
    for queue in queues:
        tasks = data["call_tasks"].get(queue, [])
        agents = data["agents_needed"].get(queue, [])
        table.add_column(f"{queue}\ntasks/agents", justify="right", footer=f"{sum(tasks)}/≤{max(agents, default=0)}")
    table.add_column("won", justify="right", footer=str(sum(data["won"])))
    for i, day in enumerate(result.book.dates()):
        row = [f"{day.strftime('%a')} {day.isoformat()[5:]}"]
        row += [_n(counts[i]) for counts in data["sends"].values()]
        row += [_n(data["mql"][i]), _n(data["sql"][i])]
        for queue in queues:
            tasks, agents = _at(data["call_tasks"].get(queue), i), _at(data["agents_needed"].get(queue), i)
            row.append(f"{tasks}/{agents}" if tasks or agents else "·")
        row.append(_n(data["won"][i]))
        table.add_row(*row)
    return table


def _at(values: list | None, i: int) -> int:
    return values[i] if values else 0


def _n(value: float) -> str:
    return "·" if not value else str(value)


def summary_table(result: SimulationResult) -> Table:
    data = result.to_json()
    totals, currency = data["totals"], data["currency"]
    table = Table(title="summary", show_header=False)
    table.add_column("what")
    table.add_column("value")
    table.add_row("outcome", ", ".join(f"{k} {v}" for k, v in data["outcome"].items()))
    events = data["events"]
    engagement = ["opened", "clicked", "replied", "unsubscribed", "bounced"]
    for kind in engagement:
        counts = {k.split(".")[0]: v for k, v in events.items() if k.endswith("." + kind)}
        if counts:
            table.add_row(kind, ", ".join(f"{c} {v}" for c, v in sorted(counts.items())))
    custom = {k: v for k, v in events.items() if k.split(".")[-1] not in (*engagement, "delivered")}
    if custom:
        table.add_row("custom events", ", ".join(f"{k} {v}" for k, v in custom.items()))
    table.add_row("dispositions", ", ".join(f"{k} {v}" for k, v in data["dispositions"].items()) or "none")
    table.add_row("deferred", ", ".join(f"{k} {v}" for k, v in data["deferred"].items()) or "none")
    table.add_row("skipped", ", ".join(f"{k} {v}" for k, v in data["skipped"].items()) or "none")
    if data["uncallable_tasks"]:
        table.add_row(
            "never called",
            ", ".join(f"{k} {v}" for k, v in data["uncallable_tasks"].items())
            + " (the agents' shift and the contacts' calling hours never overlap)",
        )
    table.add_row("MQL / SQL / won", f"{totals['mql']} / {totals['sql']} / {totals['won']}")
    table.add_row("revenue", f"{totals['revenue']:,.2f} {currency}")
    cost = totals["cost"]
    parts = ", ".join(f"{k} {v:,.2f}" for k, v in cost.items() if k != "total" and v)
    table.add_row("cost", f"{cost['total']:,.2f} {currency} ({parts})")
    if totals["cost_per_sql"] is not None:
        table.add_row("cost per SQL", f"{totals['cost_per_sql']:,.2f} {currency}")
    perf = data["performance"]
    table.add_row("simulated in", f"{perf['seconds']} s ({perf['engine_advances']} engine steps)")
    return table


def print_report(result: SimulationResult, console: Console) -> None:
    console.print(day_table(result))
    console.print(summary_table(result))


def write_outputs(result: SimulationResult, folder: Path) -> list[Path]:
    """simulation.json, sends.png, leads.png, calls.png and simulation.html in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    data = result.to_json()
    written = [folder / "simulation.json"]
    written[0].write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    charts = _charts(data, folder)
    written += charts
    page = folder / "simulation.html"
    page.write_text(_page(data, charts), encoding="utf-8")
    written.append(page)
    return written


def _charts(data: dict, folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = [d[5:] for d in data["dates"]]
    x = range(len(days))
    paths = []

    fig, ax = plt.subplots(figsize=(11, 4))
    bottom = [0] * len(days)
    for channel, counts in data["sends"].items():
        ax.bar(x, counts, bottom=bottom, label=channel, color=CHANNEL_COLOURS.get(channel))
        bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    _style(ax, days, "Messages sent per day", "messages")
    paths.append(_save(fig, folder / "sends.png"))

    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.28
    ax.bar([i - width for i in x], data["mql"], width, label="MQL (escalated)", color="#2f6db5")
    ax.bar(list(x), data["sql"], width, label="SQL (handed off)", color="#e08a1e")
    ax.bar([i + width for i in x], data["won"], width, label="won", color="#25a244")
    _style(ax, days, "Leads per day", "contacts")
    paths.append(_save(fig, folder / "leads.png"))

    fig, (top, low) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    for queue, counts in data["call_tasks"].items():
        top.plot(list(x), counts, marker="o", label=f"{queue} tasks")
    _style(top, days, "Call tasks per day", "tasks")
    queues = list(data["agents_needed"].items())
    width = 0.8 / max(1, len(queues))
    for n, (queue, counts) in enumerate(queues):
        low.bar([i - 0.4 + width * (n + 0.5) for i in x], counts, width, label=f"{queue} agents")
    low.yaxis.get_major_locator().set_params(integer=True)
    _style(low, days, "Agents needed per day (Erlang C)", "agents")
    paths.append(_save(fig, folder / "calls.png"))
    return paths


def _style(ax, days: list[str], title: str, unit: str) -> None:
    ax.set_title(title)
    ax.set_ylabel(unit)
    ax.set_xticks(range(len(days)))
    ax.set_xticklabels(days, rotation=60, fontsize=7)
    ax.grid(axis="y", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


def _page(data: dict, charts: list[Path]) -> str:
    esc = html.escape
    images = "".join(
        f"<img alt='{esc(p.stem)}' src='data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}'>"
        for p in charts
    )
    totals, currency = data["totals"], data["currency"]
    cost_rows = "".join(
        f"<tr><td>{esc(k)}</td><td>{v:,.2f} {esc(currency)}</td></tr>" for k, v in totals["cost"].items()
    )
    header = "".join(f"<th>{esc(c)}</th>" for c in ["day", *data["sends"], "MQL", "SQL", "won"])
    body = "".join(
        "<tr>"
        + f"<td>{esc(day)}</td>"
        + "".join(f"<td>{data['sends'][c][i]}</td>" for c in data["sends"])
        + f"<td>{data['mql'][i]}</td><td>{data['sql'][i]}</td><td>{data['won'][i]}</td></tr>"
        for i, day in enumerate(data["dates"])
    )
    outcome = "".join(f"<li>{esc(k)}: {v}</li>" for k, v in data["outcome"].items())
    zones = ", ".join(f"{k} ×{v:g}" for k, v in data["timezones"].items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Simulation: {esc(data["cadence"])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #1f2933; }}
img {{ max-width: 100%; display: block; margin: 1rem 0; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .2rem .6rem; border-bottom: 1px solid #e4e7eb; text-align: right; }}
td:first-child, th:first-child {{ text-align: left; }}
</style></head><body>
<h1>Simulation of {esc(data["cadence"])}</h1>
<p>{data["contacts"]} contacts over {data["days"]} days from {esc(data["start"])}, seed {data["seed"]},
timezones {esc(zones)}; days in {esc(data["report_timezone"])}.</p>
<p>MQL {totals["mql"]} · SQL {totals["sql"]} · won {totals["won"]} · revenue {totals["revenue"]:,.2f} {esc(currency)}
· cost {totals["cost"]["total"]:,.2f} {esc(currency)}</p>
{images}
<h2>Per day</h2><table><tr>{header}</tr>{body}</table>
<h2>Cost</h2><table>{cost_rows}</table>
<h2>Where contacts ended</h2><ul>{outcome}</ul>
<p><small>Agents needed: Erlang C per queue and day; delays are exponential with the model's means;
the engine and send-time rules are the workflow's own.</small></p>
</body></html>
"""
