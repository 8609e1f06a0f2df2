"""`omnireach validate` and `omnireach schema`, run as a user runs them: the real command in a project folder.

Every error must be one `path:line:col: message` line on stdout, with the column pointing at the key
(unknown keys), at the value (wrong values) or inside the condition (condition errors); exit code 1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.model import cadence_json_schema
from core.yamlsource import load_located

OMNIREACH = Path(sys.executable).parent / "omnireach"
REPO = Path(__file__).resolve().parents[2]

TEMPLATES = {
    "hello/sms.j2": "Hi {{ contact.first_name }}, {{ facts.offer }} is waiting.\nReply STOP to opt out.\n",
    "hello/email.subject.j2": "{{ facts.offer }} for you\n",
    "hello/email.txt.j2": "Hello {{ contact.first_name }},\n\n{{ facts.offer }}\n\nStop: {{ unsubscribe_url }}\n",
    "scripts/qualify.md.j2": "# Call {{ contact.name }}\n\nOffer: {{ facts.offer }}\n",
}

VALID = """\
id: demo
name: Demo
purpose: marketing
facts:
  offer: Free trial
steps:
  - id: hello
    send: sms
    message: hello
  - wait: 2d
  - id: follow-up
    send: email
    message: hello
    if: "not opened('hello')"
"""


def run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OMNIREACH_")}
    return subprocess.run(
        [str(OMNIREACH), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A marketer's project folder: cadences/ (empty) and templates/ for one message and one script."""
    (tmp_path / "cadences").mkdir()
    for name, text in TEMPLATES.items():
        path = tmp_path / "templates" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


def validate(project: Path, cadence: str, *, name: str = "demo.yaml") -> tuple[int, list[str], str]:
    (project / "cadences" / name).write_text(textwrap.dedent(cadence), encoding="utf-8")
    result = run(project, "validate")
    return result.returncode, result.stdout.splitlines(), result.stderr


def test_a_valid_project_passes(project: Path) -> None:
    code, lines, stderr = validate(project, VALID)
    assert (code, lines) == (0, [])
    assert "ok: 1 cadence(s) valid: demo" in stderr
    assert not (project / "var").exists(), "validate must not write anything (no secret key, no database)"


