"""Cadence validation as a whole (SPEC section 3): schema, cross references and content, every error located."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from content.cadences import load_library
from core.cadence_loader import check_content, parse_cadence
from core.messages import MessageCatalog
from core.model import Cadence, CallStep, SendStep, WaitStep

REPO = Path(__file__).resolve().parents[2]

WHATSAPP = "content_sid: HX86bb8f975c764a3221b99568c04c4aed\ncategory: MARKETING\nvariables:\n"
SOURCES = {
    "hello/sms.j2": "Hi {{ contact.first_name }}, {{ facts.offer }}.\n",
    "hello/whatsapp.j2": "Hi {{ contact.first_name }}, {{ facts.offer }}.\n",
    "hello/whatsapp.yaml": WHATSAPP + '  "1": contact.first_name\n  "2": facts.offer\n',
    "hello/email.subject.j2": "{{ facts.offer }}\n",
    "hello/email.txt.j2": "{{ facts.offer }}\n{{ unsubscribe_url }}\n",
    "scripts/qualify.md.j2": "# Call {{ contact.name }} about {{ facts.offer }}\n",
    "scripts/close.md.j2": "# Close {{ contact.name }}\n",
}

HEAD = """\
id: demo
name: Demo
purpose: marketing
facts:
  offer: Free trial
  tiers:
    basic: 10
