"""Message rendering: every channel's text from one sandboxed, strict Jinja2 environment (SPEC section 4).

Pure: templates arrive as a mapping of names (paths relative to ``templates/``, "/"-separated) to source
text; ``content.templates_dir`` reads the files. Rendering is strict so an undefined name fails at
validation time instead of leaving a blank in a customer's message, and sandboxed (the *immutable*
sandbox) so a template can neither reach Python internals nor change the facts the next channel renders.

A message folder::

    <message>/<part>                      base: the cadence's default locale
    <message>/<variant>/<part>            A/B variant override
    <message>/<locale>/<part>             locale override
    <message>/<variant>/<locale>/<part>   both

Locale or variant? A sub-folder named like a BCP 47 language tag (2-3 letters, optionally "-" and a
2-letter region or 3-digit area: ``en``, ``id``, ``en-US``, ``es-419``) is a locale; any other name is a
variant. So call variants ``a``, ``b``, ``short``, ``v2``, never ``en`` or ``new``. Names containing a
segment that starts with "_" are shared partials and macros (for ``include``/``import``), and ``scripts/``
holds agent call scripts (``scripts/<script>.md.j2``, locale overrides ``scripts/<locale>/<script>.md.j2``);
neither is a message.

Facts are given to templates as JSON would carry them (dates become ISO 8601 strings, as in the workflow's
cadence snapshot), so a template validated here behaves the same at send time. Format dates with the
``date_long``, ``date_short``, ``time_short`` and ``datetime_long`` filters, e.g.
``{{ facts.webinar_at | datetime_long('id', contact.timezone) }}``
-> "Kamis, 3 Desember 2026 pukul 10.00 WIB".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from jinja2 import DictLoader, Environment, StrictUndefined, Template, select_autoescape
from jinja2.exceptions import SecurityError, TemplateNotFound, TemplateSyntaxError, UndefinedError
from jinja2.sandbox import ImmutableSandboxedEnvironment

__all__ = [
    "CHANNEL_PARTS",
    "CONTACT_FIELDS",
    "ApprovedTemplate",
    "MessageCatalog",
    "MissingTemplate",
    "Rendered",
    "TemplateProblem",
    "build_context",
    "locale_candidates",
    "sample_context",
]

#: Template files per channel, in render order. ``email.html.j2`` is optional; voice is TwiML <Say> text.
CHANNEL_PARTS: dict[str, tuple[str, ...]] = {
    "email": ("email.subject.j2", "email.txt.j2", "email.html.j2"),
    "sms": ("sms.j2",),
    "whatsapp": ("whatsapp.j2",),
    "voice": ("voice.j2",),
}
OPTIONAL_PARTS = frozenset({"email.html.j2"})
WHATSAPP_TEMPLATE = "whatsapp.yaml"
SCRIPTS_DIR = "scripts"
MAX_WHATSAPP_VARIABLES = 100
WHATSAPP_CATEGORIES = ("MARKETING", "UTILITY", "AUTHENTICATION")
CONTACT_FIELDS = ("external_id", "name", "email", "phone", "whatsapp", "country", "timezone", "locale")

_KNOWN_PARTS = frozenset(p for parts in CHANNEL_PARTS.values() for p in parts) | {WHATSAPP_TEMPLATE}
_LOCALE_DIR = re.compile(r"^[A-Za-z]{2,3}(?:-(?:[A-Za-z]{2}|[0-9]{3}))?$")
_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
_VARIABLE_KEY = re.compile(r"^[1-9][0-9]{0,2}$")
_WHATSAPP_KEYS = ("content_sid", "category", "variables")


class TemplateProblem(Exception):
    """A template that cannot be used; ``str()`` is ``templates/<name>:<line>:1: <message>``."""

    def __init__(self, template: str, line: int, message: str) -> None:
        super().__init__(template, line, message)  # args mirror __init__ so it pickles (Temporal, workers)
        self.template = template
        self.line = max(1, int(line or 1))
        self.message = message

    def location(self, root: str = "templates") -> str:
        """``<root>/<template>:<line>:1: <message>``; pass the real templates directory as root."""
        return f"{root.rstrip('/')}/{self.template}:{self.line}:1: {self.message}"

    def __str__(self) -> str:
        return self.location()


class MissingTemplate(TemplateProblem, LookupError):
    """A template the lookup needed does not exist (reported at the file that should be created)."""


@dataclass(frozen=True)
class Rendered:
    """One channel's message for one contact; whitespace stripped, email subject on one line."""

    channel: str
    subject: str | None
    text: str
    html: str | None
    template_names: tuple[str, ...]


