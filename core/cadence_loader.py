"""Turn cadence YAML text into a validated `Cadence`, or a complete list of `path:line:col` errors.

Validation runs in layers and reports everything it finds, not just the first problem:
YAML safety -> schema (pydantic) -> cross-references (step ids in conditions, duplicate ids) ->
content (messages, channel templates, scripts, queues, and a sample render of every template).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from core.conditions import STEP_FUNCTIONS, ConditionError, compile_condition
from core.messages import CHANNEL_PARTS, MessageCatalog, TemplateProblem, sample_context
from core.model import Cadence, CallStep, SendStep
from core.yamlsource import LocatedDocument, SourceError, YamlSourceError, load_located

DEFAULT_QUEUES = frozenset({"telemarketing", "telesales"})
_CONDITION_FIELDS = {"if", "until", "when"}


@dataclass
class CadenceLoad:
    path: str
    cadence: Cadence | None = None
    errors: list[SourceError] = field(default_factory=list)
    document: LocatedDocument | None = None

    @property
    def ok(self) -> bool:
        return self.cadence is not None and not self.errors


def parse_cadence(text: str, path: str) -> CadenceLoad:
    """Schema and cross-reference validation of one cadence file (no templates needed)."""
    result = CadenceLoad(path)
    try:
        doc = load_located(text, path)
    except YamlSourceError as exc:
        result.errors.append(exc.error)
        return result
    result.document = doc
    if not isinstance(doc.data, dict):
        result.errors.append(doc.error((), "a cadence file must be a mapping with id, name, purpose and steps"))
        return result
    lines = text.splitlines()
    try:
        cadence = Cadence.model_validate(doc.data)
    except ValidationError as exc:
        result.errors.extend(_schema_errors(exc, doc, lines))
        cadence = None
    result.errors.extend(_reference_errors(doc))
    if cadence is not None and not result.errors:
        result.cadence = cadence
    result.errors.sort(key=lambda e: (e.line, e.column))
    return result


def check_content(
    load: CadenceLoad,
    catalog: MessageCatalog,
    *,
    queues: Iterable[str] = DEFAULT_QUEUES,
    template_root: str = "templates",
) -> None:
    """Messages, channel templates, scripts and queues exist; every template renders with a sample."""
    cadence, doc = load.cadence, load.document
    if cadence is None or doc is None:
        return
    known_queues = set(queues)
    errors: list[SourceError] = []
    rendered: set[tuple[str, str]] = set()
    for index, step in enumerate(cadence.steps):
        here = ("steps", index)
        if isinstance(step, SendStep):
            for channel in filter(None, (step.send, step.fallback)):
                key = "send" if channel == step.send else "fallback"
                if not catalog.has_channel(step.message, channel):
                    parts = " and ".join(f"{template_root}/{step.message}/{p}" for p in _required(channel))
                    errors.append(
                        doc.error((*here, key), f"message '{step.message}' has no {channel} template; create {parts}")
                    )
                    continue
                for name in catalog.templates_of(step.message):
                    if (step.id, name) not in rendered and _part_channel(name) == channel:
                        rendered.add((step.id, name))
                        errors.extend(_render_check(catalog, name, cadence, step.id, doc, template_root))
        elif isinstance(step, CallStep):
            errors.extend(_route_refs(doc, catalog, here, step.call, step.script, known_queues, "call", template_root))
            errors.extend(_render_script(catalog, step.script, cadence, step.id, doc, here, template_root))
    for key in ("escalate", "handoff"):
        route = getattr(cadence, key)
        if route is not None:
            errors.extend(
                _route_refs(doc, catalog, (key,), route.queue, route.script, known_queues, "queue", template_root)
            )
            errors.extend(_render_script(catalog, route.script, cadence, key, doc, (key,), template_root))
    load.errors.extend(errors)
    load.errors.sort(key=lambda e: (e.path, e.line, e.column))
    if load.errors:
        load.cadence = None


def _required(channel: str) -> tuple[str, ...]:
    parts = CHANNEL_PARTS[channel]
    return parts[:2] if channel == "email" else parts


def _part_channel(template_name: str) -> str | None:
    leaf = template_name.rsplit("/", 1)[-1]
    for channel, parts in CHANNEL_PARTS.items():
        if leaf in parts or (channel == "whatsapp" and leaf == "whatsapp.yaml"):
            return channel
    return None


def _render_check(
    catalog: MessageCatalog, name: str, cadence: Cadence, step_id: str, doc: LocatedDocument, root: str
) -> list[SourceError]:
    if name.endswith(".yaml"):
        return []
    context = sample_context(cadence.id, cadence.name, cadence.facts, step_id, locale=cadence.locale)
    try:
        catalog.render_template(name, context)
    except TemplateProblem as problem:
        return [SourceError(f"{root}/{problem.template}", problem.line, 1, problem.message)]
    return []


def _render_script(
    catalog: MessageCatalog, script: str, cadence: Cadence, step_id: str, doc: LocatedDocument, where: tuple, root: str
) -> list[SourceError]:
    name = f"scripts/{script}.md.j2"
    if not catalog.exists(name):
        return []  # reported by _route_refs
    return _render_check(catalog, name, cadence, step_id, doc, root)


def _route_refs(
    doc: LocatedDocument,
    catalog: MessageCatalog,
    where: tuple,
    queue: str,
    script: str,
    queues: set[str],
    queue_key: str,
    root: str,
) -> list[SourceError]:
    errors = []
    if queue not in queues:
        errors.append(
            doc.error((*where, queue_key), f"unknown queue '{queue}'; known queues: {', '.join(sorted(queues))}")
        )
    if not catalog.exists(f"scripts/{script}.md.j2"):
        errors.append(
            doc.error((*where, "script"), f"call script '{script}' not found; create {root}/scripts/{script}.md.j2")
        )
    return errors


def _schema_errors(exc: ValidationError, doc: LocatedDocument, lines: list[str]) -> list[SourceError]:
    errors = []
    for err in exc.errors(include_url=False):
        loc = _clean_loc(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden":
            message = f"unknown key '{loc[-1]}'" + _allowed_keys_hint(doc, loc)
            errors.append(doc.error(loc, message, key=True))
            continue
        if kind == "missing":
            errors.append(doc.error(loc[:-1], f"missing required key '{loc[-1]}'"))
            continue
        message = _friendly(err)
        where = ".".join(str(p) for p in loc) or "document"
        source_error = doc.error(loc, f"{where}: {message}")
        ctx_error = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_error, ConditionError):
            source_error = _condition_position(source_error, doc, loc, lines, ctx_error)
        errors.append(source_error)
    return errors


def _clean_loc(loc: tuple) -> tuple:
    """Drop pydantic's union tags (`steps.2.send.message` -> `steps.2.message`)."""
    cleaned = []
    for i, part in enumerate(loc):
        if part in ("send", "wait", "call") and i >= 2 and loc[i - 2] == "steps" and isinstance(loc[i - 1], int):
            continue
        cleaned.append("if" if part == "if_" else part)
    return tuple(cleaned)


