"""`omnireach lint`: what a valid cadence can still get wrong, found before a customer does.

Pure: it receives a parsed cadence (with the positions of its YAML), the template sources and the catalog
built from them, and returns findings printable as `path:line:col: rule-id: message`. Rules and their
severity are listed in RULES; errors are things that break the law or a send (no unsubscribe link, no
opt-out text, no approved WhatsApp template without a fallback, missing call script), warnings cost money
or confuse (extra SMS segments, UCS-2, facts one channel forgets, steps that can never run).

Messages are rendered with the sample contact of each locale (core.messages.sample_context), for every
step, channel (and fallback), locale folder and A/B variant (core.renderings).
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from core.cadence_loader import CadenceLoad
from core.lint_conditions import can_be_true
from core.messages import CHANNEL_PARTS, SCRIPTS_DIR, WHATSAPP_TEMPLATE, MessageCatalog, sample_context
from core.model import Cadence, CallStep, SendStep, WaitStep
from core.renderings import MessageCase, message_cases, script_cases
from core.sms import SMS_MAX_BODY, non_gsm_characters, segment_info
from core.yamlsource import LocatedDocument

ERROR, WARNING = "error", "warning"

#: rule id -> (severity, what it finds)
RULES: dict[str, tuple[str, str]] = {
    "invalid-cadence": (ERROR, "the cadence does not validate (see `omnireach validate`)"),
    "missing-template": (ERROR, "a step's channel (or fallback) has no template in the message folder"),
    "template-error": (ERROR, "a template fails to render for a sample contact"),
    "call-script": (ERROR, "a call step, escalation or handoff names a call script that does not exist"),
    "email-unsubscribe": (ERROR, "a marketing email (text or HTML part) has no unsubscribe link"),
    "email-postal-address": (ERROR, "a marketing email (text or HTML part) has no postal address of the sender"),
    "sms-opt-out": (ERROR, "the first marketing SMS a contact may get does not say how to opt out"),
    "sms-too-long": (ERROR, f"an SMS longer than {SMS_MAX_BODY} characters (providers refuse it)"),
    "whatsapp-template": (
        ERROR,
        "a WhatsApp step has no approved template (whatsapp.yaml) for sends outside the 24h session "
        "(a warning when the step has a fallback channel)",
    ),
    "sms-segments": (WARNING, "an SMS renders to more than one segment (each is billed)"),
    "sms-ucs2": (WARNING, "a character forces UCS-2: 70 characters per segment instead of 160"),
    "facts-consistency": (WARNING, "a fact some channel templates of a message use and others do not"),
    "unreachable-step": (WARNING, "a step whose `if` can never be true where it stands"),
    "condition-never-true": (WARNING, "a wait's `until` or a route's `when` that can never be true"),
    "whatsapp-template-locale": (WARNING, "a locale's WhatsApp contacts get another language's approved template"),
    "locale-gap": (WARNING, "a variant override that contacts of a locale would get in the base language"),
    "template-layout": (WARNING, "a file in a message folder that no lookup will ever use"),
}

# Opt-out instructions (COMPLIANCE.md keywords): upper-case keywords, or the words in any case.
_OPT_OUT = re.compile(
    r"\b(STOP|STOPALL|UNSUBSCRIBE|CANCEL|END|QUIT|REVOKE|OPTOUT|BERHENTI)\b|opt[\s-]?out|unsubscribe|berhenti",
    re.IGNORECASE,
)
_OPT_OUT_KEYWORD = re.compile(r"\b(STOP|STOPALL|UNSUBSCRIBE|CANCEL|END|QUIT|REVOKE|OPTOUT|BERHENTI)\b")
_FACT = re.compile(r"\bfacts\s*(?:\.\s*([A-Za-z_][A-Za-z0-9_]*)|\[\s*['\"]([^'\"]+)['\"]\s*\])")
_INCLUDE = re.compile(r"{%-?\s*(?:include|import|from|extends)\s+['\"]([^'\"]+)['\"]")
_LOCALE_DIR = re.compile(r"^[A-Za-z]{2,3}(?:-(?:[A-Za-z]{2}|[0-9]{3}))?$")


@dataclass(frozen=True, order=True)
class Finding:
    path: str
    line: int
    column: int
    rule: str
    message: str

    @property
    def severity(self) -> str:
        return RULES[self.rule][0]

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.rule}: {self.message}"


class _Linter:
    def __init__(
        self, load: CadenceLoad, sources: Mapping[str, str], catalog: MessageCatalog, template_root: str
    ) -> None:
        assert load.cadence is not None and load.document is not None
        self.cadence: Cadence = load.cadence
        self.doc: LocatedDocument = load.document
        self.sources = sources
        self.catalog = catalog
        self.root = template_root.rstrip("/")
        self.findings: set[Finding] = set()

    # -- positions -----------------------------------------------------------------------------------
    def at_cadence(self, path: tuple, rule: str, message: str, *, key: bool = False) -> None:
        pos = self.doc.locate(path, key=key)
        self.findings.add(Finding(self.doc.path, pos.line, pos.column, rule, message))

    def at_template(self, name: str, rule: str, message: str, line: int = 1, column: int = 1) -> None:
        self.findings.add(Finding(f"{self.root}/{name}", line, column, rule, message))

    def find_in_template(self, name: str, needle: str) -> tuple[int, int] | None:
        source = self.sources.get(name, "")
        index = source.find(needle)
        if index < 0:
            return None
        line = source.count("\n", 0, index) + 1
        return line, index - (source.rfind("\n", 0, index) + 1) + 1

    # -- the rules -----------------------------------------------------------------------------------
    def run(self) -> list[Finding]:
        cadence = self.cadence
        self.references()
        first_sms = self.first_sms_steps()
        for case in message_cases(self.catalog, cadence, self.context):
            if not self.catalog.has_channel(case.message, case.channel):
                continue  # reported once by references()
            self.message_case(case, first_sms)
        for script in script_cases(self.catalog, cadence, self.context):
            if script.problem is not None:
                self.at_template(script.problem.template, "template-error", script.problem.message, script.problem.line)
        for message in sorted({s.message for s in cadence.steps if isinstance(s, SendStep)}):
            self.facts_consistency(message)
            self.template_hygiene(message)
        self.conditions()
        return sorted(self.findings)

    def context(self, locale: str, step_id: str, channel: str, variant: str | None) -> dict:
        context = sample_context(self.cadence.id, self.cadence.name, self.cadence.facts, step_id, locale=locale)
        context["step"] = {"id": step_id, "channel": channel, "variant": variant or ""}
        return context

    def references(self) -> None:
        for index, step in enumerate(self.cadence.steps):
            if isinstance(step, SendStep):
                for key, channel in (("send", step.send), ("fallback", step.fallback)):
                    if channel and not self.catalog.has_channel(step.message, channel):
                        parts = " and ".join(
                            f"{self.root}/{step.message}/{p}" for p in self.catalog.missing_parts(step.message, channel)
                        )
                        self.at_cadence(
                            ("steps", index, key),
                            "missing-template",
                            f"message '{step.message}' has no {channel} template; create {parts}",
                        )
            elif isinstance(step, CallStep):
                self.script_exists(("steps", index, "script"), f"call step '{step.id}'", step.script)
        for key in ("escalate", "handoff"):
            route = getattr(self.cadence, key)
            if route is not None:
                self.script_exists((key, "script"), key, route.script)

    def script_exists(self, where: tuple, what: str, script: str) -> None:
        if self.catalog.resolve_script(script, locale=self.cadence.locale) is None:
            self.at_cadence(
                where,
                "call-script",
                f"{what} has no call script: agents would call without knowing what the messages promised; "
                f"create {self.root}/{SCRIPTS_DIR}/{script}.md.j2",
            )

    def message_case(self, case: MessageCase, first_sms: set[int]) -> None:
        if case.problem is not None:
            self.at_template(case.problem.template, "template-error", case.problem.message, case.problem.line)
            return
        if case.approved_problem is not None:
            problem = case.approved_problem
            self.at_template(problem.template, "template-error", problem.message, problem.line)
        rendered = case.rendered
        assert rendered is not None
        marketing = self.cadence.purpose == "marketing"
        if case.channel == "sms":
            self.sms(case, rendered.template_names[0], rendered.text, case.step_index in first_sms and marketing)
        elif case.channel == "email" and marketing:
            self.email(case)
        elif case.channel == "whatsapp":
            self.whatsapp(case)

    def sms(self, case: MessageCase, template: str, text: str, must_opt_out: bool) -> None:
        info = segment_info(text)
        who = f"a sample '{case.locale}' contact" + (f" in variant '{case.variant}'" if case.variant else "")
        if info.chars > SMS_MAX_BODY:
            self.at_template(
                template, "sms-too-long", f"renders to {info.chars} characters for {who}; the limit is {SMS_MAX_BODY}"
            )
        if info.encoding == "UCS-2":
            char = non_gsm_characters(text)[0]
            where = self.find_in_template(template, char)
            origin = "" if where else " (it comes from a fact or the contact's data)"
            self.at_template(
                template,
                "sms-ucs2",
                f"character {char!r} (U+{ord(char):04X}){origin} forces UCS-2 for the whole SMS: 70 characters per "
                f"segment instead of 160 ({info.segments} segment(s) for {who}); use a GSM-7 character",
                *(where or (1, 1)),
            )
        if info.segments > 1:
            limit = "160 GSM-7" if info.encoding == "GSM-7" else "70 UCS-2"
            self.at_template(
                template,
                "sms-segments",
                f"renders to {info.segments} segments ({info.encoding}, {info.units} units) for {who}; every "
                f"segment is billed: keep it within {limit} characters",
            )
        if must_opt_out and not _OPT_OUT.search(text):
            self.at_template(
                template,
                "sms-opt-out",
                f"step '{case.step_id}' may be the first marketing SMS a contact gets from this cadence and does "
                "not say how to opt out; add e.g. 'Reply STOP to opt out' "
                "(Indonesian: 'Balas BERHENTI untuk berhenti')",
            )

    def email(self, case: MessageCase) -> None:
        rendered = case.rendered
        assert rendered is not None
        context = self.context(case.locale, case.step_id, "email", case.variant)
        address, url = context["sender"]["address"], context["unsubscribe_url"]
        parts = [(n, rendered.text) for n in rendered.template_names if n.endswith("email.txt.j2")]
        parts += [(n, rendered.html) for n in rendered.template_names if n.endswith("email.html.j2") and rendered.html]
        for name, body in parts:
            assert body is not None
            kind = "HTML" if name.endswith(".html.j2") else "text"
            if url not in body and html.escape(url) not in body:
                self.at_template(
                    name,
                    "email-unsubscribe",
                    f"the {kind} part of this marketing email has no unsubscribe link; add {{{{ unsubscribe_url }}}}",
                )
            if address not in body and html.escape(address) not in body:
                self.at_template(
                    name,
                    "email-postal-address",
                    f"the {kind} part of this marketing email has no postal address (CAN-SPAM); "
                    "add {{ sender.address }}",
                )

    def whatsapp(self, case: MessageCase) -> None:
        step = self.cadence.steps[case.step_index]
        assert isinstance(step, SendStep)
        key = "send" if step.send == "whatsapp" else "fallback"
        if not case.has_approved:
            then = (
                f"until then those contacts get {step.fallback} instead"
                if key == "send" and step.fallback
                else "those sends are skipped"
            )
            self.at_cadence(
                ("steps", case.step_index, key),
                "whatsapp-template",
                f"'{case.locale}' contacts outside the 24h WhatsApp session need an approved template for message "
                f"'{case.message}'; add {self.root}/{case.message}/{WHATSAPP_TEMPLATE} ({then})",
            )
            return
        rendered = case.rendered
        assert rendered is not None
        approved = self.catalog.resolve(case.message, WHATSAPP_TEMPLATE, locale=case.locale, variant=case.variant)
        free_form = rendered.template_names[0]
        if approved is not None and _locale_of(approved) != _locale_of(free_form):
            self.at_template(
                approved,
                "whatsapp-template-locale",
                f"'{case.locale}' contacts outside the 24h session get this approved template, while their free-form "
                f"message is {free_form}; "
                f"add {case.message}/{_locale_of(free_form) or case.locale}/{WHATSAPP_TEMPLATE}",
            )

    def first_sms_steps(self) -> set[int]:
        """Send steps that may carry the first SMS a contact gets (any before an unconditional SMS step)."""
        found: set[int] = set()
        for index, step in enumerate(self.cadence.steps):
            if isinstance(step, SendStep) and "sms" in (step.send, step.fallback):
                found.add(index)
                if step.send == "sms" and not step.if_:
                    break
        return found

    def facts_consistency(self, message: str) -> None:
        used: dict[str, set[str]] = {}
        first_file: dict[str, str] = {}
        for name in self.catalog.templates_of(message):
            channel = _channel_of(name)
            if channel is None or not self.catalog.has_channel(message, channel):
                continue
            used.setdefault(channel, set()).update(self.facts_in(name, set()))
            first_file.setdefault(channel, name)
        if len(used) < 2:
            return
        every = set().union(*used.values())
        for channel in sorted(used):
            for fact in sorted(every - used[channel]):
                others = sorted(c for c in used if fact in used[c])
                self.at_template(
                    first_file[channel],
                    "facts-consistency",
                    f"facts.{fact} is in the {' and '.join(others)} templates of '{message}' but not in {channel}: "
                    "every channel should say the same thing about the offer",
                )

    def facts_in(self, name: str, seen: set[str]) -> set[str]:
        """Facts a template reads, following includes and imports of partials."""
        if name in seen:
            return set()
        seen.add(name)
        source = self.sources.get(name, "")
        found = {m.group(1) or m.group(2).split(".")[0] for m in _FACT.finditer(source)}
        for include in _INCLUDE.findall(source):
            found |= self.facts_in(include, seen)
        return found

    def template_hygiene(self, message: str) -> None:
        prefix = f"{message}/"
        for problem in self.catalog.layout_problems():
            if problem.template.startswith(prefix):
                self.at_template(problem.template, "template-layout", problem.message)
        for problem in self.catalog.locale_gaps():
            if problem.template.startswith(prefix):
                self.at_template(problem.template, "locale-gap", problem.message)

    def conditions(self) -> None:
        cadence = self.cadence
        for index, step in enumerate(cadence.steps):
            if step.if_:
                verdict = can_be_true(cadence, step.if_, position=index, kind="if")
                if not verdict.possible:
                    self.at_cadence(
                        ("steps", index, "if"),
                        "unreachable-step",
                        f"step '{step.id}' can never run: its condition is never true here ({_why(verdict.reasons)})",
                    )
            if isinstance(step, WaitStep) and step.until:
                verdict = can_be_true(cadence, step.until, position=index, kind="until")
                if not verdict.possible:
                    self.at_cadence(
                        ("steps", index, "until"),
                        "condition-never-true",
                        f"this wait always runs its full {step.wait}: `until` is never true ({_why(verdict.reasons)})",
                    )
        for key, what in (("escalate", "contacts are never escalated"), ("handoff", "contacts are never handed off")):
            route = getattr(cadence, key)
            if route is not None:
                verdict = can_be_true(cadence, route.when, position=None, kind="when")
                if not verdict.possible:
                    self.at_cadence(
                        (key, "when"), "condition-never-true", f"{what}: `when` is never true ({_why(verdict.reasons)})"
                    )


def _why(reasons: list[str]) -> str:
    return "; ".join(reasons) or "no score, disposition, event, step activity or contact value makes it true"


def _channel_of(name: str) -> str | None:
    leaf = name.rsplit("/", 1)[-1]
    if leaf == WHATSAPP_TEMPLATE:
        return "whatsapp"
    return next((channel for channel, parts in CHANNEL_PARTS.items() if leaf in parts), None)


def _locale_of(name: str) -> str | None:
    return next((part for part in name.split("/")[1:-1] if _LOCALE_DIR.match(part)), None)


def lint_cadence(
    load: CadenceLoad, sources: Mapping[str, str], catalog: MessageCatalog, *, template_root: str = "templates"
) -> list[Finding]:
    """Every finding for one cadence file; a cadence that does not validate yields its errors as findings."""
    if load.cadence is None or load.document is None:
        return sorted(Finding(e.path, e.line, e.column, "invalid-cadence", e.message) for e in load.errors) or [
            Finding(load.path, 1, 1, "invalid-cadence", "the cadence could not be read")
        ]
    return _Linter(load, sources, catalog, template_root).run()


def exit_code(findings: Iterable[Finding], *, strict: bool = False) -> int:
    """1 when any finding is an error (or, with `strict`, a warning); else 0."""
    severities = {f.severity for f in findings}
    return 1 if ERROR in severities or (strict and WARNING in severities) else 0


def opt_out_keyword(text: str) -> str | None:
    """The opt-out keyword a message names (for preview), if any."""
    match = _OPT_OUT_KEYWORD.search(text)
    return match.group(1) if match else None
