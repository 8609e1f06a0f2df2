"""`omnireach preview CADENCE --contact FILE [--html DIR]`: every message of every step, rendered for one contact.

Per step, channel (and fallback), locale and A/B variant, with SMS encoding and segments, the approved
WhatsApp template used outside the 24h session, and the agents' call scripts. The locale this contact
would get is marked. `--html DIR` writes DIR/preview.html (email HTML shown as the inbox would).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from rich.console import Console
from rich.markdown import Markdown
from rich.markup import escape
from rich.panel import Panel

from cli.toolkit import content_settings, err, find_cadence, load_content
from core.lint import opt_out_keyword
from core.messages import build_context, locale_candidates
from core.model import Cadence
from core.renderings import MessageCase, ScriptCase, message_cases, message_locales, script_cases
from core.yamlsource import YamlSourceError, load_located

out = Console()


class ContactFile(BaseModel):
    """The contact to preview for (YAML or JSON); every field optional, unknown fields refused."""

    model_config = ConfigDict(extra="forbid")

    external_id: str = "preview"
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    whatsapp: str | None = None
    country: str | None = None
    timezone: str | None = None
    locale: str | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


def read_contact(path: Path) -> ContactFile:
    """Parse the contact file; errors name path:line:col and stop the command."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        err.print(f"[red]error:[/red] {path}: cannot read the contact file: {exc}")
        raise typer.Exit(2) from exc
    try:
        doc = load_located(text, str(path))
        return ContactFile.model_validate(doc.data if isinstance(doc.data, dict) else {"name": doc.data})
    except YamlSourceError as exc:
        err.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    except ValidationError as exc:
        for problem in exc.errors(include_url=False):
            loc = tuple(problem["loc"])
            pos = doc.locate(loc, key=problem["type"] == "extra_forbidden")
            what = f"unknown field '{loc[-1]}'" if problem["type"] == "extra_forbidden" else problem["msg"]
            err.print(f"{path}:{pos.line}:{pos.column}: {'.'.join(map(str, loc))}: {what}")
        err.print(
            "[red]error:[/red] a contact file holds external_id, name, email, phone, whatsapp, country, "
            "timezone, locale and attributes"
        )
        raise typer.Exit(2) from exc


def preview(
    cadence_ref: str = typer.Argument(..., metavar="CADENCE", help="Cadence id or YAML file"),
    contact: Path = typer.Option(..., "--contact", help="The contact (YAML or JSON: name, email, locale, ...)"),
    html_dir: Path = typer.Option(None, "--html", help="Also write DIR/preview.html"),
    templates: Path = typer.Option(None, help="Templates folder (default: templates/)"),
) -> None:
    """Every message of every step rendered for one contact, per channel, locale and variant."""
    settings = content_settings()
    content = load_content(templates, settings)
    cadence = find_cadence(cadence_ref, settings, content)
    person = read_contact(contact)
    fields = person.model_dump()
    sender = {"name": settings.sender_name, "address": settings.sender_address}
    unsubscribe = f"{settings.public_url}/u/preview-token"

    def context_for(locale: str, step_id: str, channel: str, variant: str | None) -> dict:
        cadence_info = {"id": cadence.id, "name": cadence.name}
        step = {"id": step_id, "channel": channel, "variant": variant}
        return build_context(fields, cadence.facts, cadence_info, step, sender, unsubscribe)

    cases = list(message_cases(content.catalog, cadence, context_for))
    locales = sorted({c.locale for c in cases} | {cadence.locale})
    scripts = list(script_cases(content.catalog, cadence, context_for, locales))
    own = {c.message: _own_locale(content.catalog, cadence, c.message, person.locale) for c in cases}
    out.print(f"[bold]{cadence.name}[/bold] ({cadence.id}) for {person.name or person.external_id}")
    for case in cases:
        _show(case, own[case.message] == case.locale)
    for script in scripts:
        _show_script(script)
    problems = sum(1 for c in cases if c.problem) + sum(1 for s in scripts if s.problem or s.text is None)
    if html_dir is not None:
        html_dir.mkdir(parents=True, exist_ok=True)
        page = html_dir / "preview.html"
        page.write_text(_page(cadence, person, cases, scripts, own), encoding="utf-8")
        err.print(f"wrote {page}")
    if problems:
        err.print(f"[red]{problems} message(s) or script(s) cannot be rendered[/red]")
        raise typer.Exit(1)


def _own_locale(catalog: Any, cadence: Cadence, message: str, contact_locale: str | None) -> str:
    """The locale column this contact gets (its own locale folder when the message has one, else the base)."""
    available = message_locales(catalog, cadence, message)
    for candidate in locale_candidates(contact_locale):
        if candidate in available:
            return candidate
    return cadence.locale


def _title(case: MessageCase, own: bool) -> str:
    parts = [f"step {case.step_id}", case.channel + (" (fallback)" if case.fallback else ""), f"locale {case.locale}"]
    if case.variant:
        parts.append(f"variant {case.variant}")
    return " · ".join(parts) + ("  ← this contact" if own else "")


