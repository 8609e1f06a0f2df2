"""The message renderer: lookup order, strictness, the sandbox, approved WhatsApp templates, and the
shipped cadences' templates rendering for every locale and variant."""

from __future__ import annotations

import pickle
import re
from pathlib import Path

import pytest
import yaml

from content.templates_dir import TemplateFileError, load_template_sources
from core.messages import (
    CHANNEL_PARTS,
    MAX_WHATSAPP_VARIABLES,
    MessageCatalog,
    MissingTemplate,
    TemplateProblem,
    build_context,
    date_long,
    date_short,
    datetime_long,
    locale_candidates,
    sample_context,
    time_short,
)
from core.sms import non_gsm_characters, segment_info

ROOT = Path(__file__).resolve().parents[2]
SID = "HX" + "0123456789abcdef" * 2
WEBINAR_AT = "2026-12-03T10:00:00+07:00"


def ctx(**facts):
    return sample_context("c", "Cadence", facts or {"webinar_at": WEBINAR_AT}, "s1", locale="id")


# -- lookup ---------------------------------------------------------------------------------------------
LAYERED = {
    "m/sms.j2": "base",
    "m/a/sms.j2": "variant a",
    "m/en/sms.j2": "locale en",
    "m/en-GB/sms.j2": "locale en-GB",
    "m/a/en/sms.j2": "variant a + en",
}


@pytest.mark.parametrize(
    ("locale", "variant", "expected"),
    [
        ("en", "a", "variant a + en"),  # variant+locale beats everything
        ("en-US", "a", "variant a + en"),  # en-US falls back to en at the variant+locale level
        ("id", "a", "variant a"),  # variant beats locale and base
        (None, "a", "variant a"),
        ("en", None, "locale en"),  # locale beats base
        ("en-US", None, "locale en"),  # en-US -> en
        ("en_us", "b", "locale en"),  # unknown variant falls through; POSIX spelling accepted
        ("en-GB", None, "locale en-GB"),  # an exact region folder wins over its language
        ("en-GB", "a", "variant a + en"),  # ...but never over a variant
        ("fr-FR", None, "base"),
        (None, None, "base"),
    ],
)
def test_lookup_order(locale, variant, expected):
    catalog = MessageCatalog(LAYERED)
    assert catalog.render("m", "sms", ctx(), locale=locale, variant=variant).text == expected


def test_resolve_returns_none_when_no_level_has_the_part():
    assert MessageCatalog(LAYERED).resolve("m", "whatsapp.j2", locale="en", variant="a") is None


def test_locale_candidates():
    assert locale_candidates("en-US") == ["en-US", "en"]
    assert locale_candidates("zh-Hant-TW") == ["zh-TW", "zh"]
    assert locale_candidates("es-419") == ["es-419", "es"]
    assert locale_candidates("ID") == ["id"]
    assert locale_candidates(None) == [] == locale_candidates("")


def test_folders_are_locales_or_variants_by_name():
    catalog = MessageCatalog({**LAYERED, "m/short/sms.j2": "x", "m/es-419/sms.j2": "x", "m/v2/sms.j2": "x"})
    assert catalog.variants_of("m") == {"a", "short", "v2"}
    assert catalog.locales_of("m") == {"en", "en-GB", "es-419"}
    assert catalog.messages() == {"m"}
    assert catalog.templates_of("m")[0] == "m/a/en/sms.j2"
    assert len(catalog.templates_of("m")) == 8


def test_files_that_fit_no_layout_are_reported():
    catalog = MessageCatalog(
        {
            "m/sms.j2": "ok",
            "m/emial.subject.j2": "typo",
            "m/en/a/sms.j2": "locale before variant",
            "loose.j2": "not in a folder",
            "m/_footer.j2": "partial",
            "_shared/x.j2": "partial",
            "scripts/call.md.j2": "script",
        }
    )
    problems = {p.template: p.message for p in catalog.layout_problems()}
    assert set(problems) == {"m/emial.subject.j2", "m/en/a/sms.j2", "loose.j2"}
    assert "unknown template file 'emial.subject.j2'" in problems["m/emial.subject.j2"]
    assert catalog.messages() == {"m"}
    assert catalog.scripts() == {"call"}


