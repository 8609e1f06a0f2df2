"""The action trace: one line per engine command, the same in the workflow and in the simulator.

`simulate` is honest because a test replays the same scripted story through the `contact-cadence`
workflow and through the simulator and compares these lines; both drivers must therefore describe
their commands with this one function.
"""

from __future__ import annotations

from datetime import datetime

from core import engine


def describe(command: engine.Command, now: datetime) -> str:
    """One line per command: `<now> send|wait|task|finish ...`, time stamps to the second."""
    stamp = now.isoformat(timespec="seconds")
    if isinstance(command, engine.Send):
        return f"{stamp} send {command.step_id} {command.channel} variant={command.variant}"
    if isinstance(command, engine.Wait):
        until = command.until.isoformat(timespec="seconds") if command.until else "-"
        return f"{stamp} wait {command.reason} until={until}"
    if isinstance(command, engine.CreateTask):
        return f"{stamp} task {command.kind} {command.queue}"
    return f"{stamp} finish {command.status} {command.reason}"
