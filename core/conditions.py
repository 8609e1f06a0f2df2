"""Cadence conditions: a small, safe expression language compiled once and checked at load.

Marketers write Python-like expressions (`score >= 10`, `not opened('invite')`,
`disposition in ['qualified', 'appointment_set']`). We parse them with `ast` and accept only a
whitelist of node types, names and functions, then evaluate the tree ourselves: nothing is ever
passed to `eval`, attribute access is limited to the contact and facts, and every step id, fact
name and disposition a condition names is recorded with its column so the loader can check it
against the cadence and point at it. Evaluation never raises: comparing a missing value or
values of different types is simply false.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

STEP_FUNCTIONS = ("delivered", "opened", "clicked")
FUNCTIONS = (*STEP_FUNCTIONS, "replied", "event")
VARIABLES = ("score", "disposition", "attempts", "contact", "facts")
# What the engine shows conditions of a contact (core.engine.ContactProfile): no names or addresses.
CONTACT_FIELDS = ("external_id", "country", "timezone", "locale", "attributes")
_ADDRESS_FIELDS = ("name", "email", "phone", "whatsapp")
MAX_LENGTH = 1000
_EXAMPLE = "\"score >= 10 and not opened('invite')\""


class ConditionError(ValueError):
    """A condition that cannot be compiled; `column` is 1-based within the condition text as given."""

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
class Reference:
    """Something a condition names that the cadence must provide: kind is step, fact or disposition.

    For a fact, `name` is the dotted path after `facts.` (`offer` or `prices.basic`).
    `column` is 1-based within the condition text as given.
    """

    kind: str
    name: str
    column: int


@dataclass(frozen=True)
class Condition:
    """A compiled condition; `steps` and `events` are the step ids and event names it reads."""

    source: str
    steps: frozenset[str]
    events: frozenset[str]
    _evaluate: Callable[[ConditionFacts], Any]
    references: tuple[Reference, ...] = ()

    def __call__(self, view: ConditionFacts) -> bool:
        return bool(self._evaluate(view))


def _ordered(a: Any, b: Any) -> bool:
    """Ordering is defined between numbers, or between texts; anything else (None, lists) is false."""
    numbers = (int, float)
    if isinstance(a, numbers) and isinstance(b, numbers):
        return True
    return isinstance(a, str) and isinstance(b, str)


def _contains(item: Any, container: Any) -> bool:
    if not isinstance(container, str | list | tuple | dict):
        return False
    if isinstance(container, str) and not isinstance(item, str):
        return False
    try:
        return item in container
    except TypeError:  # e.g. a list looked up in a mapping
        return False


_COMPARE: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: lambda a, b: a == b,
    ast.NotEq: lambda a, b: a != b,
    ast.Lt: lambda a, b: _ordered(a, b) and a < b,
    ast.LtE: lambda a, b: _ordered(a, b) and a <= b,
    ast.Gt: lambda a, b: _ordered(a, b) and a > b,
    ast.GtE: lambda a, b: _ordered(a, b) and a >= b,
    ast.In: _contains,
    ast.NotIn: lambda a, b: not _contains(a, b),
}
_REFUSED = {
    ast.Subscript: "indexing ([...]) is not allowed; read facts.<name> or contact.attributes.<name> instead",
    ast.Lambda: "lambda is not allowed in a condition",
    ast.ListComp: "comprehensions are not allowed in a condition",
    ast.SetComp: "comprehensions are not allowed in a condition",
    ast.DictComp: "comprehensions are not allowed in a condition",
    ast.GeneratorExp: "comprehensions are not allowed in a condition",
    ast.NamedExpr: "':=' is not allowed; a condition only reads values",
    ast.JoinedStr: "f-strings are not allowed; write plain quoted text",
    ast.BinOp: "arithmetic is not allowed; compare values directly, e.g. score >= 10",
    ast.IfExp: "'x if y else z' is not allowed; combine conditions with and / or",
    ast.Await: "'await' is not allowed in a condition",
    ast.Starred: "'*' is not allowed in a condition",
    ast.Dict: "mappings ({...}) are not allowed; use a list such as ['a', 'b']",
    ast.Set: "sets ({...}) are not allowed; use a list such as ['a', 'b']",
}


class _Compiler:
    def __init__(self, text: str, lead: int):
        self.encoded = text.encode("utf-8")
        self.lead = lead  # characters stripped from the start of the source
        self.steps: set[str] = set()
        self.events: set[str] = set()
        self.references: list[Reference] = []

    def column(self, node: ast.AST) -> int:
        """1-based character column in the original source (ast counts UTF-8 bytes)."""
        offset = getattr(node, "col_offset", 0) or 0
        return self.lead + len(self.encoded[:offset].decode("utf-8", errors="ignore")) + 1

    def fail(self, node: ast.AST, message: str) -> ConditionError:
        return ConditionError(message, self.column(node))

    def compile(self, node: ast.AST) -> Callable[[ConditionFacts], Any]:
        if isinstance(node, ast.BoolOp):
            parts = [self.compile(v) for v in node.values]
            if isinstance(node.op, ast.And):
                return lambda v: all(p(v) for p in parts)
            return lambda v: any(p(v) for p in parts)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            inner = self.compile(node.operand)
            return lambda v: not inner(v)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand = node.operand
            if not (isinstance(operand, ast.Constant) and type(operand.value) in (int, float)):
                raise self.fail(node, "a sign (- or +) is only allowed before a number, e.g. score > -5")
            number = -operand.value if isinstance(node.op, ast.USub) else operand.value
            return lambda v: number
        if isinstance(node, ast.Compare):
            return self._compare(node)
        if isinstance(node, ast.Constant):
            if type(node.value) not in (str, int, float, bool, type(None)):
                raise self.fail(
                    node,
                    f"{ast.unparse(node)} is not a value a condition can use; use quoted text, a number, "
                    "True, False or None",
                )
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
        reason = _REFUSED.get(type(node))
        if reason is not None:
            raise self.fail(node, reason)
        raise self.fail(node, f"'{ast.unparse(node)}' is not allowed in a condition")

    def _compare(self, node: ast.Compare) -> Callable[[ConditionFacts], Any]:
        left = self.compile(node.left)
        pairs = []
        operands = [node.left, *node.comparators]
        for i, (op, right) in enumerate(zip(node.ops, node.comparators, strict=True)):
            if type(op) not in _COMPARE:
                word = "is" if isinstance(op, ast.Is | ast.IsNot) else "this operator"
                raise self.fail(right, f"'{word}' is not allowed in a comparison; use ==, !=, <, <=, >, >=, in, not in")
            pairs.append((_COMPARE[type(op)], self.compile(right)))
            self._note_dispositions(operands[i], right)
            self._note_dispositions(right, operands[i])

        def evaluate(view: ConditionFacts) -> bool:
            current = left(view)
            for op, right in pairs:
                other = right(view)
                if not op(current, other):
                    return False
                current = other
            return True

        return evaluate

    def _note_dispositions(self, subject: ast.AST, other: ast.AST) -> None:
        """Record the texts `disposition` is compared with, so the loader can catch typos."""
        if not (isinstance(subject, ast.Name) and subject.id == "disposition"):
            return
        values = other.elts if isinstance(other, ast.List | ast.Tuple) else [other]
        for value in values:
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                self.references.append(Reference("disposition", value.value, self.column(value) + 1))

    def _name(self, node: ast.Name) -> Callable[[ConditionFacts], Any]:
        name = node.id
        if name in ("score", "disposition", "attempts"):
            return lambda v: getattr(v, name)
        if name in ("contact", "facts"):
            raise self.fail(node, f"'{name}' needs a field, e.g. {name}.{'country' if name == 'contact' else 'offer'}")
        if name in FUNCTIONS:
            raise self.fail(node, f"'{name}' is a function: call it, e.g. {_form(name)}")
        lowered = {"true": "True", "false": "False", "none": "None", "null": "None"}.get(name.lower())
        if lowered:
            raise self.fail(node, f"unknown name '{name}'; write {lowered}")
        known = ", ".join(VARIABLES)
        functions = ", ".join(f"{f}()" for f in FUNCTIONS)
        raise self.fail(
            node, f"unknown name '{name}'; conditions may use {known} and {functions} (put text in quotes: '{name}')"
        )

    def _attribute(self, node: ast.Attribute) -> Callable[[ConditionFacts], Any]:
        chain: list[str] = []
        base: ast.AST = node
        while isinstance(base, ast.Attribute):
            chain.insert(0, base.attr)
            base = base.value
        if not isinstance(base, ast.Name) or base.id not in ("contact", "facts"):
            raise self.fail(node, f"only contact.<field> and facts.<name> can be read, not {ast.unparse(node)}")
        if any(part.startswith("_") for part in chain):
            raise self.fail(node, "names starting with '_' are not allowed")
        if base.id == "contact":
            field = chain[0]
            if field in _ADDRESS_FIELDS:
                raise self.fail(
                    node,
                    f"contact.{field} is not visible to conditions (addresses and consent are checked at send "
                    "time); use contact.attributes.<name> for your own data",
                )
            if field not in CONTACT_FIELDS:
                raise self.fail(node, f"unknown contact field '{field}'; known: {', '.join(CONTACT_FIELDS)}")
            if field == "attributes" and len(chain) != 2:
                raise self.fail(node, "write contact.attributes.<name>, e.g. contact.attributes.plan")
            if field != "attributes" and len(chain) != 1:
                raise self.fail(node, f"contact.{field} has no fields")
            return lambda v: _dig(v.contact, chain)
        self.references.append(Reference("fact", ".".join(chain), self.column(node)))
        return lambda v: _dig(v.facts, chain)

    def _call(self, node: ast.Call) -> Callable[[ConditionFacts], Any]:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise self.fail(
                node,
                f"'{ast.unparse(node.func)}' is not a condition function; use one of "
                + ", ".join(f"{f}()" for f in FUNCTIONS),
            )
        name = node.func.id
        args = node.args
        wanted = 0 if name == "replied" else 1
        if (
            node.keywords
            or len(args) != wanted
            or not all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in args)
        ):
            raise self.fail(node, f"write {_form(name)}" + (" with a quoted text argument" if wanted else ""))
        if name == "replied":
            return lambda v: v.has_event("replied")
        argument = args[0]
        assert isinstance(argument, ast.Constant)
        text: str = argument.value
        if name == "event":
            self.events.add(text)
            return lambda v: v.has_event(text)
        self.steps.add(text)
        self.references.append(Reference("step", text, self.column(argument) + 1))  # inside the quotes
        return lambda v: v.step_has(name, text)


def _form(name: str) -> str:
    if name == "replied":
        return "replied()"
    return f"{name}('webinar.registered')" if name == "event" else f"{name}('step-id')"


def _dig(data: Mapping[str, Any] | None, chain: list[str]) -> Any:
    current: Any = data
    for part in chain:
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def _syntax_error(text: str, lead: int, exc: SyntaxError) -> ConditionError:
    offset = exc.offset or 0
    if offset < 1 or offset > len(text):  # the parser reached the end: something is missing
        return ConditionError(
            "syntax error: the condition ends too early (a value, a closing bracket or quote is missing); "
            f"e.g. {_EXAMPLE}",
            lead + max(len(text), 1),
        )
    hints = (
        (r"&&", "write 'and' instead of '&&'"),
        (r"\|\|", "write 'or' instead of '||'"),
        (r"=>", "write '>=' instead of '=>'"),
        (r"=<", "write '<=' instead of '=<'"),
        (r"!(?!=)", "write 'not' instead of '!'"),
        (r"(?<![=!<>])=(?!=)", "write '==' to compare"),
    )
    message = (exc.msg or "invalid syntax").removesuffix(".")
    # Look for the mistake outside quoted text (same length, so positions stay right).
    masked = re.sub(r"'[^']*'|\"[^\"]*\"", lambda m: "_" * len(m.group()), text)
    for pattern, hint in hints:
        found = re.search(pattern, masked)
        if found:  # point at the mistake itself, e.g. the first '&' of '&&'
            return ConditionError(f"syntax error: {message}; {hint}", lead + found.start() + 1)
    return ConditionError(f"syntax error: {message}; e.g. {_EXAMPLE}", lead + offset)


@lru_cache(maxsize=1024)
def compile_condition(source: str) -> Condition:
    """Compile a condition or raise ConditionError with a column and a message saying how to fix it."""
    if not isinstance(source, str) or not source.strip():
        raise ConditionError(f"a condition must be a non-empty expression in quotes, e.g. {_EXAMPLE}")
    if len(source) > MAX_LENGTH:
        raise ConditionError(f"a condition may be at most {MAX_LENGTH} characters; split the logic into steps")
    lead = len(source) - len(source.lstrip())
    # Line breaks (from YAML block scalars) are spaces to us; same length, so columns stay right.
    text = re.sub(r"\s", " ", source.strip())
    try:
        tree = ast.parse(text, mode="eval")
    except SyntaxError as exc:
        raise _syntax_error(text, lead, exc) from None
    except (ValueError, RecursionError, MemoryError):  # null bytes, lone surrogates, absurd nesting
        raise ConditionError(f"the condition cannot be read; write an expression such as {_EXAMPLE}") from None
    compiler = _Compiler(text, lead)
    try:
        evaluate = compiler.compile(tree.body)
    except RecursionError:
        raise ConditionError("the condition is nested too deeply; simplify it") from None
    return Condition(
        source.strip(),
        frozenset(compiler.steps),
        frozenset(compiler.events),
        evaluate,
        tuple(compiler.references),
    )