def test_locale_gaps_flag_variant_overrides_that_skip_the_locale():
    catalog = MessageCatalog({"m/email.subject.j2": "s", "m/en/email.subject.j2": "s", "m/a/email.subject.j2": "s"})
    [gap] = catalog.locale_gaps()
    assert gap.template == "m/a/email.subject.j2" and "add m/a/en/email.subject.j2" in gap.message
    assert MessageCatalog({**LAYERED}).locale_gaps() == []  # m/a/en/sms.j2 exists


# -- rendering ------------------------------------------------------------------------------------------
EMAIL = {
    "m/email.subject.j2": "Hello\n  {{ contact.first_name }}\r\nBcc: evil@example.com",
    "m/email.txt.j2": "{% if true %}\n  Hi {{ contact.name }} & co\n{% endif %}\n\n",
    "m/email.html.j2": "<p>Hi {{ contact.name }} & {{ facts.who }}</p>",
    "m/en/email.txt.j2": "English {{ facts.who }}",
}


def test_render_email_parts_escaping_and_one_line_subject():
    context = ctx(who="<b>R&D</b>")
    rendered = MessageCatalog(EMAIL).render("m", "email", context, locale="id")
    assert rendered.subject == "Hello Budi Bcc: evil@example.com"  # no CR/LF: no header injection
    assert rendered.text == "Hi Budi Santoso & co"  # text is not HTML-escaped, and stripped
    assert rendered.html == "<p>Hi Budi Santoso & &lt;b&gt;R&amp;D&lt;/b&gt;</p>"
    assert rendered.template_names == ("m/email.subject.j2", "m/email.txt.j2", "m/email.html.j2")
    english = MessageCatalog(EMAIL).render("m", "email", context, locale="en")
    assert english.text == "English <b>R&D</b>"
    assert english.template_names[1] == "m/en/email.txt.j2"


def test_html_part_is_optional_and_required_parts_are_not():
    without_html = {k: v for k, v in EMAIL.items() if not k.endswith("html.j2")}
    catalog = MessageCatalog(without_html)
    assert catalog.render("m", "email", ctx(who="x")).html is None
    assert catalog.has_channel("m", "email") and not catalog.has_channel("m", "sms")
    assert catalog.missing_parts("m", "voice") == ("voice.j2",)
    with pytest.raises(MissingTemplate) as info:
        catalog.render("m", "sms", ctx())
    assert str(info.value).startswith("templates/m/sms.j2:1:1: message 'm' has no sms.j2")
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        catalog.render("m", "fax", ctx())


def test_only_locale_overrides_do_not_make_a_channel():
    catalog = MessageCatalog({"m/en/sms.j2": "hi"})
    assert not catalog.has_channel("m", "sms")  # a contact in any other locale would get nothing


def test_blank_rendering_is_refused():
    catalog = MessageCatalog({"m/sms.j2": "{% if false %}x{% endif %}\n"})
    with pytest.raises(TemplateProblem, match="renders empty"):
        catalog.render("m", "sms", ctx())


def test_voice_and_whatsapp_render_text():
    catalog = MessageCatalog({"m/voice.j2": "Hello {{ contact.first_name }}.", "m/whatsapp.j2": "*{{ step.id }}*"})
    assert catalog.render("m", "voice", ctx()).text == "Hello Budi."
    assert catalog.render("m", "whatsapp", ctx()).text == "*s1*"