"""


def with_head(rest: str) -> str:
    return HEAD + textwrap.dedent(rest)


def load(text: str, sources: dict[str, str] | None = None) -> list[str]:
    """Every error of a cadence (schema, references and content), as printed."""
    result = parse_cadence(textwrap.dedent(text), "c.yaml")
    all_sources = {**SOURCES, **(sources or {})}
    check_content(result, MessageCatalog(all_sources), sources=all_sources)
    assert (result.cadence is None) == bool(result.errors)
    return [str(e) for e in result.errors]


def test_the_shipped_cadences_load_and_round_trip_as_snapshots() -> None:
    library = load_library([REPO / "cadences"], REPO / "templates")
    assert library.errors == []
    assert {"webinar-nurture", "flash-sale"} <= set(library.cadences)
    for cadence in library.cadences.values():
        snapshot = cadence.snapshot()
        assert Cadence.model_validate(snapshot) == cadence
    webinar = library.get("webinar-nurture")
    assert [s.id for s in webinar.steps] == ["invite", "wait-2", "reminder", "wait-4", "warm-call", "last-chance"]
    reminder = webinar.step("reminder")
    assert isinstance(reminder, SendStep) and reminder.if_ == "not opened('invite')" and reminder.fallback == "sms"
    assert webinar.snapshot()["steps"][2]["if"] == "not opened('invite')"
    assert isinstance(webinar.steps[3], WaitStep) and webinar.steps[3].delay.days == 1
    assert isinstance(webinar.steps[4], CallStep)
    assert webinar.escalate is not None and webinar.escalate.sla == "24h"


def test_a_valid_cadence_has_no_errors() -> None:
    assert (
        load(
            with_head(
                """\
            steps:
              - id: hello
                send: whatsapp
                message: hello
                fallback: sms
                variants: {a: 70, v2: 30}
              - wait: 1d
                until: >
                  clicked('hello') or
                  facts.tiers.basic > 5
              - id: ring
                call: telemarketing
                script: qualify
            handoff:
              when: "disposition in ['qualified', 'appointment_set']"
              queue: telesales
              script: close
            """
            )
        )
        == []
    )


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        (
            # a condition inside a folded block: the error points into its second line
            """\
              - id: hello
                send: sms
                message: hello
              - wait: 1d
                until: >
                  clicked('hello') or
                  opened('helo')
            """,
            "c.yaml:15:15: until: condition names unknown step 'helo'; steps that send: hello",
        ),
        (
            """\
              - id: hello
                send: sms
                message: hello
                if: "   facts.ofer == 'x'"
            """,
            "c.yaml:12:13: if: 'facts.ofer': facts has no 'ofer' (known: offer, tiers); add it under facts: or fix "
            "the name",
        ),
        (
            """\
              - id: hello
                send: sms
                message: hello
                if: facts.tiers.premium > 1
            """,
            "c.yaml:12:9: if: 'facts.tiers.premium': facts.tiers has no 'premium' (known: basic); add it under "
            "facts: or fix the name",
        ),
        (
            """\
              - id: hello
                send: sms
                message: hello
                if: 'score > 1 and contact.email'
            """,
            "c.yaml:12:24: if: contact.email is not visible to conditions (addresses and consent are checked at send "
            "time); use contact.attributes.<name> for your own data",
        ),
        (
            """\
              - id: hello
                send: sms
                message: hello
                variants: {a: 50, en: 50}
            """,
            "c.yaml:12:15: variants: variant name 'en' looks like a locale folder (en, id, pt-BR) and would be read "
            "as one; name variants a, b, v2 or short",
        ),
        (
            """\
              - id: hello
                send: sms
                message: hello
                variants: {a: 0, b: 0}
            """,
            "c.yaml:12:15: variants: variant weights must add up to more than 0, e.g. {a: 50, b: 50}",
        ),
        (
            """\
              - id: hello
                send: sms
                message: hello
                variants: {a: 150}
            """,
            "c.yaml:12:19: variants 'a': must be at most 100 (got 150)",
        ),
        (
            """\
              - id: hello
                send: sms
                message: hello
                fallback: sms
            """,
            "c.yaml:12:15: fallback: fallback must be another channel than 'sms'; remove it or pick another channel",
        ),
        (
            """\
              - id: hello
                send: sms
                wait: 2d
                message: hello
            """,
            "c.yaml:9:5: a step needs exactly one of send, wait or call; this one has send and wait: split it into 2 "
            "steps",
        ),
        (
            """\
              - id: hello
                message: hello
            """,
            "c.yaml:9:5: a step needs exactly one of send, wait or call; this one has id, message: add send: "
            "<channel>, wait: <duration> or call: <queue>",
        ),
        (
            """\
              - wait 2d
            """,
            "c.yaml:9:5: a step needs exactly one of send, wait or call: write each step as a mapping such as "
            "`- wait: 2d`",
        ),
        (
            """\
              - id: hello
                send: sms
            """,
            "c.yaml:9:5: missing required key 'message' (the message folder under templates/)",
        ),
        (
            """\
              - id: Hello World
                send: sms
                message: hello
            """,
            "c.yaml:9:9: id: use lower-case letters, digits and '-' (start with a letter or digit), e.g. "
            "webinar-invite (got 'Hello World')",
        ),
        (
            """\
              - id: hello
                send: sms
                message: hello
              - id: hello
                wait: 1d
            """,
            "c.yaml:12:9: duplicate step id 'hello' (first used by step 1); give each step its own id",
        ),
        (
            """\
              - id: hello
                send: sms
                message: hello
              - id: send-3
                send: sms
                message: hello
              - send: sms
                message: hello
            """,
            "c.yaml:15:5: duplicate step id 'send-3' (first used by step 2); give each step its own id",
        ),
        (
            "  []\n",
            "c.yaml:9:3: steps: needs at least one step",
        ),
    ],
)
def test_step_problems_are_located(steps: str, expected: str) -> None:
    assert load(HEAD + "steps:\n" + textwrap.indent(textwrap.dedent(steps), "  ")) == [expected]


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ("window:\n  days: []\n", "c.yaml:9:9: days: must not be empty"),
        ("window:\n  days: [monday]\n", "c.yaml:9:10: days item 1: must be one of 'mon', 'tue', 'wed', 'thu', "
         "'fri', 'sat', 'sun' (got 'monday')"),
        ("window:\n  hours: '17:00-09:00'\n", "c.yaml:9:10: hours: hours '17:00-09:00': end must be later than "
         "start; windows that cross midnight or are empty are not supported ('HH:MM-HH:MM' on a 24-hour clock, "
         "e.g. '09:00-17:00' (end may be '24:00'))"),
        ("caps:\n  per_week: 0\n", "c.yaml:9:13: per_week: must be at least 1 (got 0)"),
        ("score:\n  Email Opened: 1\n", "c.yaml:9:3: score key 'Email Opened': use lower-case letters, digits, "
         "'_', '.' and '-' (start with a letter or digit), e.g. email.opened"),
        ("locale: english\n", "c.yaml:8:9: locale: must be a language tag such as en, id or pt-BR (got 'english')"),
        ("exit_on: [no]\n", "c.yaml:8:11: exit_on item 1: must be text, not False; yes/no/on/off/true/false are "
         "read as true or false, so put the text in quotes"),
        ("handoff:\n  when: \"disposition == 'qualifed'\"\n  queue: telesales\n  script: close\n",
         "c.yaml:9:26: when: disposition 'qualifed' is never recorded; dispositions are appointment_set, busy, "
         "callback, do_not_call, lost, no_answer, not_interested, qualified, voicemail, won"),
        ("escalate:\n  when: score >= 10\n  queue: callcenter\n  script: qualify\n",
         "c.yaml:10:10: unknown queue 'callcenter'; known queues: telemarketing, telesales"),
        ("escalate:\n  when: score >= 10\n  queue: telemarketing\n  script: qualify-call\n",
         "c.yaml:11:11: call script 'qualify-call' not found; create templates/scripts/qualify-call.md.j2"),
        ("escalate:\n  when: true\n  queue: telemarketing\n  script: qualify\n",
         "c.yaml:9:9: when: a condition must be text in quotes, e.g. \"score >= 10\" (got True)"),
        ("escalate:\n  queue: telemarketing\n  script: qualify\n",
         "c.yaml:9:3: missing required key 'when' (open the call task once this condition is true, e.g. "
         "\"score >= 10\")"),
    ],
)  # fmt: skip
def test_section_problems_are_located(section: str, expected: str) -> None:
    steps = "steps:\n  - id: hello\n    send: sms\n    message: hello\n"
    assert load(HEAD + section + steps) == [expected]


def test_a_file_that_is_not_a_mapping() -> None:
    assert load("- id: demo\n") == [
        "c.yaml:1:1: a cadence file must be a mapping with id, name, purpose and steps (key: value lines)"
    ]
    assert load("id: demo\nname: Demo\n") == [
        "c.yaml:1:1: missing required key 'purpose' (the consent purpose every automated step needs)",
        "c.yaml:1:1: missing required key 'steps' (what happens, in order)",
    ]


def test_content_problems_in_scripts_and_approved_templates() -> None:
    sources = {
        "scripts/qualify.md.j2": "# Call\n\nAsk about {{ facts.ofer }}.\n",
        "hello/whatsapp.yaml": WHATSAPP + '  "1": facts.nope\n',
    }
    errors = load(
        with_head(
            """\
        steps:
          - id: hello
            send: whatsapp
            message: hello
          - id: ring
            call: telemarketing
            script: qualify
        """
        ),
        sources,
    )
    assert errors == [
        "templates/hello/whatsapp.yaml:4:8: variable 1: undefined: 'facts.nope'; cadence 'demo' has these facts: "
        "offer, tiers; add 'nope' under facts: in the cadence or fix the name",
        "templates/scripts/qualify.md.j2:3:14: undefined: 'facts.ofer'; cadence 'demo' has these facts: offer, "
        "tiers; add 'ofer' under facts: in the cadence or fix the name",
    ]


def test_valid_steps_of_a_broken_cadence_still_get_their_content_checked() -> None:
    errors = load(
        with_head(
            """\
        colour: red
        escalate:
          when: score >= 10
          queue: nobody
          script: qualify
        steps:
          - id: hello
            send: voice
            message: hello
          - wait: later
          - id: ring
            call: telemarketing
            script: nope
        """
        )
    )
    assert errors == [
        "c.yaml:8:1: unknown key 'colour'; allowed: id, name, purpose, locale, facts, window, caps, score, "
        "exit_on, escalate, handoff, steps",
        "c.yaml:11:10: unknown queue 'nobody'; known queues: telemarketing, telesales",
        "c.yaml:15:11: message 'hello' has no voice template; create templates/hello/voice.j2",
        "c.yaml:17:11: wait: bad duration 'later': write a whole number and one unit: 30s, 15m, 2h, 3d or 1w",
        "c.yaml:20:13: call script 'nope' not found; create templates/scripts/nope.md.j2",
    ]


def test_broken_facts_do_not_cause_a_flood_of_template_errors() -> None:
    errors = load(
        "id: demo\nname: Demo\npurpose: marketing\nfacts: [offer]\nsteps:\n  - send: sms\n    message: hello\n"
    )
    assert errors == ["c.yaml:4:8: facts: must be a mapping (key: value lines)"]


def test_a_refused_tag_is_reported_once() -> None:
    errors = load(HEAD + "steps:\n  - id: hello\n    send: sms\n    message: !!python/name:os.system\n")
    assert errors == [
        "c.yaml:11:14: tag '!!python/name:os.system' is not allowed: cadences hold plain values only (text, "
        "numbers, true/false, lists, mappings); remove the tag"
    ]
