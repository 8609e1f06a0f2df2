"""Cadence conditions: a small, safe expression language compiled once and checked at load.

Marketers write Python-like expressions (`score >= 10`, `not opened('invite')`,
`disposition in ['qualified', 'appointment_set']`). We parse them with `ast` and accept only a
whitelist of node types, names and functions, then evaluate the tree ourselves: nothing is ever
passed to `eval`, attribute access is limited to the contact and facts, and every step id named
in a function call is checked against the cadence when it is loaded.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

STEP_FUNCTIONS = ("delivered", "opened", "clicked")
FUNCTIONS = (*STEP_FUNCTIONS, "replied", "event")
VARIABLES = ("score", "disposition", "attempts", "contact", "facts")
CONTACT_FIELDS = (
    "external_id",
    "name",
    "email",
    "phone",
    "whatsapp",
    "country",
    "timezone",
    "locale",
    "attributes",
)


class ConditionError(ValueError):
    """A condition that cannot be compiled; `column` is 1-based within the expression text."""

    def __init__(self, message: str, column: int = 1):
        super().__init__(message)
        self.message = message
        self.column = column


class ConditionFacts(Protocol):
    """What a condition can see of an enrollment; the engine and the simulator provide it."""

    score: int
    disposition: str | None
    attempts: int
    contact: Mapping[str, Any]
    facts: Mapping[str, Any]

    def step_has(self, what: str, step_id: str) -> bool: ...
    def has_event(self, name: str) -> bool: ...


@dataclass(frozen=True)
class Condition:
    """A compiled condition; `steps` and `events` are the step ids and event names it reads."""

    source: str
    steps: frozenset[str]
    events: frozenset[str]
    _evaluate: Callable[[ConditionFacts], Any]

    def __call__(self, view: ConditionFacts) -> bool:
        return bool(self._evaluate(view))


_COMPARE = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: _ordered(a, b) and a < b,
    ast.LtE: lambda a, b: _ordered(a, b) and a <= b,
    ast.Gt: lambda a, b: _ordered(a, b) and a > b,
    ast.GtE: lambda a, b: _ordered(a, b) and a >= b,
    ast.In: lambda a, b: b is not None and a in b,
    ast.NotIn: lambda a, b: b is None or a not in b,
}


def _ordered(a: Any, b: Any) -> bool:
    """Ordering against a missing value (None) or across types is simply false, never an error."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return True
    return type(a) is type(b) and a is not None