@dataclass(frozen=True)
class ApprovedTemplate:
    """A WhatsApp template approved by Meta: Twilio ``ContentSid`` plus rendered ``ContentVariables``."""

    content_sid: str
    category: str
    variables: dict[str, str]


@dataclass(frozen=True)
class _WhatsAppSpec:
    content_sid: str
    category: str
    variables: dict[str, tuple[Template, int]]  # key -> (compiled expression, line in the YAML)


def locale_candidates(tag: str | None) -> list[str]:
    """Locale folders to try for a BCP 47 tag, most specific first: "en_us" -> ["en-US", "en"]."""
    if not tag:
        return []
    parts = [p for p in str(tag).replace("_", "-").split("-") if p]
    if not parts:
        return []
    language = parts[0].lower()
    region = next(
        (p.upper() for p in parts[1:] if (len(p) == 2 and p.isalpha()) or (len(p) == 3 and p.isdigit())), None
    )
    return [f"{language}-{region}", language] if region else [language]


def _is_locale_dir(name: str) -> bool:
    return bool(_LOCALE_DIR.match(name))


def _classify(name: str) -> tuple[tuple[str, str | None, str | None, str] | None, str | None]:
    """(message, variant, locale, part) for a message file, or a layout problem, or neither (partials)."""
    segments = name.split("/")
    if segments[0] == SCRIPTS_DIR or any(s.startswith("_") for s in segments):
        return None, None
    if len(segments) == 1:
        return None, "a template must sit in a message folder (<message>/<part>) or start with '_' (partial)"
    message, *folders, part = segments
    if part not in _KNOWN_PARTS:
        known = ", ".join(sorted(_KNOWN_PARTS))
        return None, (f"unknown template file '{part}'; a message folder holds {known} (partials start with '_')")
    if not folders:
        return (message, None, None, part), None
    if len(folders) == 1:
        folder = folders[0]
        if _is_locale_dir(folder):
            return (message, None, locale_candidates(folder)[0], part), None
        return (message, folder, None, part), None
    if len(folders) == 2 and not _is_locale_dir(folders[0]) and _is_locale_dir(folders[1]):
        return (message, folders[0], locale_candidates(folders[1])[0], part), None
    return None, ("expected <message>/<variant>/<locale>/<part> (variant first, then a locale such as 'en' or 'en-US')")


class _NamedDictLoader(DictLoader):
    """A DictLoader that reports each template's name as its filename, so Jinja's rewritten traceback
    frames carry the template name and the line of any runtime error can be found."""

    def get_source(self, environment: Environment, template: str) -> tuple[str, str, Any]:
        source, _, uptodate = super().get_source(environment, template)
        return source, template, uptodate


def _refuse_none(value: Any) -> Any:
    if value is None:
        raise UndefinedError(
            "a value printed here is None (empty); give it a fallback, e.g. "
            "`{{ contact.attributes.company or 'your team' }}`"
        )
    return value


def _environment(sources: Mapping[str, str]) -> Environment:
    env = ImmutableSandboxedEnvironment(
        loader=_NamedDictLoader({n: s for n, s in sources.items() if n.endswith(".j2")}),
        undefined=StrictUndefined,
        autoescape=select_autoescape(
            enabled_extensions=("html.j2",), disabled_extensions=(), default_for_string=False, default=False
        ),
        keep_trailing_newline=False,
        trim_blocks=True,
        lstrip_blocks=True,
        finalize=_refuse_none,
        auto_reload=False,
        cache_size=-1,  # the sources never change for a catalog; keep every compiled template
    )
    env.filters.update(date_long=date_long, date_short=date_short, time_short=time_short, datetime_long=datetime_long)
    return env


