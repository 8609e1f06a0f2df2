"""`omnireach lint` finds every defect planted in a fixture cadence, where it is, and nothing in the examples."""

from __future__ import annotations

import textwrap

import pytest

from content.cadences import cadence_files
from content.templates_dir import load_template_sources
from core.cadence_loader import parse_cadence
from core.lint import ERROR, RULES, WARNING, Finding, exit_code, lint_cadence
from core.lint_conditions import can_be_true
from core.messages import MessageCatalog
from tests.conftest import REPO

GOOD_EMAIL = {
    "invite/email.subject.j2": "{{ facts.title }}: {{ facts.offer }}",
    "invite/email.txt.j2": "{{ facts.title }} with {{ facts.offer }}.\nUnsubscribe: {{ unsubscribe_url }}\n"
    "{{ sender.name }}, {{ sender.address }}",
}
CLEAN = {
    **GOOD_EMAIL,
    "invite/sms.j2": "{{ sender.name }}: {{ facts.title }} + {{ facts.offer }}. Reply STOP to opt out",
    "scripts/qualify.md.j2": "Call about {{ facts.title }} and {{ facts.offer }}",
}
HEAD = """\
id: planted
name: Planted defects
purpose: marketing
locale: en
facts: {title: Tax 101, offer: a free consultation}
exit_on: [purchased]
"""


def lint(cadence_yaml: str, sources: dict[str, str]) -> list[Finding]:
    load = parse_cadence(textwrap.dedent(cadence_yaml), "cadences/planted.yaml")
    assert load.cadence is not None, [str(e) for e in load.errors]
    return lint_cadence(load, sources, MessageCatalog(sources))


def rules(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings]


def test_a_clean_fixture_has_no_findings():
    findings = lint(
        HEAD + "steps:\n  - {id: invite, send: email, message: invite}\n  - {id: sms, send: sms, message: invite}\n",
        CLEAN,
    )
    assert findings == []


def test_the_shipped_examples_have_no_findings():
    sources = load_template_sources(REPO / "templates")
    catalog = MessageCatalog(sources)
    files = cadence_files([REPO / "cadences"])
    assert len(files) >= 3
    for path in files:
        load = parse_cadence(path.read_text(encoding="utf-8"), str(path))
        assert lint_cadence(load, sources, catalog) == [], path


def test_a_message_with_an_emoji_is_flagged_ucs2_at_the_emoji():
    sources = {**CLEAN, "invite/sms.j2": "Tax 101 starts soon 🎉 Reply STOP to opt out"}
    findings = lint(HEAD + "steps:\n  - {id: sms, send: sms, message: invite}\n", sources)
    [ucs2] = [f for f in findings if f.rule == "sms-ucs2"]
    assert (ucs2.path, ucs2.line, ucs2.column) == ("templates/invite/sms.j2", 1, 21)
    assert "'🎉' (U+1F389)" in ucs2.message and "70 characters per segment" in ucs2.message
    assert ucs2.severity == WARNING
    assert str(ucs2).startswith("templates/invite/sms.j2:1:21: sms-ucs2: character")


def test_an_sms_over_one_segment_is_flagged_with_its_count():
    sources = {**CLEAN, "invite/sms.j2": "{{ facts.title }} " + "x" * 170 + " Reply STOP to opt out"}
    findings = lint(HEAD + "steps:\n  - {id: sms, send: sms, message: invite}\n", sources)
    [segments] = [f for f in findings if f.rule == "sms-segments"]
    assert "renders to 2 segments (GSM-7" in segments.message
    assert "sms-ucs2" not in rules(findings)


def test_the_first_marketing_sms_without_opt_out_text_is_an_error():
    sources = {**CLEAN, "invite/sms.j2": "{{ facts.title }} + {{ facts.offer }} starts soon"}
    findings = lint(HEAD + "steps:\n  - {id: sms, send: sms, message: invite}\n", sources)
    [opt_out] = [f for f in findings if f.rule == "sms-opt-out"]
    assert opt_out.path == "templates/invite/sms.j2" and opt_out.severity == ERROR
    assert exit_code(findings) == 1
    # a later SMS after an unconditional one with opt-out text need not repeat it
    sources["first/sms.j2"] = "{{ facts.title }} + {{ facts.offer }}. Reply STOP to opt out"
    later = lint(
        HEAD + "steps:\n  - {id: a, send: sms, message: first}\n  - {id: b, send: sms, message: invite}\n", sources
    )
    assert "sms-opt-out" not in rules(later)


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("{{ facts.title }} {{ facts.offer }}\n{{ sender.address }}", "email-unsubscribe"),
        ("{{ facts.title }} {{ facts.offer }}\n{{ unsubscribe_url }}", "email-postal-address"),
    ],
)
def test_marketing_email_needs_unsubscribe_link_and_postal_address(text, rule):
    sources = {**CLEAN, "invite/email.txt.j2": text}
    findings = lint(HEAD + "steps:\n  - {id: invite, send: email, message: invite}\n", sources)
    assert rules(findings) == [rule]
    assert findings[0].path == "templates/invite/email.txt.j2"
    service = lint(
        HEAD.replace("purpose: marketing", "purpose: service") + "steps:\n  - {id: i, send: email, message: invite}\n",
        sources,
    )
    assert service == []  # a service email needs neither


