"""Pydantic's validation errors of a cadence, as `path:line:col` messages a marketer can act on.

Each error points at the key (unknown keys), the value (wrong values) or inside the condition text
(condition errors), names the key it is about, and says what to write instead: the allowed keys
with a close match, the field's meaning for a missing key, the accepted form of a value.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from core.conditions import ConditionError
from core.model import STEP_KIND_HELP, Cadence, CallStep, Caps, Route, SendStep, WaitStep, Window
from core.yamlsource import LocatedDocument, SourceError

_STEP_CLASSES: dict[str, type[BaseModel]] = {"send": SendStep, "wait": WaitStep, "call": CallStep}
_SECTIONS: dict[str, type[BaseModel]] = {"window": Window, "caps": Caps, "escalate": Route, "handoff": Route}


def schema_errors(exc: ValidationError, doc: LocatedDocument) -> list[tuple[tuple, SourceError]]:
    """(location, error) for each problem pydantic found; the location lets callers drop duplicates."""
    errors = []
    for err in exc.errors(include_url=False):
        loc = _clean_loc(err["loc"])
        kind = err["type"]
        if loc and loc[-1] == "[key]":  # a mapping key that is not allowed, e.g. a score name
            loc = loc[:-1]
            message = f"{where(loc[:-1])} key '{loc[-1]}': {_friendly(err, loc)}"
            errors.append((loc, doc.error(loc, message.replace(f" (got {err['input']!r})", ""), key=True)))
            continue
        if kind == "extra_forbidden":
            message = f"unknown key '{loc[-1]}'" + _allowed_keys_hint(doc, loc[:-1], str(loc[-1]))
            errors.append((loc, doc.error(loc, message, key=True)))
            continue
        if kind == "missing":
            model = _model_at(doc, loc[:-1])
            about = _field_help(model, str(loc[-1])) if model else ""
            errors.append((loc, doc.error(loc[:-1], f"missing required key '{loc[-1]}'{about}")))
            continue
        if kind == "step_kind":
            errors.append((loc, doc.error(loc, _step_kind_message(doc, loc))))
            continue
        problem = (err.get("ctx") or {}).get("error")
        if isinstance(problem, ConditionError):
            pos = doc.position_in_text(loc, problem.column - 1)
            errors.append((loc, SourceError(doc.path, pos.line, pos.column, f"{where(loc)}: {problem.message}")))
            continue
        errors.append((loc, doc.error(loc, f"{where(loc)}: {_friendly(err, loc)}")))
    return errors


def _clean_loc(loc: tuple) -> tuple:
    """Drop pydantic's union tags (`steps.2.send.message` -> `steps.2.message`) and use YAML key names."""
    cleaned: list[Any] = []
    for i, part in enumerate(loc):
        if part in ("send", "wait", "call") and i == 2 and loc[0] == "steps" and isinstance(loc[1], int):
            continue
        cleaned.append("if" if part == "if_" else part)
    return tuple(cleaned)


def where(loc: tuple) -> str:
    """The key a message is about: `per_day`, `score 'email.opened'`, `variants 'a'`."""
    keys = [p for p in loc if isinstance(p, str)]
    if not keys:
        return "document"
    if len(keys) >= 2 and keys[-2] in ("score", "variants", "facts") and loc[-1] == keys[-1]:
        return f"{keys[-2]} '{keys[-1]}'"
    if isinstance(loc[-1], int):
        return f"{keys[-1]} item {loc[-1] + 1}"
    return keys[-1]