def test_render_script_with_locale_override():
    catalog = MessageCatalog({"scripts/call.md.j2": "# Halo {{ facts.x }}", "scripts/en/call.md.j2": "# Hi"})
    assert catalog.render_script("call", ctx(x="A")) == "# Halo A"
    assert catalog.render_script("call", ctx(x="A"), locale="en-AU") == "# Hi"
    assert catalog.exists("scripts/call.md.j2") and not catalog.exists("scripts/nope.md.j2")
    with pytest.raises(MissingTemplate, match="call script 'nope' does not exist"):
        catalog.render_script("nope", ctx())


# -- strictness: every error names the template and the line --------------------------------------------
@pytest.mark.parametrize(
    ("sources", "name", "template", "line", "text"),
    [
        ({"m/sms.j2": "one\ntwo {{ nope }}\nthree"}, "m/sms.j2", "m/sms.j2", 2, "'nope' is undefined"),
        ({"m/sms.j2": "a\n\n\n{{ contact.attributes.company }}"}, "m/sms.j2", "m/sms.j2", 4, "has no attribute"),
        ({"m/sms.j2": "{{ facts.missing }}"}, "m/sms.j2", "m/sms.j2", 1, "has no attribute 'missing'"),
        # the error is reported where it is, inside the included partial
        (
            {"m/sms.j2": "x\n{% include '_p.j2' %}", "_p.j2": "p\np\n{{ oops }}"},
            "m/sms.j2",
            "_p.j2",
            3,
            "'oops' is undefined",
        ),
        # and inside an imported macro
        (
            {
                "m/sms.j2": "{% import '_m.j2' as m %}\n\n{{ m.f() }}",
                "_m.j2": "{% macro f() %}\n{{ gone }}\n{% endmacro %}",
            },
            "m/sms.j2",
            "_m.j2",
            2,
            "'gone' is undefined",
        ),
        ({"m/sms.j2": "ok\n{% if %}"}, "m/sms.j2", "m/sms.j2", 2, "syntax error"),
        ({"m/sms.j2": "ok\n{% include '_x.j2' %}", "_x.j2": "{{ a b }}"}, "m/sms.j2", "_x.j2", 1, "syntax error"),
        ({"m/sms.j2": "ok\n{% include '_missing.j2' %}"}, "m/sms.j2", "m/sms.j2", 2, "'_missing.j2', which does not"),
        ({"m/sms.j2": "\n{{ 1 // 0 }}"}, "m/sms.j2", "m/sms.j2", 2, "ZeroDivisionError"),
        (
            {"m/sms.j2": "\n\n{{ facts.webinar_at | time_short('en', contact.timezone) }}"},
            "m/sms.j2",
            "m/sms.j2",
            3,
            "date without a time",
        ),
    ],
)
def test_template_errors_name_file_and_line(sources, name, template, line, text):
    catalog = MessageCatalog(sources)
    with pytest.raises(TemplateProblem) as info:
        catalog.render_template(name, ctx(webinar_at="2026-12-03"))
    problem = info.value
    assert (problem.template, problem.line) == (template, line), str(problem)
    assert text in problem.message
    assert str(problem).startswith(f"templates/{template}:{line}:1: ")
    assert problem.location("/repo/templates/").startswith(f"/repo/templates/{template}:{line}:1: ")


def test_printing_none_is_an_error_not_the_word_none():
    context = build_context(
        {"name": "Ani", "attributes": {"company": None}},
        {},
        {"id": "c"},
        {"id": "s"},
        {"name": "Org", "address": "Street 1"},
        "https://u",
    )
    catalog = MessageCatalog(
        {
            "m/sms.j2": "Hi\n{{ contact.attributes.company }}",
            "m/whatsapp.j2": "{{ contact.attributes.company or 'your team' }}",
        }
    )
    with pytest.raises(TemplateProblem, match="None") as info:
        catalog.render("m", "sms", context)
    assert info.value.line == 2
    assert catalog.render("m", "whatsapp", context).text == "your team"


def test_optional_attributes_with_default_pass_validation():
    catalog = MessageCatalog({"m/sms.j2": "{{ contact.attributes.cart_item | default('your items', true) }}"})
    assert catalog.render("m", "sms", ctx()).text == "your items"