def _allowed_keys_hint(doc: LocatedDocument, loc: tuple) -> str:
    parent = loc[:-1]
    allowed = {
        (): Cadence,
    }.get(parent)
    if allowed is None and len(parent) == 1 and parent[0] in ("window", "caps", "escalate", "handoff"):
        from core import model

        allowed = {"window": model.Window, "caps": model.Caps, "escalate": model.Route, "handoff": model.Route}[
            parent[0]
        ]
    if allowed is None and len(parent) == 2 and parent[0] == "steps":
        return "; a step allows id, if and one of: send (message, variants, fallback), wait (until), call (script)"
    if allowed is None:
        return ""
    names = [f.alias or n for n, f in allowed.model_fields.items()]
    return f"; allowed: {', '.join(names)}"


def _friendly(err: dict[str, Any]) -> str:
    message = err["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    if err["type"] == "literal_error":
        message = message.replace("Input should be", "must be one of")
    if err["type"] == "string_pattern_mismatch" and "a-z0-9" in str(err.get("ctx", {}).get("pattern", "")):
        message = "use lower-case letters, digits and '-' (it must start with a letter or digit)"
    return f"{message} (got {err['input']!r})" if not isinstance(err["input"], dict | list) else message


def _condition_position(
    error: SourceError, doc: LocatedDocument, loc: tuple, lines: list[str], problem: ConditionError
) -> SourceError:
    """Point inside the condition text, not just at its start."""
    pos = doc.locate(loc)
    line = lines[pos.line - 1] if 0 < pos.line <= len(lines) else ""
    value = doc_value(doc.data, loc)
    start = line.find(value.strip(), pos.column - 1) if isinstance(value, str) else -1
    column = (start + problem.column) if start >= 0 else pos.column
    where = ".".join(str(p) for p in loc)
    return SourceError(error.path, pos.line, column, f"{where}: {problem.message}")


def doc_value(data: Any, loc: tuple) -> Any:
    for part in loc:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _reference_errors(doc: LocatedDocument) -> list[SourceError]:
    """Duplicate step ids and conditions naming steps that do not exist (checked on raw data)."""
    data = doc.data if isinstance(doc.data, dict) else {}
    steps = data.get("steps") if isinstance(data.get("steps"), list) else []
    errors: list[SourceError] = []
    ids: dict[str, int] = {}
    send_ids: set[str] = set()
    for index, raw in enumerate(steps):
        if not isinstance(raw, dict):
            continue
        step_id = raw.get("id")
        if not isinstance(step_id, str):
            kind = next((k for k in ("send", "wait", "call") if k in raw), "step")
            step_id = f"{kind}-{index + 1}"
        if step_id in ids:
            errors.append(
                doc.error(
                    ("steps", index, "id"), f"duplicate step id '{step_id}' (first used by step {ids[step_id] + 1})"
                )
            )
        ids.setdefault(step_id, index)
        if "send" in raw:
            send_ids.add(step_id)
    for loc, text in _conditions(data, steps):
        try:
            condition = compile_condition(text)
        except (ConditionError, TypeError):
            continue  # reported by the schema layer
        for name in sorted(condition.steps):
            if name not in ids:
                known = ", ".join(sorted(send_ids)) or "none"
                errors.append(
                    doc.error(
                        loc, f"{'.'.join(map(str, loc))}: condition names unknown step '{name}'; send steps: {known}"
                    )
                )
            elif name not in send_ids:
                errors.append(
                    doc.error(
                        loc,
                        f"{'.'.join(map(str, loc))}: step '{name}' sends nothing, so "
                        f"{'/'.join(STEP_FUNCTIONS)}('{name}') can never be true",
                    )
                )
    return errors


def _conditions(data: dict, steps: list) -> Iterable[tuple[tuple, str]]:
    for index, raw in enumerate(steps):
        if isinstance(raw, dict):
            for key in ("if", "until"):
                if isinstance(raw.get(key), str):
                    yield ("steps", index, key), raw[key]
    for key in ("escalate", "handoff"):
        route = data.get(key)
        if isinstance(route, dict) and isinstance(route.get("when"), str):
            yield (key, "when"), route["when"]
