"""`omnireach lint [PATH..]`: findings that valid cadences can still have, as `path:line:col: rule-id: message`."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.table import Table

from cli.toolkit import content_settings, err, load_content
from content.cadences import cadence_files
from core.cadence_loader import CadenceLoad, parse_cadence
from core.lint import ERROR, RULES, WARNING, Finding, exit_code, lint_cadence
from core.yamlsource import SourceError


def lint(
    paths: list[Path] = typer.Argument(None, help="Cadence files or folders (default: cadences/)"),
    templates: Path = typer.Option(None, help="Templates folder (default: templates/)"),
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on warnings too, not only on errors"),
    rules: bool = typer.Option(False, "--rules", help="List the rules and their severity, then exit"),
) -> None:
    """Check cadences and their messages for what breaks the law, costs money or never runs.

    Exit code: 1 when any finding is an error (with --strict: any finding), else 0.
    """
    if rules:
        _print_rules()
        return
    settings = content_settings()
    content = load_content(templates, settings)
    files = cadence_files(paths or [settings.cadences_dir])
    if not files:
        err.print("[red]error:[/red] no cadence files found (give files or folders, default cadences/)")
        raise typer.Exit(2)
    findings: set[Finding] = set()
    for path in files:
        load = _parse(path)
        findings.update(lint_cadence(load, content.sources, content.catalog, template_root=str(content.templates_dir)))
    ordered = sorted(findings)
    for finding in ordered:
        print(finding)
    sys.stdout.flush()
    errors = sum(1 for f in ordered if f.severity == ERROR)
    warnings = sum(1 for f in ordered if f.severity == WARNING)
    if ordered:
        colour = "red" if errors else "yellow"
        err.print(f"[{colour}]{errors} error(s), {warnings} warning(s)[/{colour}] in {len(files)} cadence file(s)")
    else:
        err.print(f"[green]ok[/green]: no findings in {len(files)} cadence file(s)")
    raise typer.Exit(exit_code(ordered, strict=strict))


def _parse(path: Path) -> CadenceLoad:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        return CadenceLoad(str(path), errors=[SourceError(str(path), 1, 1, f"cannot read the file: {exc}")])
    return parse_cadence(text, str(path))


def _print_rules() -> None:
    table = Table(title="omnireach lint rules")
    table.add_column("rule")
    table.add_column("severity")
    table.add_column("finds")
    for rule, (severity, what) in RULES.items():
        table.add_row(rule, severity, what)
    from rich.console import Console

    Console().print(table)