def _model_at(doc: LocatedDocument, loc: tuple) -> type[BaseModel] | None:
    """The model class that describes the mapping at `loc`, if it is one of ours."""
    if loc == ():
        return Cadence
    if len(loc) == 1 and loc[0] in _SECTIONS:
        return _SECTIONS[loc[0]]
    if len(loc) == 2 and loc[0] == "steps" and isinstance(loc[1], int):
        raw = _value(doc.data, loc)
        if isinstance(raw, dict):
            kinds = [k for k in ("send", "wait", "call") if k in raw]
            if len(kinds) == 1:
                return _STEP_CLASSES[kinds[0]]
    return None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _allowed_keys_hint(doc: LocatedDocument, parent: tuple, key: str) -> str:
    model = _model_at(doc, parent)
    if model is None:
        return ""
    allowed = _keys_of(model)
    close = _close_match(key, allowed)
    suggestion = f" (did you mean '{close}'?)" if close else ""
    if model in _STEP_CLASSES.values():
        kind = next(k for k, c in _STEP_CLASSES.items() if c is model)
        return f"{suggestion}; a {kind} step allows {', '.join(allowed)}"
    return f"{suggestion}; allowed: {', '.join(allowed)}"


def _close_match(key: str, options: list[str]) -> str | None:
    found = difflib.get_close_matches(key, options, n=1, cutoff=0.75)
    return found[0] if found else None


def _field_help(model: type[BaseModel], name: str) -> str:
    info = model.model_fields.get("if_" if name == "if" else name)
    description = info.description if info else None
    return f" ({description[0].lower()}{description[1:].rstrip('.')})" if description else ""


def _step_kind_message(doc: LocatedDocument, loc: tuple) -> str:
    raw = _value(doc.data, loc)
    if not isinstance(raw, dict):
        return f"{STEP_KIND_HELP}: write each step as a mapping such as `- wait: 2d`"
    kinds = [k for k in ("send", "wait", "call") if k in raw]
    if kinds:
        return f"{STEP_KIND_HELP}; this one has {' and '.join(kinds)}: split it into {len(kinds)} steps"
    keys = ", ".join(map(str, raw)) or "nothing"
    return f"{STEP_KIND_HELP}; this one has {keys}: add send: <channel>, wait: <duration> or call: <queue>"


_TYPE_HELP = {
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "list_type": "must be a list, e.g. [a, b]",
    "dict_type": "must be a mapping (key: value lines)",
    "model_type": "must be a mapping (key: value lines)",
    "model_attributes_type": "must be a mapping (key: value lines)",
}


def _friendly(err: dict[str, Any], loc: tuple) -> str:
    kind, value, ctx = err["type"], err["input"], err.get("ctx") or {}
    message = _TYPE_HELP.get(kind) or err["msg"]
    if kind == "string_type":
        message = f"must be text, not {value!r}"
        if isinstance(value, bool):
            message += "; yes/no/on/off/true/false are read as true or false, so put the text in quotes"
        elif isinstance(value, int | float):
            message += "; put it in quotes"
    elif kind == "literal_error":
        message = f"must be one of {ctx.get('expected', '')}".replace(" or ", ", ")
    elif kind == "string_pattern_mismatch":
        message = _pattern_help(str(ctx.get("pattern", "")), loc)
    elif kind in ("greater_than_equal", "greater_than"):
        message = f"must be at least {ctx.get('ge', ctx.get('gt'))}"
    elif kind in ("less_than_equal", "less_than"):
        message = f"must be at most {ctx.get('le', ctx.get('lt'))}"
    elif kind in ("too_short", "string_too_short"):
        message = "needs at least one step" if loc == ("steps",) else "must not be empty"
    elif kind in ("too_long", "string_too_long"):
        message = f"is too long (at most {ctx.get('max_length')})"
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if isinstance(value, dict | list) or repr(value) in message:
        return message
    return f"{message} (got {value!r})"


def _pattern_help(pattern: str, loc: tuple) -> str:
    if "a-z0-9_." in pattern:
        return "use lower-case letters, digits, '_', '.' and '-' (start with a letter or digit), e.g. email.opened"
    if "a-z0-9-" in pattern:
        return "use lower-case letters, digits and '-' (start with a letter or digit), e.g. webinar-invite"
    if loc and loc[-1] == "locale":
        return "must be a language tag such as en, id or pt-BR"
    return f"must match {pattern}"


def _value(data: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data