def test_template_problem_survives_pickling():
    problem = TemplateProblem("m/sms.j2", 3, "bad")
    again = pickle.loads(pickle.dumps(problem))
    assert (again.template, again.line, again.message, str(again)) == ("m/sms.j2", 3, "bad", str(problem))
    missing = pickle.loads(pickle.dumps(MissingTemplate("m/sms.j2", 1, "gone")))
    assert isinstance(missing, MissingTemplate) and isinstance(missing, LookupError)


# -- the sandbox ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "payload",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ contact.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ self.__init__.__globals__ }}",
        "{{ lipsum.__globals__['os'] }}",
        "{{ (1).__class__.__base__ }}",
        "{{ facts.update({'offer': 'changed'}) }}",  # immutable: no template rewrites a shared fact
        "{{ contact.attributes.clear() }}",
        "{{ ''.format.__self__ }}",
    ],
)
def test_sandbox_refuses_escapes(payload):
    catalog = MessageCatalog({"m/sms.j2": "Hi\n" + payload})
    context = ctx(offer="Free")
    with pytest.raises(TemplateProblem) as info:
        catalog.render("m", "sms", context)
    assert info.value.template == "m/sms.j2" and info.value.line == 2
    assert "sandbox" in info.value.message or "undefined" in info.value.message
    assert context["facts"] == {"offer": "Free"}


def test_mro_escape_reports_the_sandbox_clearly():
    with pytest.raises(TemplateProblem) as info:
        MessageCatalog({"m/sms.j2": "{{ ''.__class__.__mro__ }}"}).render("m", "sms", ctx())
    assert str(info.value) == (
        "templates/m/sms.j2:1:1: refused by the template sandbox: "
        "access to attribute '__class__' of 'str' object is unsafe."
    )


def test_huge_ranges_are_refused():
    with pytest.raises(TemplateProblem, match=r"(?i)range too big"):
        MessageCatalog({"m/sms.j2": "{% for i in range(10**9) %}x{% endfor %}"}).render("m", "sms", ctx())


# -- approved WhatsApp templates ------------------------------------------------------------------------
def whatsapp(yaml_text: str, **more) -> MessageCatalog:
    return MessageCatalog({"m/whatsapp.j2": "free-form", "m/whatsapp.yaml": yaml_text, **more})


GOOD_WHATSAPP = f"""\
# approved body: Halo {{{{1}}}}, {{{{2}}}} pada {{{{3}}}}
content_sid: {SID}
category: marketing
variables:
  1: contact.first_name
  "2": facts.title | upper
  3: "{{{{ facts.webinar_at | datetime_long('id', contact.timezone) }}}}"
  4: "'  many\\n  lines\\tand   spaces '"
"""


def test_whatsapp_yaml_is_parsed_and_rendered():
    approved = whatsapp(GOOD_WHATSAPP).whatsapp_template("m", ctx(title="Pajak", webinar_at=WEBINAR_AT))
    assert approved is not None
    assert approved.content_sid == SID and approved.category == "MARKETING"
    assert approved.variables == {
        "1": "Budi",
        "2": "PAJAK",
        "3": "Kamis, 3 Desember 2026 pukul 10.00 WIB",
        "4": "many lines and spaces",
    }  # Meta refuses new lines, tabs, runs of spaces


