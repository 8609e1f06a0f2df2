"""Template problems found by `validate`, as `path:line:col` errors that say what to write instead.

Jinja reports an undefined name as "'dict object' has no attribute 'offr'" on a line. A marketer
needs the column, the whole expression (`facts.offr`) and what does exist (the cadence's facts,
the contact's fields), so we find the expression in the template line and name them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from core.messages import CONTACT_FIELDS, TemplateProblem
from core.yamlsource import SourceError

_CONTEXT = "contact, facts, cadence, step, sender and unsubscribe_url"
_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'")
_NAME = re.compile(r"'([^']+)' is undefined")
_PREFIX = re.compile(r"^((?:variable \S+: )?)undefined:")


def explain_template_problem(
    problem: TemplateProblem,
    root: str,
    sources: Mapping[str, str],
    facts: Mapping[str, Any] | None,
    cadence_id: str,
) -> SourceError:
    """The problem at its template file, line and (for an undefined name) column, with a fix."""
    path = f"{root.rstrip('/')}/{problem.template}"
    source = sources.get(problem.template)
    lines = source.splitlines() if source else []
    line_text = lines[problem.line - 1] if 0 < problem.line <= len(lines) else ""
    attribute = _ATTRIBUTE.search(problem.message)
    bare = _NAME.search(problem.message)
    prefix = _PREFIX.match(problem.message)  # "undefined: ..." or, in whatsapp.yaml, "variable 2: undefined: ..."
    if prefix and line_text and (attribute or bare):
        found = _find_expression(line_text, attribute.group(1) if attribute else None, bare.group(1) if bare else None)
        if found is not None:
            column, expression = found
            message = f"{prefix.group(1)}undefined: '{expression}'{_hint(expression, facts, cadence_id)}"
            return SourceError(path, problem.line, column, message)
    return SourceError(path, problem.line, 1, problem.message)


def _find_expression(line: str, attribute: str | None, bare: str | None) -> tuple[int, str] | None:
    """(1-based column, expression text) of the first use of the undefined name on the line."""
    if attribute is not None:
        name = re.escape(attribute)
        dotted = re.compile(rf"\b([A-Za-z_]\w*(?:\s*\.\s*[A-Za-z_]\w*)*)\s*\.\s*{name}\b")
        match = dotted.search(line)
        if match:
            expression = re.sub(r"\s+", "", match.group(0))
            return match.start() + 1, expression
        subscript = re.compile(rf"\b([A-Za-z_][\w.]*)\s*\[\s*['\"]{name}['\"]\s*\]")
        match = subscript.search(line)
        if match:
            return match.start() + 1, f"{match.group(1)}.{attribute}"
    if bare is not None:
        match = re.search(rf"(?<![\w.]){re.escape(bare)}\b", line)
        if match:
            return match.start() + 1, bare
    return None


def _hint(expression: str, facts: Mapping[str, Any] | None, cadence_id: str) -> str:
    parts = expression.split(".")
    if parts[0] == "facts" and len(parts) >= 2:
        known = ", ".join(sorted(map(str, facts or {}))) or "none"
        return (
            f"; cadence '{cadence_id}' has these facts: {known}; add '{parts[1]}' under facts: in the cadence "
            "or fix the name"
        )
    if parts[:2] == ["contact", "attributes"]:
        name = parts[2] if len(parts) > 2 else "name"
        return (
            f"; attributes differ per contact, so give a fallback: {{{{ contact.attributes.{name} | default('...') }}}}"
        )
    if parts[0] == "contact":
        fields = ", ".join((*CONTACT_FIELDS, "first_name", "attributes"))
        return f"; a contact has {fields}"
    return f"; a template may use {_CONTEXT}"