def test_a_fact_one_channel_forgets_is_flagged_on_that_channel():
    sources = {**CLEAN, "invite/sms.j2": "{{ facts.title }} soon. Reply STOP to opt out"}
    findings = lint(HEAD + "steps:\n  - {id: invite, send: email, message: invite}\n", sources)
    [gap] = [f for f in findings if f.rule == "facts-consistency"]
    assert gap.path == "templates/invite/sms.j2"
    assert "facts.offer is in the email templates of 'invite' but not in sms" in gap.message


def test_a_step_reading_a_later_step_is_unreachable_at_its_condition():
    cadence = HEAD + textwrap.dedent("""\
        steps:
          - id: early
            send: email
            message: invite
            if: "opened('late')"
          - id: late
            send: email
            message: invite
    """)
    findings = lint(cadence, CLEAN)
    [step] = [f for f in findings if f.rule == "unreachable-step"]
    assert (step.line, step.column) == (11, 9)
    assert "step 'early' can never run" in step.message and "'late' comes later" in step.message


def test_conditions_that_can_never_be_true():
    cadence = HEAD + textwrap.dedent("""\
        score: {email.opened: 1}
        escalate: {when: "event('purchased')", queue: telemarketing, script: qualify}
        steps:
          - {id: invite, send: email, message: invite}
          - wait: 2d
            until: "score < 0"
          - id: after
            send: email
            message: invite
            if: "disposition == 'won'"
    """)
    findings = lint(cadence, CLEAN)
    found = {(f.rule, f.line) for f in findings}
    assert ("condition-never-true", 8) in found  # escalate.when: purchased ends the enrollment (exit_on)
    assert ("condition-never-true", 12) in found  # until: the score never goes below 0
    assert ("unreachable-step", 16) in found  # won ends the enrollment
    messages = " ".join(f.message for f in findings)
    assert "'purchased' is in exit_on" in messages and "the score starts at 0" in messages


def test_whatsapp_step_without_approved_template_is_an_error_without_fallback():
    sources = {**CLEAN, "invite/whatsapp.j2": "{{ facts.title }} {{ facts.offer }}"}
    alone = lint(HEAD + "steps:\n  - {id: wa, send: whatsapp, message: invite}\n", sources)
    [finding] = [f for f in alone if f.rule == "whatsapp-template"]
    assert finding.severity == ERROR and (finding.line, finding.column) == (8, 20)
    assert "add templates/invite/whatsapp.yaml" in finding.message
    sources["invite/whatsapp.yaml"] = (
        "content_sid: HX0123456789abcdef0123456789abcdef\ncategory: MARKETING\nvariables:\n  '1': facts.title\n"
    )
    assert "whatsapp-template" not in rules(
        lint(HEAD + "steps:\n  - {id: wa, send: whatsapp, message: invite}\n", sources)
    )


def test_call_step_without_a_script():
    findings = lint(
        HEAD
        + "steps:\n  - {id: invite, send: email, message: invite}\n"
        + "  - {id: ring, call: telemarketing, script: nowhere}\n",
        CLEAN,
    )
    [missing] = [f for f in findings if f.rule == "call-script"]
    assert (missing.line, missing.severity) == (9, ERROR)
    assert "create templates/scripts/nowhere.md.j2" in missing.message


def test_an_invalid_cadence_is_reported_with_its_position():
    load = parse_cadence("id: Bad Id\nname: x\npurpose: marketing\nsteps: []\n", "cadences/bad.yaml")
    findings = lint_cadence(load, CLEAN, MessageCatalog(CLEAN))
    assert findings and all(f.rule == "invalid-cadence" for f in findings)
    assert findings[0].path == "cadences/bad.yaml" and findings[0].line >= 1


def test_exit_code_by_severity():
    warning = Finding("x.yaml", 1, 1, "sms-segments", "long")
    error = Finding("x.yaml", 1, 1, "sms-opt-out", "no STOP")
    assert exit_code([]) == 0 and exit_code([warning]) == 0
    assert exit_code([warning], strict=True) == 1 and exit_code([error]) == 1
    assert set(RULES) >= {"sms-segments", "sms-ucs2", "email-unsubscribe", "email-postal-address", "sms-opt-out"}


def test_condition_analysis_keeps_what_can_happen():
    load = parse_cadence((REPO / "cadences" / "flash-sale.yaml").read_text(), "flash-sale.yaml")
    assert load.cadence is not None
    # a wait that ends on an exit event does end (the enrollment ends): not a finding
    assert can_be_true(load.cadence, "event('purchased')", position=1, kind="until").possible
    assert not can_be_true(load.cadence, "event('purchased')", position=2, kind="if").possible
    assert can_be_true(load.cadence, "contact.country == 'ID'", position=2, kind="if").possible
    assert not can_be_true(
        load.cadence, "contact.country == 'ID' and contact.country == 'US'", position=2, kind="if"
    ).possible
    assert not can_be_true(load.cadence, "facts.code == 'OTHER'", position=2, kind="if").possible