class _Compiler:
    def __init__(self, source: str):
        self.source = source
        self.steps: set[str] = set()
        self.events: set[str] = set()

    def fail(self, node: ast.AST, message: str) -> ConditionError:
        return ConditionError(message, getattr(node, "col_offset", 0) + 1)

    def compile(self, node: ast.AST) -> Callable[[ConditionFacts], Any]:
        if isinstance(node, ast.BoolOp):
            parts = [self.compile(v) for v in node.values]
            if isinstance(node.op, ast.And):
                return lambda v: all(p(v) for p in parts)
            return lambda v: any(p(v) for p in parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.compile(node.operand)
            return lambda v: not inner(v)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
            value = -node.operand.value
            return lambda v: value
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Constant) and isinstance(node.value, str | int | float | bool | type(None)):
            value = node.value
            return lambda v: value
        if isinstance(node, ast.List | ast.Tuple):
            items = [self.compile(e) for e in node.elts]
            return lambda v: [item(v) for item in items]
        if isinstance(node, ast.Name):
            return self._name(node)
        if isinstance(node, ast.Attribute):
            return self._attribute(node)
        if isinstance(node, ast.Call):
            return self._call(node)
        raise self.fail(node, f"'{ast.unparse(node)}' is not allowed in a condition")

    def _compare(self, node: ast.Compare) -> Callable[[ConditionFacts], Any]:
        left = self.compile(node.left)
        pairs = []
        for op, right in zip(node.ops, node.comparators, strict=True):
            if type(op) not in _COMPARE:
                raise self.fail(node, f"comparison '{ast.unparse(node)}' uses an operator that is not allowed")
            pairs.append((_COMPARE[type(op)], self.compile(right)))

        def evaluate(view: ConditionFacts) -> bool:
            current = left(view)
            for op, right in pairs:
                other = right(view)
                if not op(current, other):
                    return False
                current = other
            return True

        return evaluate

    def _name(self, node: ast.Name) -> Callable[[ConditionFacts], Any]:
        name = node.id
        if name in ("True", "False", "None"):
            value = {"True": True, "False": False, "None": None}[name]
            return lambda v: value
        if name == "score":
            return lambda v: v.score
        if name == "disposition":
            return lambda v: v.disposition
        if name == "attempts":
            return lambda v: v.attempts
        if name in ("contact", "facts"):
            raise self.fail(node, f"'{name}' needs a field, e.g. {name}.country")
        if name in FUNCTIONS:
            raise self.fail(node, f"'{name}' is a function: call it, e.g. {name}(...)")
        known = ", ".join(VARIABLES)
        raise self.fail(node, f"unknown name '{name}'; conditions may use {known} and {', '.join(FUNCTIONS)}()")

    def _attribute(self, node: ast.Attribute) -> Callable[[ConditionFacts], Any]:
        chain: list[str] = []
        base: ast.AST = node
        while isinstance(base, ast.Attribute):
            chain.insert(0, base.attr)
            base = base.value
        if not isinstance(base, ast.Name) or base.id not in ("contact", "facts"):
            raise self.fail(node, f"'{ast.unparse(node)}': only contact.<field> and facts.<name> can be read")
        if any(part.startswith("_") for part in chain):
            raise self.fail(node, "names starting with '_' are not allowed")
        if base.id == "contact":
            if chain[0] not in CONTACT_FIELDS:
                raise self.fail(node, f"unknown contact field '{chain[0]}'; known: {', '.join(CONTACT_FIELDS)}")
            if chain[0] == "attributes" and len(chain) != 2:
                raise self.fail(node, "write contact.attributes.<name>")
            if chain[0] != "attributes" and len(chain) != 1:
                raise self.fail(node, f"contact.{chain[0]} has no fields")
            return lambda v: _dig(v.contact, chain)
        return lambda v: _dig(v.facts, chain)

    def _call(self, node: ast.Call) -> Callable[[ConditionFacts], Any]:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise self.fail(
                node,
                f"'{ast.unparse(node.func)}' is not a condition function; use one of "
                + ", ".join(f"{f}()" for f in FUNCTIONS),
            )
        name = node.func.id
        if node.keywords:
            raise self.fail(node, f"{name}() takes no keyword arguments")
        wanted = 0 if name == "replied" else 1
        args = node.args
        if len(args) != wanted or not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args):
            form = "replied()" if wanted == 0 else f"{name}('{'name' if name == 'event' else 'step-id'}')"
            raise self.fail(node, f"write {form} with a quoted text argument")
        if name == "replied":
            return lambda v: v.has_event("replied")
        arg = args[0].value
        if name == "event":
            self.events.add(arg)
            return lambda v: v.has_event(arg)
        self.steps.add(arg)
        return lambda v: v.step_has(name, arg)


def _dig(data: Mapping[str, Any] | None, chain: list[str]) -> Any:
    current: Any = data
    for part in chain:
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


@lru_cache(maxsize=1024)
def compile_condition(source: str) -> Condition:
    """Compile a condition or raise ConditionError with a column and a message saying how to fix it."""
    if not isinstance(source, str) or not source.strip():
        raise ConditionError('a condition must be a non-empty expression, e.g. "score >= 10"')
    text = source.strip()
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise ConditionError(f"syntax error in condition: {exc.msg}", exc.offset or 1) from exc
    compiler = _Compiler(text)
    evaluate = compiler.compile(tree.body)
    return Condition(text, frozenset(compiler.steps), frozenset(compiler.events), evaluate)