def test_whatsapp_yaml_follows_the_lookup_order():
    other = SID.replace("0", "f")
    catalog = whatsapp(
        f"content_sid: {SID}\ncategory: UTILITY\n",
        **{"m/en/whatsapp.yaml": f"content_sid: {other}\ncategory: UTILITY\n"},
    )
    assert catalog.whatsapp_template("m", ctx(), locale="en-US").content_sid == other
    assert catalog.whatsapp_template("m", ctx(), locale="id").content_sid == SID
    assert catalog.whatsapp_template("m", ctx(), locale="id").variables == {}
    assert MessageCatalog({"m/whatsapp.j2": "x"}).whatsapp_template("m", ctx()) is None


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("content_sid: HX123\ncategory: UTILITY\n", 1, "'HX' and 32 hex digits"),
        (f"content_sid: MG{SID[2:]}\ncategory: UTILITY\n", 1, "'HX' and 32 hex digits"),
        (f"content_sid: {SID}z\ncategory: UTILITY\n", 1, "'HX' and 32 hex digits"),
        (f"category: UTILITY\ncontent_sid: {SID[:-1]}\n", 2, "'HX' and 32 hex digits"),
        (f"content_sid: {SID}\ncategory: PROMO\n", 2, "category must be one of MARKETING, UTILITY, AUTHENTICATION"),
        (f"content_sid: {SID}\ncategory: UTILITY\nbody: hi\n", 3, "unknown key 'body'"),
        (f"content_sid: {SID}\ncategory: UTILITY\nvariables: [a, b]\n", 3, "variables must map numbers"),
        (f"content_sid: {SID}\ncategory: UTILITY\nvariables:\n  0: contact.name\n", 4, "numbers 1 to 100"),
        (f"content_sid: {SID}\ncategory: UTILITY\nvariables:\n  101: contact.name\n", 4, "numbers 1 to 100"),
        (f"content_sid: {SID}\ncategory: UTILITY\nvariables:\n  one: contact.name\n", 4, "numbers 1 to 100"),
        (f"content_sid: {SID}\ncategory: UTILITY\nvariables:\n  1: x\n  '1': y\n", 5, "given twice"),
        (f"content_sid: {SID}\ncategory: UTILITY\nvariables:\n  1: 42\n", 4, "must be a Jinja expression"),
        (f"content_sid: {SID}\ncategory: UTILITY\nvariables:\n  1: contact.name +\n", 4, "syntax error"),
        (
            f"content_sid: {SID}\ncategory: UTILITY\nvariables:\n\n  1: contact.name\n  2: nope\n",
            6,
            "variable 2: undefined",
        ),
        (f"content_sid: {SID}\ncategory: UTILITY\nvariables:\n  1: \"''\"\n", 4, "renders empty"),
        (f"content_sid: {SID}\ncategory: UTILITY\nvariables:\n  1: \"''.__class__\"\n", 4, "sandbox"),
        ("- just\n- a list\n", 1, "must be a mapping"),
        ("content_sid: [unclosed\n", 2, "invalid YAML"),
        ("a: &x [1]\nb: *x\n", 2, "aliases"),
        ("content_sid: !!python/object/apply:os.system ['true']\n", 1, "invalid YAML"),
    ],
)
def test_bad_whatsapp_yaml_is_refused_with_its_line(text, line, message):
    with pytest.raises(TemplateProblem) as info:
        whatsapp(text).whatsapp_template("m", ctx())
    assert info.value.template == "m/whatsapp.yaml"
    assert message in info.value.message
    assert info.value.line == line, str(info.value)


def test_more_than_100_whatsapp_variables_are_refused():
    lines = "".join(f"  {i}: contact.first_name\n" for i in range(1, MAX_WHATSAPP_VARIABLES + 1))
    head = f"content_sid: {SID}\ncategory: UTILITY\nvariables:\n"
    assert len(whatsapp(head + lines).whatsapp_template("m", ctx()).variables) == 100
    with pytest.raises(TemplateProblem, match="101 variables; Twilio allows at most 100") as info:
        whatsapp(head + lines + "  '100 ': x\n").whatsapp_template("m", ctx())
    assert info.value.line == 3


