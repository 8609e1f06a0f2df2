"""Turn cadence YAML text into a validated `Cadence`, or a complete list of `path:line:col` errors.

Validation runs in layers and reports everything it finds, not just the first problem:
YAML safety -> schema (pydantic) -> cross-references (step ids, facts and dispositions named in
conditions; duplicate ids) -> content (messages, channel templates, scripts, queues, and a sample
render of every template). The content layer also runs when the schema layer found problems, on
the steps that are valid by themselves, so one run shows a marketer every mistake in the file.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from core.conditions import STEP_FUNCTIONS, ConditionError, compile_condition
from core.engine import DISPOSITIONS
from core.messages import CHANNEL_PARTS, MessageCatalog, TemplateProblem, sample_context
from core.model import Cadence, CallStep, Route, SendStep, Step, WaitStep
from core.schema_errors import schema_errors, where
from core.template_errors import explain_template_problem
from core.yamlsource import LocatedDocument, SourceError, YamlSourceError, load_located

DEFAULT_QUEUES = frozenset({"telemarketing", "telesales"})
_STEP_ADAPTER: TypeAdapter[SendStep | WaitStep | CallStep] = TypeAdapter(Step)


@dataclass
class ContentView:
    """What the content layer checks: the whole cadence, or the parts of a broken one that are valid."""

    cadence_id: str
    name: str
    locale: str
    facts: dict[str, Any] | None  # None: facts are broken, so template renders would mislead
    steps: list[tuple[int, SendStep | WaitStep | CallStep]]
    routes: dict[str, Route]

    @classmethod
    def of(cls, cadence: Cadence) -> ContentView:
        routes = {k: r for k in ("escalate", "handoff") if (r := getattr(cadence, k)) is not None}
        return cls(
            cadence.id, cadence.name, cadence.locale, dict(cadence.facts), list(enumerate(cadence.steps)), routes
        )


@dataclass
class CadenceLoad:
    path: str
    cadence: Cadence | None = None
    errors: list[SourceError] = field(default_factory=list)
    document: LocatedDocument | None = None
    partial: ContentView | None = None  # the valid parts, when the cadence as a whole is not

    @property
    def ok(self) -> bool:
        return self.cadence is not None and not self.errors


def parse_cadence(text: str, path: str) -> CadenceLoad:
    """Schema and cross-reference validation of one cadence file (no templates needed)."""
    result = CadenceLoad(path)
    try:
        doc = load_located(text, path, collect=True)
    except YamlSourceError as exc:
        result.errors.append(exc.error)
        return result
    result.document = doc
    result.errors.extend(doc.errors)
    if not isinstance(doc.data, dict):
        if not doc.errors:
            result.errors.append(
                doc.error((), "a cadence file must be a mapping with id, name, purpose and steps (key: value lines)")
            )
        return result
    cadence = None
    try:
        cadence = Cadence.model_validate(doc.data)
    except ValidationError as exc:
        result.errors.extend(e for loc, e in schema_errors(exc, doc) if not doc.is_poisoned(loc))
    result.errors.extend(_reference_errors(doc))
    if cadence is not None and not result.errors:
        result.cadence = cadence
    else:
        result.partial = _partial_view(doc)
    result.errors = _unique_sorted(result.errors)
    return result


def check_content(
    load: CadenceLoad,
    catalog: MessageCatalog,
    *,
    queues: Iterable[str] | None = DEFAULT_QUEUES,
    template_root: str = "templates",
    sources: Mapping[str, str] | None = None,
) -> None:
    """Messages, channel templates, scripts and queues exist; every template renders with a sample.

    `sources` (template name -> text) lets an undefined-name error point at its column. `queues` None: queue
    names are not checked (the queue file itself is broken and reported; a cascade of "unknown queue" would
    only point away from it).
    """
    doc = load.document
    view = ContentView.of(load.cadence) if load.cadence is not None else load.partial
    if view is None or doc is None:
        return
    checker = _ContentChecker(doc, catalog, view, None if queues is None else set(queues), template_root, sources or {})
    for index, step in view.steps:
        here = ("steps", index)
        if isinstance(step, SendStep):
            checker.send_step(here, step)
        elif isinstance(step, CallStep):
            checker.route(here, step.id or "", step.call, step.script, "call")
    for key, route in view.routes.items():
        checker.route((key,), key, route.queue, route.script, "queue")
    load.errors = _unique_sorted([*load.errors, *checker.errors])
    if load.errors:
        load.cadence = None


class _ContentChecker:
    def __init__(
        self,
        doc: LocatedDocument,
        catalog: MessageCatalog,
        view: ContentView,
        queues: set[str] | None,
        root: str,
        sources: Mapping[str, str],
    ):
        self.doc, self.catalog, self.view, self.queues = doc, catalog, view, queues
        self.root, self.sources = root.rstrip("/"), sources
        self.errors: list[SourceError] = []
        self.rendered: set[tuple[str, str]] = set()

    def send_step(self, here: tuple, step: SendStep) -> None:
        if not self.catalog.templates_of(step.message):
            channels = [c for c in (step.send, step.fallback) if c]
            files = " and ".join(f"{self.root}/{step.message}/{p}" for c in channels for p in _required(c))
            self.errors.append(
                self.doc.error((*here, "message"), f"message '{step.message}' not found; create {files}")
            )
            return
        for channel in filter(None, (step.send, step.fallback)):
            key = "send" if channel == step.send else "fallback"
            missing = self.catalog.missing_parts(step.message, channel)
            if missing:
                files = " and ".join(f"{self.root}/{step.message}/{p}" for p in missing)
                self.errors.append(
                    self.doc.error((*here, key), f"message '{step.message}' has no {channel} template; create {files}")
                )
                continue
            for name in self.catalog.templates_of(step.message):
                if _part_channel(name) == channel and (step.id or "", name) not in self.rendered:
                    self.rendered.add((step.id or "", name))
                    self.render(name, step.id or "")

    def route(self, here: tuple, step_id: str, queue: str, script: str, queue_key: str) -> None:
        if self.queues is not None and queue not in self.queues:
            known = ", ".join(sorted(self.queues))
            self.errors.append(self.doc.error((*here, queue_key), f"unknown queue '{queue}'; known queues: {known}"))
        name = f"scripts/{script}.md.j2"
        if not self.catalog.exists(name):
            self.errors.append(
                self.doc.error((*here, "script"), f"call script '{script}' not found; create {self.root}/{name}")
            )
            return
        for candidate in sorted(n for n in self.sources if n.startswith("scripts/") and n.endswith(f"/{script}.md.j2")):
            self.render(candidate, step_id)  # locale overrides scripts/<locale>/<script>.md.j2
        self.render(name, step_id)

    def render(self, name: str, step_id: str) -> None:
        view = self.view
        if view.facts is None:
            return  # the facts themselves are broken (reported); a render would only add noise
        context = sample_context(view.cadence_id, view.name, view.facts, step_id, locale=view.locale)
        try:
            if name.endswith(".yaml"):
                self.catalog.approved_template(name, context)
            else:
                self.catalog.render_template(name, context)
        except TemplateProblem as problem:
            self.errors.append(explain_template_problem(problem, self.root, self.sources, view.facts, view.cadence_id))


def _required(channel: str) -> tuple[str, ...]:
    parts = CHANNEL_PARTS[channel]
    return parts[:2] if channel == "email" else parts


def _part_channel(template_name: str) -> str | None:
    leaf = template_name.rsplit("/", 1)[-1]
    for channel, parts in CHANNEL_PARTS.items():
        if leaf in parts or (channel == "whatsapp" and leaf == "whatsapp.yaml"):
            return channel
    return None


def _unique_sorted(errors: list[SourceError]) -> list[SourceError]:
    """Each error once, cadence file first, then by position (a template used twice fails once)."""
    unique = list(dict.fromkeys(errors))
    return sorted(unique, key=lambda e: (e.path, e.line, e.column))


# -- the valid parts of a broken cadence ------------------------------------------------------------
def _partial_view(doc: LocatedDocument) -> ContentView:
    data = doc.data if isinstance(doc.data, dict) else {}
    steps: list[tuple[int, SendStep | WaitStep | CallStep]] = []
    raw_steps = data.get("steps") if isinstance(data.get("steps"), list) else []
    for index, raw in enumerate(raw_steps):
        try:
            step = _STEP_ADAPTER.validate_python(raw)
        except ValidationError:
            continue
        if step.id is None:
            kind = next(k for k in ("send", "wait", "call") if k in raw)
            step = step.model_copy(update={"id": f"{kind}-{index + 1}"})
        steps.append((index, step))
    routes: dict[str, Route] = {}
    for key in ("escalate", "handoff"):
        with contextlib.suppress(ValidationError):
            routes[key] = Route.model_validate(data.get(key))
    facts = data.get("facts", {})
    if any(path[:1] == ("facts",) for path in doc.poisoned):
        facts = None  # a refused value inside facts: renders would report it again, as a blank
    text = {k: data.get(k) if isinstance(data.get(k), str) else d for k, d in (("id", "cadence"), ("name", ""))}
    locale = data.get("locale") if isinstance(data.get("locale"), str) else "en"
    return ContentView(text["id"], text["name"], locale, facts if isinstance(facts, dict) else None, steps, routes)


# -- cross references -------------------------------------------------------------------------------
def _reference_errors(doc: LocatedDocument) -> list[SourceError]:
    """Duplicate step ids, and steps, facts and dispositions named in conditions that do not exist."""
    data = doc.data if isinstance(doc.data, dict) else {}
    steps = data.get("steps") if isinstance(data.get("steps"), list) else []
    facts = data.get("facts") if isinstance(data.get("facts"), dict) else None
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
                    ("steps", index, "id"),
                    f"duplicate step id '{step_id}' (first used by step {ids[step_id] + 1}); give each step its own id",
                )
            )
        ids.setdefault(step_id, index)
        if "send" in raw:
            send_ids.add(step_id)
    for loc, text in _conditions(data, steps):
        if doc.is_poisoned(loc):
            continue
        try:
            condition = compile_condition(text)
        except ConditionError:
            continue  # reported by the schema layer
        for ref in condition.references:
            problem = _reference_problem(ref.kind, ref.name, ids, send_ids, facts)
            if problem:
                pos = doc.position_in_text(loc, ref.column - 1)
                errors.append(SourceError(doc.path, pos.line, pos.column, f"{where(loc)}: {problem}"))
    return errors


def _reference_problem(
    kind: str, name: str, ids: dict[str, int], send_ids: set[str], facts: dict[str, Any] | None
) -> str | None:
    if kind == "step":
        known = ", ".join(sorted(send_ids)) or "none"
        if name not in ids:
            return f"condition names unknown step '{name}'; steps that send: {known}"
        if name not in send_ids:
            return f"step '{name}' sends nothing, so {'/'.join(STEP_FUNCTIONS)}('{name}') can never be true"
    elif kind == "fact" and facts is not None:
        current: Any = facts
        walked = []
        for part in name.split("."):
            if not isinstance(current, dict):
                return None  # a fact holding a value, read deeper: false at run time, not a typo we can see
            if part not in current:
                where = "facts." + ".".join(walked) if walked else "facts"
                known = ", ".join(sorted(map(str, current))) or "none"
                return f"'facts.{name}': {where} has no '{part}' (known: {known}); add it under facts: or fix the name"
            current = current[part]
            walked.append(part)
    elif kind == "disposition" and name not in DISPOSITIONS:
        return f"disposition '{name}' is never recorded; dispositions are {', '.join(sorted(DISPOSITIONS))}"
    return None


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