def _template_frame(tb: TracebackType | None, names: Mapping[str, str]) -> tuple[str, int] | None:
    """The innermost traceback frame that runs template code (Jinja names it after the template)."""
    found = None
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename in names:
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SecurityError):
        return f"refused by the template sandbox: {exc}"
    if isinstance(exc, UndefinedError):
        return (
            f"undefined: {exc}; a template may use contact, facts, cadence, step, sender and "
            f"unsubscribe_url (optional contact attributes need `| default(...)`)"
        )
    if isinstance(exc, TemplateNotFound):
        return f"includes or imports '{exc.name}', which does not exist"
    return f"{type(exc).__name__}: {exc}"


def _problem(exc: Exception, name: str, sources: Mapping[str, str]) -> TemplateProblem:
    if isinstance(exc, TemplateProblem):
        return exc
    if isinstance(exc, TemplateSyntaxError):
        where = exc.name if exc.name in sources else name
        return TemplateProblem(where, exc.lineno or 1, f"syntax error: {exc.message}")
    where, line = _template_frame(exc.__traceback__, sources) or (name, 1)
    return TemplateProblem(where, line, _describe(exc))


class MessageCatalog:
    """Every message, agent script and approved WhatsApp template of one templates/ tree."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self._sources = dict(sources)
        self._env = _environment(self._sources)
        self._index: dict[tuple[str, str | None, str | None, str], str] = {}
        self._layout: list[TemplateProblem] = []
        self._whatsapp: dict[str, _WhatsAppSpec] = {}
        for name in sorted(self._sources):
            entry, problem = _classify(name)
            if problem:
                self._layout.append(TemplateProblem(name, 1, problem))
            elif entry is not None and entry in self._index:
                self._layout.append(TemplateProblem(name, 1, f"same template as {self._index[entry]}"))
            elif entry is not None:
                self._index[entry] = name

    # -- what exists --------------------------------------------------------------------------------
    def exists(self, name: str) -> bool:
        """Whether a template (or whatsapp.yaml) of that exact name exists."""
        return name in self._sources

    def layout_problems(self) -> list[TemplateProblem]:
        """Files that fit no message layout (typo'd part names, locale before variant...): never used."""
        return list(self._layout)

    def messages(self) -> set[str]:
        return {message for message, _, _, _ in self._index}

    def templates_of(self, message: str) -> list[str]:
        """Every file under the message folder (any variant or locale, partials and whatsapp.yaml too)."""
        return sorted(n for n in self._sources if n.startswith(f"{message}/"))

    def variants_of(self, message: str) -> set[str]:
        return {v for m, v, _, _ in self._index if m == message and v is not None}

    def locales_of(self, message: str) -> set[str]:
        return {loc for m, _, loc, _ in self._index if m == message and loc is not None}

    def scripts(self) -> set[str]:
        """Agent call scripts that have a base template (``scripts/<script>.md.j2``)."""
        prefix, suffix = f"{SCRIPTS_DIR}/", ".md.j2"
        return {
            n[len(prefix) : -len(suffix)]
            for n in self._sources
            if n.startswith(prefix) and n.endswith(suffix) and n.count("/") == 1
        }

    def locale_gaps(self) -> list[TemplateProblem]:
        """Variant overrides that a locale would bypass into the base language (for lint): with
        ``a/email.subject.j2`` and ``en/email.subject.j2`` but no ``a/en/email.subject.j2``, an English
        contact in variant a gets the base-language subject, because variant outranks locale."""
        gaps = []
        for (message, variant, locale, part), name in sorted(self._index.items(), key=lambda kv: kv[1]):
            if variant is None or locale is not None:
                continue
            for other in sorted(self.locales_of(message)):
                localized = (message, None, other, part) in self._index
                covered = any((message, variant, c, part) in self._index for c in locale_candidates(other))
                if localized and not covered:
                    gaps.append(
                        TemplateProblem(
                            name,
                            1,
                            f"'{other}' contacts in variant '{variant}' get this "
                            f"base-language {part}; add {message}/{variant}/{other}/{part}",
                        )
                    )
        return gaps

    def missing_parts(self, message: str, channel: str) -> tuple[str, ...]:
        """Required parts of the channel with no base template (the base is what every lookup ends at)."""
        if channel not in CHANNEL_PARTS:
            raise ValueError(f"unknown channel '{channel}'; channels: {', '.join(CHANNEL_PARTS)}")
        return tuple(
            p for p in CHANNEL_PARTS[channel] if p not in OPTIONAL_PARTS and (message, None, None, p) not in self._index
        )

    def has_channel(self, message: str, channel: str) -> bool:
        """Whether the message renders on that channel for every locale and variant."""
        return not self.missing_parts(message, channel)

    def resolve(self, message: str, part: str, *, locale: str | None = None, variant: str | None = None) -> str | None:
        """The template used for one part: variant+locale, variant, locale, base (locale "en-US" also
        tries "en" at each level); None when no level has it."""
        locales: list[str | None] = [*locale_candidates(locale), None]
        for v in ([variant] if variant else []) + [None]:
            for loc in locales:
                name = self._index.get((message, v, loc, part))
                if name is not None:
                    return name
        return None

    # -- rendering ----------------------------------------------------------------------------------
    def render_template(self, name: str, context: Mapping[str, Any]) -> str:
        """One template rendered and stripped; any Jinja error becomes a TemplateProblem with its line."""
        if name not in self._sources or not name.endswith(".j2"):
            raise MissingTemplate(name, 1, f"template '{name}' does not exist")
        try:
            return self._env.get_template(name).render(dict(context)).strip()
        except Exception as exc:  # a template can fail in many ways; each must name its file and line
            raise _problem(exc, name, self._sources) from exc

    def render(
        self,
        message: str,
        channel: str,
        context: Mapping[str, Any],
        *,
        locale: str | None = None,
        variant: str | None = None,
    ) -> Rendered:
        """The message on one channel for one contact (subject/text/html for email, text otherwise)."""
        if channel not in CHANNEL_PARTS:
            raise ValueError(f"unknown channel '{channel}'; channels: {', '.join(CHANNEL_PARTS)}")
        texts: dict[str, str] = {}
        used: list[str] = []
        for part in CHANNEL_PARTS[channel]:
            name = self.resolve(message, part, locale=locale, variant=variant)
            if name is None:
                if part in OPTIONAL_PARTS:
                    continue
                raise MissingTemplate(
                    f"{message}/{part}", 1, f"message '{message}' has no {part} (needed to send {channel})"
                )
            text = self.render_template(name, context)
            if not text:
                raise TemplateProblem(name, 1, "renders empty; a customer would get a blank message")
            texts[part] = text
            used.append(name)
        if channel == "email":
            subject = " ".join(texts["email.subject.j2"].split())  # one header line: no CR/LF injection
            return Rendered(channel, subject, texts["email.txt.j2"], texts.get("email.html.j2"), tuple(used))
        return Rendered(channel, None, texts[CHANNEL_PARTS[channel][0]], None, tuple(used))

    def resolve_script(self, script: str, *, locale: str | None = None) -> str | None:
        for loc in locale_candidates(locale):
            name = f"{SCRIPTS_DIR}/{loc}/{script}.md.j2"
            if name in self._sources:
                return name
        name = f"{SCRIPTS_DIR}/{script}.md.j2"
        return name if name in self._sources else None

    def render_script(self, script: str, context: Mapping[str, Any], *, locale: str | None = None) -> str:
        """An agent call script (Markdown), with the same context and facts as the messages."""
        name = self.resolve_script(script, locale=locale)
        if name is None:
            raise MissingTemplate(f"{SCRIPTS_DIR}/{script}.md.j2", 1, f"call script '{script}' does not exist")
        return self.render_template(name, context)

    # -- WhatsApp approved templates ----------------------------------------------------------------
    def whatsapp_template(
        self, message: str, context: Mapping[str, Any], *, locale: str | None = None, variant: str | None = None
    ) -> ApprovedTemplate | None:
        """The approved template for sends outside WhatsApp's 24h window, or None if the message has none."""
        name = self.resolve(message, WHATSAPP_TEMPLATE, locale=locale, variant=variant)
        return None if name is None else self.approved_template(name, context)

    def approved_template(self, name: str, context: Mapping[str, Any]) -> ApprovedTemplate:
        """One whatsapp.yaml checked and its variables rendered (validation calls this for every file)."""
        spec = self._whatsapp.get(name)
        if spec is None:
            if name not in self._sources:
                raise MissingTemplate(name, 1, f"'{name}' does not exist")
            spec = self._whatsapp[name] = _parse_whatsapp(name, self._sources[name], self._env)
        variables: dict[str, str] = {}
        for key, (template, line) in spec.variables.items():
            try:
                value = template.render(dict(context))
            except Exception as exc:
                raise TemplateProblem(name, line, f"variable {key}: {_describe(exc)}") from exc
            # Meta refuses parameters that are empty or hold new lines, tabs or runs of spaces.
            value = " ".join(value.split())
            if not value:
                raise TemplateProblem(
                    name, line, f"variable {key} renders empty; WhatsApp refuses empty template parameters"
                )
            variables[key] = value
        return ApprovedTemplate(spec.content_sid, spec.category, variables)


def _parse_whatsapp(name: str, source: str, env: Environment) -> _WhatsAppSpec:
    """Parse and check whatsapp.yaml: content_sid, category, variables ("1".."100" -> Jinja expression)."""
    try:
        for event in yaml.parse(source, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise TemplateProblem(name, event.start_mark.line + 1, "YAML aliases (*name) are not allowed here")
        data = yaml.safe_load(source)
        root = yaml.compose(source, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise TemplateProblem(name, mark.line + 1 if mark else 1, f"invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise TemplateProblem(name, 1, "must be a mapping with content_sid, category and variables")
    lines = _key_lines(root)
    unknown = [k for k in data if k not in _WHATSAPP_KEYS]
    if unknown:
        raise TemplateProblem(
            name, lines.get(str(unknown[0]), 1), f"unknown key '{unknown[0]}'; allowed: {', '.join(_WHATSAPP_KEYS)}"
        )
    sid = data.get("content_sid")
    if not isinstance(sid, str) or not _CONTENT_SID.match(sid):
        raise TemplateProblem(
            name,
            lines.get("content_sid", 1),
            "content_sid must be the Twilio Content SID of the approved template: "
            f"'HX' and 32 hex digits (got {sid!r})",
        )
    category = data.get("category")
    if not isinstance(category, str) or category.upper() not in WHATSAPP_CATEGORIES:
        raise TemplateProblem(
            name,
            lines.get("category", 1),
            f"category must be one of {', '.join(WHATSAPP_CATEGORIES)} (got {category!r})",
        )
    raw = data.get("variables") or {}
    where = lines.get("variables", 1)
    if not isinstance(raw, dict):
        raise TemplateProblem(
            name, where, "variables must map numbers to Jinja expressions, e.g. {1: contact.first_name, 2: facts.offer}"
        )
    if len(raw) > MAX_WHATSAPP_VARIABLES:
        raise TemplateProblem(name, where, f"{len(raw)} variables; Twilio allows at most {MAX_WHATSAPP_VARIABLES}")
    value_lines = _key_lines(_child(root, "variables"))
    variables: dict[str, tuple[Template, int]] = {}
    for key, expression in raw.items():
        text = str(key) if isinstance(key, int | str) and not isinstance(key, bool) else ""
        line = value_lines.get(text, where)
        if not _VARIABLE_KEY.match(text) or int(text) > MAX_WHATSAPP_VARIABLES:
            raise TemplateProblem(
                name,
                line,
                f"variable {key!r}: names are the numbers 1 to 100 of the "
                "template's {{1}}, {{2}} ... placeholders",
            )
        if text in variables:
            raise TemplateProblem(name, line, f"variable {text} is given twice")
        if not isinstance(expression, str) or not expression.strip():
            raise TemplateProblem(
                name, line, f"variable {text} must be a Jinja expression such as contact.first_name or facts.offer"
            )
        body = expression if ("{{" in expression or "{%" in expression) else "{{ " + expression + " }}"
        try:
            variables[text] = (env.from_string(body), line)
        except TemplateSyntaxError as exc:
            raise TemplateProblem(name, line, f"variable {text}: syntax error: {exc.message}") from None
    return _WhatsAppSpec(sid, category.upper(), variables)


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return v
    return None


def _key_lines(node: yaml.Node | None) -> dict[str, int]:
    """1-based line of each key of a mapping node, by the key's text."""
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(k.value): k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}


# -- contexts ---------------------------------------------------------------------------------------
_SAMPLE_CONTACTS: dict[str, dict[str, str]] = {
    "id": {
        "external_id": "sample-0001",
        "name": "Budi Santoso",
        "email": "budi.santoso@example.co.id",
        "phone": "+6281234567890",
        "whatsapp": "+6281234567890",
        "country": "ID",
        "timezone": "Asia/Jakarta",
    },
    "en": {
        "external_id": "sample-0001",
        "name": "Alex Morgan",
        "email": "alex.morgan@example.com",
        "phone": "+12125550123",
        "whatsapp": "+12125550123",
        "country": "US",
        "timezone": "America/New_York",
    },
}
_SAMPLE_SENDER = {"name": "Acme Nusantara", "address": "Jl. Jenderal Sudirman Kav. 52-53, Jakarta 12190, Indonesia"}
_SAMPLE_UNSUBSCRIBE_URL = "https://outreach.example.com/u/sample-unsubscribe-token"


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _jsonable(value: Any) -> Any:
    """Facts as the workflow's JSON snapshot carries them, so validation sees what send time sees."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def build_context(
    contact: Mapping[str, Any],
    facts: Mapping[str, Any] | None,
    cadence: Mapping[str, Any],
    step: Mapping[str, Any],
    sender: Mapping[str, Any],
    unsubscribe_url: str,
) -> dict[str, Any]:
    """The runtime template context: contact (its fields as text, "" when unknown, plus first_name and
    attributes), facts, cadence {id, name}, step {id, channel, variant}, sender {name, address},
    unsubscribe_url. Only these keys, so a template validated with `sample_context` finds them at send time."""
    fields: dict[str, Any] = {f: _text(contact.get(f)) for f in CONTACT_FIELDS}
    fields["first_name"] = next(iter(fields["name"].split()), "")
    fields["attributes"] = dict(contact.get("attributes") or {})
    return {
        "contact": fields,
        "facts": _jsonable(dict(facts or {})),
        "cadence": {"id": _text(cadence.get("id")), "name": _text(cadence.get("name"))},
        "step": {key: _text(step.get(key)) for key in ("id", "channel", "variant")},
        "sender": {"name": _text(sender.get("name")), "address": _text(sender.get("address"))},
        "unsubscribe_url": unsubscribe_url,
    }


def sample_context(
    cadence_id: str, cadence_name: str, facts: Mapping[str, Any] | None, step_id: str | None, *, locale: str | None
) -> dict[str, Any]:
    """A realistic context for validation and preview: a sample contact speaking the locale's language
    (Indonesian or English), no attributes, so every name a template uses must really exist."""
    candidates = locale_candidates(locale)
    persona = _SAMPLE_CONTACTS.get(candidates[-1] if candidates else "en", _SAMPLE_CONTACTS["en"])
    contact = {**persona, "locale": candidates[0] if candidates else "en", "attributes": {}}
    return build_context(
        contact,
        facts,
        {"id": cadence_id, "name": cadence_name},
        {"id": step_id},
        _SAMPLE_SENDER,
        _SAMPLE_UNSUBSCRIBE_URL,
    )


# -- date filters -----------------------------------------------------------------------------------
_DAYS = {
    "id": ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS = {
    "id": (
        "Januari",
        "Februari",
        "Maret",
        "April",
        "Mei",
        "Juni",
        "Juli",
        "Agustus",
        "September",
        "Oktober",
        "November",
        "Desember",
    ),
    "en": (
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ),
}
_SHORT_MONTHS = {
    "id": ("Jan", "Feb", "Mar", "Apr", "Mei", "Jun", "Jul", "Agu", "Sep", "Okt", "Nov", "Des"),
    "en": ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"),
}
_ID_ZONES = {7: "WIB", 8: "WITA", 9: "WIT"}


def _language(lang: str | None) -> str:
    """Indonesian for "id"/"id-ID", English otherwise (the two languages the shipped filters speak)."""
    candidates = locale_candidates(lang)
    return "id" if candidates and candidates[-1] == "id" else "en"


def _moment(value: Any, tz: str | None) -> dt.date:
    """A date or date-time from a fact (ISO 8601 text or a date), shown in the contact's zone if known."""
    if isinstance(value, str):
        text = value.strip()
        try:
            value = dt.date.fromisoformat(text) if len(text) == 10 else dt.datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO 8601 date or date-time") from None
    if isinstance(value, dt.datetime):
        if tz and isinstance(tz, str) and value.tzinfo is not None:
            # an unknown zone keeps the fact's own offset, which is still labelled correctly
            with contextlib.suppress(ZoneInfoNotFoundError, ValueError):
                value = value.astimezone(ZoneInfo(tz))
        return value
    if isinstance(value, dt.date):
        return value
    raise TypeError(f"expected a date or date-time, got {type(value).__name__} {value!r}")


def _zone_label(moment: dt.datetime, lang: str) -> str:
    name = moment.tzname() or ""
    if name and name[0] not in "+-" and not name.startswith("UTC"):
        return name  # WIB, WITA, EST...
    offset = moment.utcoffset() or dt.timedelta(0)
    minutes = int(offset.total_seconds() // 60)
    if lang == "id" and minutes % 60 == 0 and minutes // 60 in _ID_ZONES:
        return _ID_ZONES[minutes // 60]
    if minutes == 0:
        return "UTC"
    sign, minutes = ("+" if minutes > 0 else "-"), abs(minutes)
    return f"UTC{sign}{minutes // 60}" + (f":{minutes % 60:02d}" if minutes % 60 else "")


def date_long(value: Any, lang: str = "en", tz: str | None = None) -> str:
    """ "Kamis, 3 Desember 2026" / "Thursday, 3 December 2026"."""
    language, day = _language(lang), _moment(value, tz)
    return f"{_DAYS[language][day.weekday()]}, {day.day} {_MONTHS[language][day.month - 1]} {day.year}"


def date_short(value: Any, lang: str = "en", tz: str | None = None, weekday: bool = True) -> str:
    """ "Kam 3 Des" / "Thu 3 Dec" (or "3 Des" without the weekday): for SMS and subjects."""
    language, day = _language(lang), _moment(value, tz)
    short = f"{day.day} {_SHORT_MONTHS[language][day.month - 1]}"
    return f"{_DAYS[language][day.weekday()][:3]} {short}" if weekday else short


def time_short(value: Any, lang: str = "en", tz: str | None = None) -> str:
    """ "10.00 WIB" / "10:00 WIB" (24-hour clock, zone abbreviation or UTC offset)."""
    language, moment = _language(lang), _moment(value, tz)
    if not isinstance(moment, dt.datetime):
        raise TypeError(f"{value!r} is a date without a time of day")
    clock = f"{moment.hour:02d}{'.' if language == 'id' else ':'}{moment.minute:02d}"
    label = _zone_label(moment, language) if moment.tzinfo is not None else ""
    return f"{clock} {label}".strip()


def datetime_long(value: Any, lang: str = "en", tz: str | None = None) -> str:
    """ "Kamis, 3 Desember 2026 pukul 10.00 WIB" / "Thursday, 3 December 2026 at 10:00 WIB"."""
    language = _language(lang)
    joiner = "pukul" if language == "id" else "at"
    return f"{date_long(value, lang, tz)} {joiner} {time_short(value, lang, tz)}"