# Each case: the cadence as written, and every line validate must print for it.
CASES = {
    "unknown key": (
        """\
        id: demo
        name: Demo
        purpose: marketing
        colour: blue
        facts:
          offer: Free trial
        window:
          days: [mon, tue]
          hour: "09:00-17:00"
        steps:
          - id: hello
            send: sms
            message: hello
            mesage: hi
        """,
        [
            "cadences/demo.yaml:4:1: unknown key 'colour'; allowed: id, name, purpose, locale, facts, window, caps, "
            "score, exit_on, escalate, handoff, steps",
            "cadences/demo.yaml:9:3: unknown key 'hour' (did you mean 'hours'?); allowed: days, hours, skip_holidays",
            "cadences/demo.yaml:14:5: unknown key 'mesage' (did you mean 'message'?); a send step allows id, if, "
            "send, message, variants, fallback",
        ],
    ),
    "wrong type": (
        """\
        id: demo
        name: Demo
        purpose: marketing
        facts:
          offer: Free trial
        caps:
          per_day: lots
        window:
          skip_holidays: maybe
        exit_on: replied
        steps:
          - id: hello
            send: sms
            message: 42
          - send: pigeon
            message: hello
        """,
        [
            "cadences/demo.yaml:7:12: per_day: must be a whole number (got 'lots')",
            "cadences/demo.yaml:9:18: skip_holidays: must be true or false (got 'maybe')",
            "cadences/demo.yaml:10:10: exit_on: must be a list, e.g. [a, b] (got 'replied')",
            "cadences/demo.yaml:14:14: message: must be text, not 42; put it in quotes",
            "cadences/demo.yaml:15:11: send: must be one of 'email', 'sms', 'whatsapp', 'voice' (got 'pigeon')",
        ],
    ),
    "bad duration": (
        """\
        id: demo
        name: Demo
        purpose: marketing
        facts:
          offer: Free trial
        escalate:
          when: "score >= 10"
          queue: telemarketing
          script: qualify
          sla: 1.5h
        steps:
          - id: hello
            send: sms
            message: hello
          - wait: 2 days
          - wait: 90
        """,
        [
            "cadences/demo.yaml:10:8: sla: bad duration '1.5h': write a whole number and one unit: 30s, 15m, 2h, "
            "3d or 1w (did you mean 90m?)",
            "cadences/demo.yaml:15:11: wait: bad duration '2 days': write a whole number and one unit: 30s, 15m, "
            "2h, 3d or 1w (did you mean 2d?)",
            "cadences/demo.yaml:16:11: wait: bad duration 90: write a whole number and one unit: 30s, 15m, 2h, 3d "
            "or 1w (a number alone has no unit)",
        ],
    ),
    "condition naming an unknown step": (
        """\
        id: demo
        name: Demo
        purpose: marketing
        facts:
          offer: Free trial
        steps:
          - id: hello
            send: sms
            message: hello
          - wait: 1d
            until: "clicked('hello') or opened('helo')"
          - id: again
            send: sms
            message: hello
            if:   "not delivered('wait-2')"
        """,
        [
            "cadences/demo.yaml:11:41: until: condition names unknown step 'helo'; steps that send: again, hello",
            "cadences/demo.yaml:15:27: if: step 'wait-2' sends nothing, so delivered/opened/clicked('wait-2') can "
            "never be true",
        ],
    ),
    "condition syntax error": (
        """\
        id: demo
        name: Demo
        purpose: marketing
        facts:
          offer: Free trial
        steps:
          - id: hello
            send: sms
            message: hello
            if: "score >= 10 and"
          - wait: 1d
            until: score => 3
          - id: again
            send: sms
            message: hello
            if: "opened('hello') && score > 1"
        """,
        [
            "cadences/demo.yaml:10:24: if: syntax error: the condition ends too early (a value, a closing bracket "
            "or quote is missing); e.g. \"score >= 10 and not opened('invite')\"",
            "cadences/demo.yaml:12:18: until: syntax error: invalid syntax; write '>=' instead of '=>'",
            "cadences/demo.yaml:16:26: if: syntax error: invalid syntax; write 'and' instead of '&&'",
        ],
    ),
    "a message missing the template for its channel": (
        """\
        id: demo
        name: Demo
        purpose: marketing
        facts:
          offer: Free trial
        steps:
          - id: hello
            send: whatsapp
            message: hello
            fallback: sms
          - id: ring
            send: sms
            message: helo
        """,
        [
            "cadences/demo.yaml:8:11: message 'hello' has no whatsapp template; create templates/hello/whatsapp.j2",
            "cadences/demo.yaml:13:14: message 'helo' not found; create templates/helo/sms.j2",
        ],
    ),
    "a !!python/object tag": (
        """\
        id: demo
        name: !!python/object/apply:os.system ["touch pwned"]
        purpose: marketing
        facts:
          offer: !!python/object:builtins.dict {}
        steps:
          - id: hello
            send: sms
            message: hello
        """,
        [
            "cadences/demo.yaml:2:7: tag '!!python/object/apply:os.system' is not allowed: cadences hold plain "
            "values only (text, numbers, true/false, lists, mappings); remove the tag",
            "cadences/demo.yaml:5:10: tag '!!python/object:builtins.dict' is not allowed: cadences hold plain "
            "values only (text, numbers, true/false, lists, mappings); remove the tag",
        ],
    ),
    "a billion-laughs document": (
        """\
        id: demo
        name: Demo
        purpose: marketing
        facts:
          a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]
          b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
          c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
          d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
          e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
          f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
          g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
          h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
          i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
        steps:
          - id: hello
            send: sms
            message: hello
        """,
        [
            # a=10, b=91, c=820, d=7381 values; the sixth *d on line 9 would take the count past 50,000
            "cadences/demo.yaml:9:30: alias *d expands to 7381 values, making the document larger than 50000 "
            "values (an alias bomb?); write the values out or nest fewer anchors",
        ],
    ),
    "yaml syntax": (
        "id: demo\nname: Demo\npurpose: marketing\nsteps:\n\t- send: sms\n",
        [
            "cadences/demo.yaml:5:1: YAML syntax: found character '\\t' that cannot start any token; indent with "
            "spaces, not tabs"
        ],
    ),
    "duplicate and merge keys": (
        """\
        id: demo
        name: Demo
        purpose: marketing
        facts: &facts
          offer: Free trial
        purpose: sales
        window:
          <<: {days: [mon]}
        steps:
          - id: hello
            send: sms
            message: hello
        """,
        [
            "cadences/demo.yaml:6:1: duplicate key 'purpose' (first written at line 3); keep only one of them",
            "cadences/demo.yaml:8:3: merge keys (<<) are not supported; write the keys out (anchors for whole "
            "values still work)",
        ],
    ),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_each_error_is_reported_at_its_line_and_column(project: Path, case: str) -> None:
    cadence, expected = CASES[case]
    code, lines, stderr = validate(project, cadence)
    assert lines == expected
    assert code == 1
    assert f"{len(expected)} error(s)" in stderr
    assert not (project / "pwned").exists()


def test_an_undefined_template_variable_points_at_the_template_line_and_column(project: Path) -> None:
    (project / "templates/hello/sms.j2").write_text(
        "Hi {{ contact.first_name }},\nUse code {{ facts.ofer }} today.\n", encoding="utf-8"
    )
    (project / "templates/hello/email.txt.j2").write_text(
        "Hello,\n\n{{ contact.attributes.plan }} plan: {{ facts.offer }}\n", encoding="utf-8"
    )
    code, lines, _ = validate(project, VALID)
    assert lines == [
        "templates/hello/email.txt.j2:3:4: undefined: 'contact.attributes.plan'; attributes differ per contact, so "
        "give a fallback: {{ contact.attributes.plan | default('...') }}",
        "templates/hello/sms.j2:2:13: undefined: 'facts.ofer'; cadence 'demo' has these facts: offer; add 'ofer' "
        "under facts: in the cadence or fix the name",
    ]
    assert code == 1


def test_several_errors_in_one_file_are_all_reported(project: Path) -> None:
    (project / "templates/hello/sms.j2").write_text("Hi,\n{{ facts.ofer }}\n", encoding="utf-8")
    code, lines, stderr = validate(
        project,
        """\
        id: demo
        name: !!python/name:os.system
        purpose: marketing
        colour: blue
        facts:
          offer: Free trial
        caps:
          per_day: lots
        steps:
          - id: hello
            send: sms
            message: hello
          - wait: 2 days
            until: "opened('helo')"
          - id: ring
            send: whatsapp
            message: hello
            if: "score >="
        """,
    )
    assert lines == [
        "cadences/demo.yaml:2:7: tag '!!python/name:os.system' is not allowed: cadences hold plain values only "
        "(text, numbers, true/false, lists, mappings); remove the tag",
        "cadences/demo.yaml:4:1: unknown key 'colour'; allowed: id, name, purpose, locale, facts, window, caps, "
        "score, exit_on, escalate, handoff, steps",
        "cadences/demo.yaml:8:12: per_day: must be a whole number (got 'lots')",
        "cadences/demo.yaml:13:11: wait: bad duration '2 days': write a whole number and one unit: 30s, 15m, 2h, "
        "3d or 1w (did you mean 2d?)",
        "cadences/demo.yaml:14:21: until: condition names unknown step 'helo'; steps that send: hello, ring",
        "cadences/demo.yaml:18:17: if: syntax error: the condition ends too early (a value, a closing bracket or "
        "quote is missing); e.g. \"score >= 10 and not opened('invite')\"",
        "templates/hello/sms.j2:2:4: undefined: 'facts.ofer'; cadence 'demo' has these facts: offer; add 'ofer' "
        "under facts: in the cadence or fix the name",
    ]
    assert code == 1
    assert "7 error(s)" in stderr


def test_the_missing_channel_template_is_found_even_when_other_steps_are_broken(project: Path) -> None:
    code, lines, _ = validate(
        project,
        """\
        id: demo
        name: Demo
        purpose: marketing
        facts:
          offer: Free trial
        steps:
          - id: hello
            send: voice
            message: hello
          - wait: soon
        """,
    )
    assert lines == [
        "cadences/demo.yaml:8:11: message 'hello' has no voice template; create templates/hello/voice.j2",
        "cadences/demo.yaml:10:11: wait: bad duration 'soon': write a whole number and one unit: 30s, 15m, 2h, 3d "
        "or 1w",
    ]
    assert code == 1


def test_a_template_shared_by_two_cadences_fails_once_per_cadence_facts(project: Path) -> None:
    (project / "templates/hello/sms.j2").write_text("Hi {{ contact.nmae }}\n", encoding="utf-8")
    (project / "cadences/other.yaml").write_text(VALID.replace("id: demo", "id: other"), encoding="utf-8")
    code, lines, _ = validate(project, VALID)
    assert lines == [
        "templates/hello/sms.j2:1:7: undefined: 'contact.nmae'; a contact has external_id, name, email, phone, "
        "whatsapp, country, timezone, locale, first_name, attributes"
    ]
    assert code == 1


def test_duplicate_cadence_ids_point_at_the_second_id(project: Path) -> None:
    (project / "cadences/a.yaml").write_text(VALID, encoding="utf-8")
    code, lines, _ = validate(project, "# the same id again\n" + VALID, name="b.yaml")
    assert lines == ["cadences/b.yaml:2:5: cadence id 'demo' is already used by cadences/a.yaml; ids must be unique"]
    assert code == 1


ROUTED_TO_VIP = VALID.replace(
    "steps:\n", 'escalate:\n  when: "score >= 10"\n  queue: vip-desk\n  script: qualify\nsteps:\n', 1
)


def test_queues_are_checked_against_the_projects_queues_yaml(project: Path) -> None:
    """A queue named only in the project's queues.yaml is known; one named nowhere is an error at its value;
    a broken queues.yaml is reported as well, at its own line."""
    code, lines, _ = validate(project, ROUTED_TO_VIP)
    assert code == 1 and lines == [
        "cadences/demo.yaml:8:10: unknown queue 'vip-desk'; known queues: telemarketing, telesales"
    ]
    (project / "queues.yaml").write_text("queues:\n  vip-desk:\n    title: VIP desk\n    sla: 2h\n", encoding="utf-8")
    code, lines, _ = validate(project, ROUTED_TO_VIP)
    assert (code, lines) == (0, [])
    (project / "queues.yaml").write_text("queues:\n  vip-desk:\n    sla: soon\n", encoding="utf-8")
    code, lines, _ = validate(project, ROUTED_TO_VIP)
    assert code == 1 and len(lines) == 1 and lines[0].startswith("queues.yaml:3:"), lines


def test_paths_and_templates_can_be_given(project: Path) -> None:
    other = project / "elsewhere"
    other.mkdir()
    (other / "one.yaml").write_text(VALID, encoding="utf-8")
    (project / "templates").rename(project / "tpl")
    result = run(project, "validate", "elsewhere/one.yaml", "--templates", "tpl")
    assert (result.returncode, result.stdout) == (0, "")
    result = run(project, "validate", "elsewhere/one.yaml")
    assert result.returncode == 1
    assert result.stdout.splitlines()[0] == (
        "elsewhere/one.yaml:9:14: message 'hello' not found; create templates/hello/sms.j2"
    )
    result = run(project, "validate", "missing.yaml")
    assert result.stdout.splitlines() == ["missing.yaml:1:1: file not found; check the path"]
    assert result.returncode == 1


def test_no_cadence_files_is_an_error(project: Path) -> None:
    result = run(project, "validate")
    assert result.returncode == 1
    assert "no cadence files found" in result.stderr


def test_the_shipped_examples_validate_clean() -> None:
    result = run(REPO, "validate")
    assert result.stdout == ""
    assert result.returncode == 0, result.stderr
    assert "ok:" in result.stderr


# -- schema ----------------------------------------------------------------------------------------------
def test_schema_prints_the_committed_json_schema(tmp_path: Path) -> None:
    result = run(tmp_path, "schema")
    assert result.returncode == 0
    printed = json.loads(result.stdout)
    assert printed == cadence_json_schema()
    committed = (REPO / "cadences" / "cadence.schema.json").read_text(encoding="utf-8")
    assert result.stdout == committed, (
        "cadences/cadence.schema.json is stale: run `omnireach schema --write cadences/cadence.schema.json`"
    )
    written = tmp_path / "schema.json"
    assert run(tmp_path, "schema", "--write", str(written)).returncode == 0
    assert written.read_text(encoding="utf-8") == committed


def test_schema_describes_the_step_union_with_the_if_alias() -> None:
    schema = cadence_json_schema()
    steps = schema["properties"]["steps"]["items"]["oneOf"]
    assert [s["$ref"] for s in steps] == ["#/$defs/SendStep", "#/$defs/WaitStep", "#/$defs/CallStep"]
    for name, kind in (("SendStep", "send"), ("WaitStep", "wait"), ("CallStep", "call")):
        definition = schema["$defs"][name]
        assert definition["additionalProperties"] is False
        assert kind in definition["required"]
        assert "if" in definition["properties"] and "if_" not in definition["properties"]
        assert definition["description"]
    assert schema["$defs"]["WaitStep"]["properties"]["wait"]["pattern"] == "^[1-9][0-9]{0,5}[smhdw]$"


def test_every_shipped_cadence_references_and_satisfies_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((REPO / "cadences" / "cadence.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    shipped = sorted((REPO / "cadences").glob("*.yaml"))
    assert len(shipped) >= 2
    for path in shipped:
        text = path.read_text(encoding="utf-8")
        assert text.startswith("# yaml-language-server: $schema=./cadence.schema.json\n"), path.name
        errors = [e.message for e in validator.iter_errors(load_located(text, path.name).data)]
        assert errors == [], path.name


def test_the_schema_refuses_what_validate_refuses() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(cadence_json_schema())
    good = {"id": "x", "name": "X", "purpose": "marketing", "steps": [{"send": "sms", "message": "m", "if": "x"}]}
    assert list(validator.iter_errors(good)) == []
    bad_steps = [
        {"send": "sms", "wait": "2d", "message": "m"},  # two kinds in one step
        {"wait": "2 days"},  # bad duration
        {"send": "sms", "message": "m", "if_": "x"},  # the Python name, not the YAML key
        {"call": "telemarketing"},  # no script
        {"send": "pigeon", "message": "m"},
    ]
    for step in bad_steps:
        assert list(validator.iter_errors({**good, "steps": [step]})), step
    assert list(validator.iter_errors({**good, "colour": "blue"}))
