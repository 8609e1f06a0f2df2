"""Can a cadence condition ever be true where it is written? (for `omnireach lint`)

A condition is compiled by core.conditions and then evaluated here over every "world" an enrollment could
be in at that point of the cadence: the score (around each number the condition compares it with), the
disposition (none, or one an agent may have recorded while the enrollment still runs), attempts, what
each earlier send step saw (nothing, delivered, opened, clicked), each custom event (happened or not),
and contact fields (the values the condition compares them with, or anything else). Facts are the
cadence's own values. If no world makes it true, it never will be.

Limits the analysis knows about (so they never cause a false alarm):
- events that end the enrollment (`exit_on`) are never seen by an `if` or a route's `when` while it runs;
  in a wait's `until` they do end the wait (by ending the enrollment), so they count as possible there;
- dispositions that end the enrollment (not_interested, do_not_call, won, lost) are never seen while it runs;
- a disposition exists only if a call task can come before the condition (a call step earlier, or an
  escalation, which can happen at any time);
- the score and the events are treated as independent (an over-approximation: it can only miss a
  contradiction, never invent one). Too many combinations (over 50,000) are not judged at all.
"""

from __future__ import annotations

import ast
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.conditions import STEP_FUNCTIONS, compile_condition
from core.engine import DISPOSITIONS, ENDING_DISPOSITIONS, event_kind
from core.model import Cadence, CallStep, SendStep

MAX_WORLDS = 50_000
_LEVELS = ((), ("delivered",), ("delivered", "opened"), ("delivered", "opened", "clicked"))
_OTHER = "\x00other"  # a contact value different from every constant in the condition


@dataclass
class Verdict:
    """`possible` False means never true; `reasons` say why, in the marketer's terms."""

    possible: bool
    reasons: list[str] = field(default_factory=list)


@dataclass
class _World:
    score: int
    disposition: str | None
    attempts: int
    contact: dict[str, Any]
    facts: Mapping[str, Any]
    steps: dict[str, tuple[str, ...]]
    events: dict[str, bool]
    replied_any: bool

    def step_has(self, what: str, step_id: str) -> bool:
        return what in self.steps.get(step_id, ())

    def has_event(self, name: str) -> bool:
        if name == "replied":
            return self.replied_any
        return self.events.get(name, False)


def can_be_true(cadence: Cadence, text: str, *, position: int | None, kind: str) -> Verdict:
    """Judge `text` written as `kind` (if, until or when) at step `position` (None: a route, any time)."""
    condition = compile_condition(text)
    tree = ast.parse(text.strip(), mode="eval")
    numbers, strings, paths = _constants(tree)
    send_ids = [s.id for s in cadence.steps if isinstance(s, SendStep)]
    before = (
        {s.id for s in cadence.steps[:position] if isinstance(s, SendStep)} if position is not None else set(send_ids)
    )
    exits = set(cadence.exit_on)
    exit_sees = kind == "until"  # an exit event does end a wait (see the module docstring)
    reasons: list[str] = []

    step_levels: dict[str, list[tuple[str, ...]]] = {}
    for step_id in sorted(condition.steps):
        if step_id in before:
            step_levels[step_id] = list(_LEVELS)
        else:
            step_levels[step_id] = [()]
            later = step_id in send_ids
            reasons.append(
                f"step '{step_id}' comes later, so it has sent nothing when this is checked"
                if later
                else f"step '{step_id}' sends nothing"
            )
    event_values: dict[str, list[bool]] = {}
    for name in sorted(condition.events):
        if not exit_sees and (name in exits or event_kind(name) in exits):
            event_values[name] = [False]
            reasons.append(f"'{name}' is in exit_on: it ends the enrollment before this is checked")
        else:
            event_values[name] = [False, True]
    replied_values = [False] if ("replied" in exits and not exit_sees) else [False, True]
    if replied_values == [False] and "replied()" in text.replace(" ", ""):
        reasons.append("'replied' is in exit_on: a reply ends the enrollment before this is checked")

    tasks_possible = cadence.escalate is not None or any(
        isinstance(s, CallStep) for s in (cadence.steps if position is None else cadence.steps[:position])
    )
    running = sorted(DISPOSITIONS - set(ENDING_DISPOSITIONS))
    dispositions: list[str | None] = [None, *running] if tasks_possible else [None]
    for value in strings:
        if value in ENDING_DISPOSITIONS and _compares_disposition(tree, value):
            reasons.append(f"disposition '{value}' ends the enrollment, so it is never seen while it runs")
        elif value not in DISPOSITIONS and _compares_disposition(tree, value) and value not in dispositions:
            reasons.append(f"'{value}' is not a disposition an agent can record")
    if not tasks_possible and _mentions(tree, "disposition"):
        reasons.append("no call task can come before this point, so there is no disposition yet")
    scores = _score_candidates(cadence, numbers)
    attempts = (
        sorted({0, *(n for n in numbers if n >= 0), *(n + 1 for n in numbers if n >= 0)}) if tasks_possible else [0]
    )
    contact_values = {path: [None, _OTHER, *strings, *numbers] for path in paths}

    axes: list[list[Any]] = [scores, dispositions, attempts, replied_values]
    axes += [step_levels[k] for k in sorted(step_levels)]
    axes += [event_values[k] for k in sorted(event_values)]
    axes += [contact_values[p] for p in sorted(contact_values)]
    total = 1
    for axis in axes:
        total *= max(1, len(axis))
    if total > MAX_WORLDS:
        return Verdict(True)
    step_keys, event_keys, path_keys = sorted(step_levels), sorted(event_values), sorted(contact_values)
    for combo in itertools.product(*axes):
        score, disposition, attempt, replied_any, *rest = combo
        steps = dict(zip(step_keys, rest[: len(step_keys)], strict=True))
        rest = rest[len(step_keys) :]
        events = dict(zip(event_keys, rest[: len(event_keys)], strict=True))
        contact = _contact(dict(zip(path_keys, rest[len(event_keys) :], strict=True)))
        world = _World(score, disposition, attempt, contact, cadence.facts, steps, events, replied_any)
        if condition(world):
            return Verdict(True)
    if _mentions(tree, "score") and all(p >= 0 for p in cadence.score.values()):
        reasons.append("no score makes it true (the score starts at 0 and every score rule adds points)")
    used = sorted({".".join(p) for p in _fact_paths(tree)})
    if used:
        reasons.append("facts are fixed: " + ", ".join(f"facts.{u} is {_fact(cadence.facts, u)!r}" for u in used))
    return Verdict(False, reasons)