# -- contexts and date filters --------------------------------------------------------------------------
def test_runtime_and_sample_contexts_have_the_same_shape():
    sample = sample_context("c", "C", {"at": WEBINAR_AT}, "s", locale="en-US")
    runtime = build_context(
        {"name": None, "phone": "+628123", "attributes": None},
        {"at": WEBINAR_AT},
        {"id": "c", "name": "C", "purpose": "marketing"},
        {"id": "s", "send": "sms"},
        {"name": "Org", "address": "Street 1"},
        "https://u/x",
    )
    assert set(sample) == set(runtime) == {"contact", "facts", "cadence", "step", "sender", "unsubscribe_url"}
    for key in ("contact", "cadence", "step", "sender"):
        assert set(sample[key]) == set(runtime[key]), key
    assert runtime["contact"]["name"] == runtime["contact"]["first_name"] == ""  # never the text "None"
    assert runtime["contact"]["attributes"] == {}
    assert sample["contact"]["locale"] == "en-US" and sample["contact"]["country"] == "US"
    assert sample_context("c", "C", {}, "s", locale="id")["contact"]["timezone"] == "Asia/Jakarta"


def test_facts_reach_templates_as_the_workflow_snapshot_carries_them():
    facts = yaml.safe_load(f"at: {WEBINAR_AT}\nday: 2026-12-12\nnested: {{list: [2026-01-01]}}")
    context = sample_context("c", "C", facts, "s", locale="id")
    assert context["facts"] == {"at": WEBINAR_AT, "day": "2026-12-12", "nested": {"list": ["2026-01-01"]}}
    # so `.strftime` passes neither validation nor, later, the send
    with pytest.raises(TemplateProblem, match="strftime"):
        MessageCatalog({"m/sms.j2": "{{ facts.at.strftime('%d') }}"}).render("m", "sms", context)


def test_date_filters():
    assert datetime_long(WEBINAR_AT, "id", "Asia/Jakarta") == "Kamis, 3 Desember 2026 pukul 10.00 WIB"
    assert datetime_long(WEBINAR_AT, "id", "Asia/Makassar") == "Kamis, 3 Desember 2026 pukul 11.00 WITA"
    assert datetime_long(WEBINAR_AT, "en", "America/New_York") == "Wednesday, 2 December 2026 at 22:00 EST"
    assert datetime_long(WEBINAR_AT, "en-GB", "Europe/London") == "Thursday, 3 December 2026 at 03:00 GMT"
    assert time_short(WEBINAR_AT, "id") == "10.00 WIB"  # no zone known: the fact's own offset
    assert time_short(WEBINAR_AT, "en", "Not/AZone") == "10:00 UTC+7"
    assert time_short("2026-12-03T10:00:00+05:30", "en") == "10:00 UTC+5:30"
    assert time_short("2026-12-03T10:00:00Z", "en") == "10:00 UTC"
    assert time_short("2026-12-03T10:00:00", "en") == "10:00"
    assert date_short(WEBINAR_AT, "id") == "Kam 3 Des"
    assert date_short(WEBINAR_AT, "en", weekday=False) == "3 Dec"
    assert date_long("2026-08-17", "id") == "Senin, 17 Agustus 2026"
    with pytest.raises(ValueError, match="not an ISO 8601"):
        date_long("next Thursday", "en")


# -- reading the templates directory --------------------------------------------------------------------
def test_load_template_sources(tmp_path):
    (tmp_path / "m" / "en").mkdir(parents=True)
    (tmp_path / "m" / "sms.j2").write_text("\ufeffHalo", encoding="utf-8")
    (tmp_path / "m" / "en" / "sms.j2").write_text("Hi", encoding="utf-8")
    (tmp_path / "m" / "whatsapp.yaml").write_text("x: 1", encoding="utf-8")
    (tmp_path / "m" / "notes.md").write_text("ignored", encoding="utf-8")
    (tmp_path / "m" / ".#sms.j2").write_text("ignored", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "x.j2").write_text("ignored", encoding="utf-8")
    assert load_template_sources(tmp_path) == {"m/en/sms.j2": "Hi", "m/sms.j2": "Halo", "m/whatsapp.yaml": "x: 1"}