def sms_note(text: str) -> str:
    from core.sms import segment_info

    info = segment_info(text)
    limit = (160 if info.encoding == "GSM-7" else 70) if info.segments == 1 else None
    size = f"{info.units}/{limit} units" if limit else f"{info.units} units"
    keyword = opt_out_keyword(text)
    return f"{info.encoding} · {info.segments} segment(s) · {size} · {info.chars} characters · opt-out: " + (
        keyword or "none"
    )


def _show(case: MessageCase, own: bool) -> None:
    title = _title(case, own)
    if case.problem is not None:
        out.print(Panel(f"[red]{escape(str(case.problem))}[/red]", title=title, border_style="red"))
        return
    rendered = case.rendered
    assert rendered is not None
    body = ""
    if rendered.subject:
        body += f"[bold]Subject:[/bold] {escape(rendered.subject)}\n\n"
    body += escape(rendered.text)
    subtitle = "templates: " + ", ".join(rendered.template_names)
    if case.channel == "sms":
        body += f"\n\n[bold]{sms_note(rendered.text)}[/bold]"
    if case.channel == "whatsapp":
        if case.approved is not None:
            variables = ", ".join(f"{{{{{k}}}}}={v!r}" for k, v in case.approved.variables.items())
            approved = case.approved
            body += f"\n\n[dim]outside 24h: approved template {approved.content_sid} ({approved.category})"
            body += f": {escape(variables)}[/dim]"
        elif case.approved_problem is not None:
            body += f"\n\n[red]approved template: {escape(str(case.approved_problem))}[/red]"
        else:
            body += "\n\n[yellow]no approved template: outside the 24h session this is not sent[/yellow]"
    out.print(Panel(body, title=escape(title), subtitle=escape(subtitle), border_style="green" if own else "blue"))


def _show_script(script: ScriptCase) -> None:
    title = f"call script {script.script} · {script.where} · locale {script.locale}"
    if script.text is None:
        message = str(script.problem) if script.problem else f"script '{script.script}' does not exist"
        out.print(Panel(f"[red]{escape(message)}[/red]", title=title, border_style="red"))
        return
    out.print(Panel(Markdown(script.text), title=title, subtitle=script.template or ""))


def _page(
    cadence: Cadence, person: ContactFile, cases: list[MessageCase], scripts: list[ScriptCase], own: dict[str, str]
) -> str:
    esc = html.escape
    rows = []
    for case in cases:
        title = esc(_title(case, own[case.message] == case.locale))
        if case.problem is not None:
            rows.append(f"<section class='bad'><h2>{title}</h2><pre>{esc(str(case.problem))}</pre></section>")
            continue
        rendered = case.rendered
        assert rendered is not None
        parts = [f"<h2>{title}</h2>", f"<p class='meta'>templates: {esc(', '.join(rendered.template_names))}</p>"]
        if case.channel == "sms":
            parts.append(f"<p class='meta'>{esc(sms_note(rendered.text))}</p>")
        if rendered.subject:
            parts.append(f"<p><b>Subject:</b> {esc(rendered.subject)}</p>")
        parts.append(f"<pre>{esc(rendered.text)}</pre>")
        if rendered.html:
            parts.append(f'<iframe sandbox srcdoc="{esc(rendered.html, quote=True)}"></iframe>')
        if case.approved is not None:
            variables = ", ".join(f"{{{{{k}}}}} = {v}" for k, v in case.approved.variables.items())
            parts.append(
                f"<p class='meta'>outside 24h: approved template {esc(case.approved.content_sid)} "
                f"({esc(case.approved.category)}): {esc(variables)}</p>"
            )
        elif case.channel == "whatsapp":
            parts.append("<p class='meta'>no approved template: outside the 24h session this is not sent</p>")
        rows.append("<section>" + "".join(parts) + "</section>")
    for script in scripts:
        title = esc(f"call script {script.script} · {script.where} · locale {script.locale}")
        text = script.text if script.text is not None else str(script.problem or "missing")
        rows.append(f"<section><h2>{title}</h2><pre>{esc(text)}</pre></section>")
    who = esc(person.name or person.external_id)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Preview: {esc(cadence.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; background: #f6f7f9; color: #1f2933; }}
section {{ background: #fff; border-radius: 8px; padding: 1rem 1.5rem; margin: 1rem 0; }}
section.bad {{ border-left: 4px solid #c0392b; }}
h2 {{ font-size: 1rem; margin: 0 0 .5rem; }}
pre {{ white-space: pre-wrap; font-family: ui-monospace, monospace; background: #f0f2f5; padding: .75rem; }}
.meta {{ color: #52606d; font-size: .85rem; }}
iframe {{ width: 100%; height: 520px; border: 1px solid #e4e7eb; background: #fff; }}
</style></head><body>
<h1>{esc(cadence.name)} <small>({esc(cadence.id)})</small></h1>
<p>Every message for {who} (locale {esc(person.locale or "-")}, timezone {esc(person.timezone or "-")}).</p>
{"".join(rows)}
</body></html>
"""
