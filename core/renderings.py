"""Every message a cadence can send, rendered per step, channel, locale and variant (and every call script).

`omnireach preview` shows these to a marketer for one contact; `omnireach lint` checks them with sample
contacts. One enumeration keeps both honest about what can go out: a step's channel and its fallback,
the cadence's base locale and every locale folder of the message, each A/B variant of the step, and for
WhatsApp the approved template (whatsapp.yaml) used outside the 24h session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from core.messages import ApprovedTemplate, MessageCatalog, Rendered, TemplateProblem, locale_candidates
from core.model import Cadence, CallStep, SendStep
from core.sms import SegmentInfo, segment_info

#: Builds the template context for (locale, step id, channel, variant).
ContextFor = Callable[[str, str, str, str | None], dict[str, Any]]


@dataclass(frozen=True)
class MessageCase:
    """One message as one contact would get it, or the problem that stops it."""

    step_id: str
    step_index: int
    channel: str
    message: str
    locale: str
    variant: str | None
    fallback: bool
    rendered: Rendered | None = None
    problem: TemplateProblem | None = None
    approved: ApprovedTemplate | None = None  # WhatsApp outside the 24h session
    approved_problem: TemplateProblem | None = None
    has_approved: bool = False

    @property
    def sms(self) -> SegmentInfo | None:
        return segment_info(self.rendered.text) if self.rendered and self.channel == "sms" else None


@dataclass(frozen=True)
class ScriptCase:
    """An agent call script as the agent would read it."""

    where: str  # step id, or escalate / handoff
    script: str
    locale: str
    text: str | None = None
    problem: TemplateProblem | None = None
    template: str | None = None


def message_locales(catalog: MessageCatalog, cadence: Cadence, message: str) -> list[str]:
    """The cadence's base locale first, then every locale folder the message has."""
    base = cadence.locale
    others = sorted(loc for loc in catalog.locales_of(message) if loc not in locale_candidates(base))
    return [base, *others]


def message_cases(catalog: MessageCatalog, cadence: Cadence, context_for: ContextFor) -> Iterator[MessageCase]:
    """Every (step, channel, locale, variant) a send step can produce, rendered with `context_for`."""
    for index, step in enumerate(cadence.steps):
        if not isinstance(step, SendStep):
            continue
        assert step.id is not None
        variants: list[str | None] = sorted(step.variants) if step.variants else [None]
        for channel in filter(None, (step.send, step.fallback)):
            for locale in message_locales(catalog, cadence, step.message):
                for variant in variants:
                    context = context_for(locale, step.id, channel, variant)
                    yield _render(catalog, step, index, channel, locale, variant, context)


def _render(
    catalog: MessageCatalog,
    step: SendStep,
    index: int,
    channel: str,
    locale: str,
    variant: str | None,
    context: dict[str, Any],
) -> MessageCase:
    assert step.id is not None
    fields = {
        "step_id": step.id,
        "step_index": index,
        "channel": channel,
        "message": step.message,
        "locale": locale,
        "variant": variant,
        "fallback": channel != step.send,
    }
    try:
        rendered = catalog.render(step.message, channel, context, locale=locale, variant=variant)
    except TemplateProblem as problem:
        return MessageCase(**fields, problem=problem)
    if channel != "whatsapp":
        return MessageCase(**fields, rendered=rendered)
    has_approved = catalog.resolve(step.message, "whatsapp.yaml", locale=locale, variant=variant) is not None
    try:
        approved = catalog.whatsapp_template(step.message, context, locale=locale, variant=variant)
    except TemplateProblem as problem:
        return MessageCase(**fields, rendered=rendered, approved_problem=problem, has_approved=has_approved)
    return MessageCase(**fields, rendered=rendered, approved=approved, has_approved=has_approved)


def script_cases(
    catalog: MessageCatalog, cadence: Cadence, context_for: ContextFor, locales: list[str] | None = None
) -> Iterator[ScriptCase]:
    """Every call script of the cadence (call steps, escalate, handoff), per locale."""
    wanted: list[tuple[str, str]] = [(s.id or "", s.script) for s in cadence.steps if isinstance(s, CallStep)]
    wanted += [(key, route.script) for key in ("escalate", "handoff") if (route := getattr(cadence, key))]
    for where, script in wanted:
        for locale in locales or [cadence.locale]:
            name = catalog.resolve_script(script, locale=locale)
            if name is None:
                yield ScriptCase(where, script, locale)
                continue
            try:
                text = catalog.render_script(script, context_for(locale, where, "voice", None), locale=locale)
            except TemplateProblem as problem:
                yield ScriptCase(where, script, locale, problem=problem, template=name)
                continue
            yield ScriptCase(where, script, locale, text=text, template=name)