def test_non_utf8_template_names_the_file_and_line(tmp_path):
    (tmp_path / "m").mkdir()
    bad = tmp_path / "m" / "sms.j2"
    bad.write_bytes("baris satu\nCaf\u00e9 ok\nCaf".encode() + b"\xe9 latin-1\n")
    with pytest.raises(TemplateFileError) as info:
        load_template_sources(tmp_path)
    assert str(info.value) == f"{bad}:3:1: not UTF-8 text (byte 0xe9 at column 4); save the file as UTF-8"
    assert info.value.template == "m/sms.j2" and isinstance(info.value, TemplateProblem)
    assert str(pickle.loads(pickle.dumps(info.value))) == str(info.value)


def test_missing_templates_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="templates directory not found"):
        load_template_sources(tmp_path / "nope")


# -- the shipped cadences and templates -----------------------------------------------------------------
CADENCES = {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in sorted((ROOT / "cadences").glob("*.yaml"))}


@pytest.fixture(scope="module")
def shipped() -> MessageCatalog:
    return MessageCatalog(load_template_sources(ROOT / "templates"))


def _messages_of(cadence: dict) -> dict[str, set[str]]:
    """message -> channels a cadence sends it on (send and fallback)."""
    used: dict[str, set[str]] = {}
    for step in cadence["steps"]:
        if "send" in step:
            used.setdefault(step["message"], set()).update(filter(None, (step["send"], step.get("fallback"))))
    return used


def _scripts_of(cadence: dict) -> set[str]:
    routes = [cadence.get(k) or {} for k in ("escalate", "handoff")]
    return {r["script"] for r in routes if r} | {s["script"] for s in cadence["steps"] if "call" in s}


def test_shipped_cadences_exist_and_start_with_the_schema_line():
    assert {"webinar-nurture", "flash-sale", "demo-welcome"} <= set(CADENCES)
    for path in (ROOT / "cadences").glob("*.yaml"):
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first == "# yaml-language-server: $schema=./cadence.schema.json", path.name


def test_every_shipped_message_renders_for_every_locale_variant_and_channel(shipped):
    assert shipped.layout_problems() == []
    assert shipped.locale_gaps() == []
    rendered = 0
    owners = {m: c for c in CADENCES.values() for m in _messages_of(c)}
    assert set(owners) == shipped.messages(), "a message folder no cadence uses, or a cadence message missing"
    for message, cadence in owners.items():
        assert _messages_of(cadence)[message] <= {ch for ch in CHANNEL_PARTS if shipped.has_channel(message, ch)}
        variants = shipped.variants_of(message)
        for step in cadence["steps"]:
            if step.get("message") == message:  # an A/B variant without its own template tests nothing
                assert set(step.get("variants") or {}) <= variants, step
        for locale in {cadence["locale"], *shipped.locales_of(message)}:
            # both sample personas: the language of the templates and the other one (different zones)
            for persona in ("id", "en"):
                context = sample_context(cadence["id"], cadence["name"], cadence["facts"], "step", locale=persona)
                for variant in (None, *sorted(variants)):
                    for channel in CHANNEL_PARTS:
                        if shipped.has_channel(message, channel):
                            result = shipped.render(message, channel, context, locale=locale, variant=variant)
                            assert result.text and "None" not in result.text
                            rendered += 1
                    approved = shipped.whatsapp_template(message, context, locale=locale, variant=variant)
                    if "whatsapp" in _messages_of(cadence)[message]:
                        assert approved is not None, f"{message}: WhatsApp outside 24h needs whatsapp.yaml"
    assert rendered >= 100


def test_every_shipped_template_file_renders_alone(shipped):
    """What `validate` does: each file with the sample context of the cadence that uses it."""
    owners = {m: c for c in CADENCES.values() for m in _messages_of(c)}
    for message, cadence in owners.items():
        context = sample_context(cadence["id"], cadence["name"], cadence["facts"], "s", locale=cadence["locale"])
        for name in shipped.templates_of(message):
            if name.endswith(".yaml"):
                assert shipped.approved_template(name, context).content_sid.startswith("HX")
            else:
                assert shipped.render_template(name, context)