def _fact_paths(tree: ast.AST) -> list[tuple[str, ...]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain: list[str] = []
            base: ast.AST = node
            while isinstance(base, ast.Attribute):
                chain.insert(0, base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id == "facts":
                found.append(tuple(chain))
    longest = [p for p in found if not any(len(q) > len(p) and q[: len(p)] == p for q in found)]
    return longest


def _fact(facts: Mapping[str, Any], dotted: str) -> Any:
    value: Any = facts
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, Mapping) else None
    return value


def _score_candidates(cadence: Cadence, numbers: list[int]) -> list[int]:
    points = list(cadence.score.values())
    low = 0 if all(p >= 0 for p in points) else None
    high = 0 if all(p <= 0 for p in points) else None
    candidates = {0}
    for n in numbers:
        candidates.update((n - 1, n, n + 1))
    return sorted(c for c in candidates if (low is None or c >= low) and (high is None or c <= high))


def _constants(tree: ast.AST) -> tuple[list[int], list[str], list[tuple[str, ...]]]:
    numbers: set[int] = set()
    strings: set[str] = set()
    paths: set[tuple[str, ...]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, bool):
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
            numbers.add(int(node.value))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            strings.add(node.value)
        elif isinstance(node, ast.Attribute):
            chain: list[str] = []
            base: ast.AST = node
            while isinstance(base, ast.Attribute):
                chain.insert(0, base.attr)
                base = base.value
            if isinstance(base, ast.Name) and base.id == "contact":
                paths.add(tuple(chain))
    call_args = {
        a.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in (*STEP_FUNCTIONS, "event")
        for a in n.args
        if isinstance(a, ast.Constant)
    }
    negative = {-n for n in numbers}
    return sorted(numbers | negative), sorted(strings - call_args), sorted(p for p in paths if p)


def _contact(values: dict[tuple[str, ...], Any]) -> dict[str, Any]:
    contact: dict[str, Any] = {"attributes": {}}
    for path, value in values.items():
        if len(path) == 2 and path[0] == "attributes":
            contact["attributes"][path[1]] = value
        else:
            contact[path[0]] = value
    return contact


def _mentions(tree: ast.AST, name: str) -> bool:
    return any(isinstance(n, ast.Name) and n.id == name for n in ast.walk(tree))


def _compares_disposition(tree: ast.AST, value: str) -> bool:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        if not any(isinstance(o, ast.Name) and o.id == "disposition" for o in operands):
            continue
        for operand in operands:
            items = operand.elts if isinstance(operand, ast.List | ast.Tuple) else [operand]
            if any(isinstance(i, ast.Constant) and i.value == value for i in items):
                return True
    return False