def test_every_shipped_script_renders_in_both_languages(shipped):
    referenced = set()
    for cadence in CADENCES.values():
        for script in _scripts_of(cadence):
            referenced.add(script)
            texts = set()
            for locale in ("id", "en"):
                context = sample_context(cadence["id"], cadence["name"], cadence["facts"], "call", locale=locale)
                text = shipped.render_script(script, context, locale=locale)
                assert str(cadence["facts"][next(iter(cadence["facts"]))]) in text  # states the facts
                texts.add(text)
            assert len(texts) == 2, f"{script}: needs an Indonesian and an English version"
    assert referenced == shipped.scripts()


def test_indonesian_scripts_state_company_purpose_and_data_source(shipped):
    for cadence in CADENCES.values():
        context = sample_context(cadence["id"], cadence["name"], cadence["facts"], "call", locale="id")
        for script in _scripts_of(cadence):
            text = shipped.render_script(script, context, locale="id")
            assert context["sender"]["name"] in text  # company name
            assert "tujuan" in text.lower(), script  # purpose
            assert "kami peroleh" in text, script  # where the contact's data came from


def _each_rendering(shipped, channel):
    for cadence in CADENCES.values():
        for message in _messages_of(cadence):
            if not shipped.has_channel(message, channel):
                continue
            for locale in {cadence["locale"], *shipped.locales_of(message)}:
                context = sample_context(cadence["id"], cadence["name"], cadence["facts"], "s", locale=locale)
                for variant in (None, *sorted(shipped.variants_of(message))):
                    yield (
                        cadence,
                        message,
                        locale,
                        context,
                        shipped.render(message, channel, context, locale=locale, variant=variant),
                    )


def test_marketing_emails_carry_unsubscribe_link_and_postal_address(shipped):
    checked = 0
    for cadence, message, locale, context, email in _each_rendering(shipped, "email"):
        for body in filter(None, (email.text, email.html)):
            assert context["unsubscribe_url"] in body, (message, locale)
            assert context["sender"]["address"] in body, (message, locale)
        checked += cadence["purpose"] == "marketing"
    assert checked >= 8


def test_sms_are_gsm7_single_segment_with_opt_out_text(shipped):
    checked = 0
    for _, message, locale, _, sms in _each_rendering(shipped, "sms"):
        where = f"{message} [{locale}]: {sms.text!r}"
        assert non_gsm_characters(sms.text) == [], where
        assert segment_info(sms.text).segments == 1, f"{len(sms.text)} chars: {where}"
        assert "Reply STOP to opt out" in sms.text or "Balas BERHENTI untuk berhenti" in sms.text, where
        checked += 1
    assert checked >= 14


_FACT = re.compile(r"\bfacts\.([a-z_][a-z0-9_]*)")


def test_every_channel_of_a_message_states_the_same_facts(shipped):
    """The point of facts: email, SMS and WhatsApp of one message never tell different stories."""
    sources = load_template_sources(ROOT / "templates")

    def facts_in(name: str) -> set[str]:
        text = sources[name]
        for partial in re.findall(r"""(?:import|include)\s+["']([^"']+)["']""", text):
            text += sources[partial]
        return set(_FACT.findall(text))

    compared = 0
    for message in shipped.messages():
        for locale in (None, *shipped.locales_of(message)):
            per_channel = {}
            for channel, parts in CHANNEL_PARTS.items():
                if not shipped.has_channel(message, channel):
                    continue
                names = [shipped.resolve(message, p, locale=locale, variant=None) for p in parts]
                per_channel[channel] = set().union(*(facts_in(n) for n in names if n))
            if len(per_channel) > 1:
                compared += 1
                assert len({frozenset(f) for f in per_channel.values()}) == 1, (message, locale, per_channel)
    assert compared >= 6
