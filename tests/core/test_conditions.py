"""The condition language (SPEC section 3): what it accepts, what it refuses and where it says so."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.conditions import ConditionError, Reference, compile_condition


@dataclass
class View:
    """What a condition sees (core.conditions.ConditionFacts), written out for tests."""

    score: int = 0
    disposition: str | None = None
    attempts: int = 0
    contact: Mapping[str, Any] = field(default_factory=dict)
    facts: Mapping[str, Any] = field(default_factory=dict)
    step_events: dict[str, set[str]] = field(default_factory=dict)
    events: set[str] = field(default_factory=set)

    def step_has(self, what: str, step_id: str) -> bool:
        return what in self.step_events.get(step_id, set())

    def has_event(self, name: str) -> bool:
        return name in self.events


ENGAGED = View(
    score=12,
    disposition="qualified",
    attempts=2,
    contact={"country": "ID", "timezone": "Asia/Jakarta", "locale": "id", "attributes": {"plan": "pro", "seats": 5}},
    facts={"offer": "Konsultasi gratis", "price": 99, "tiers": {"basic": 10}},
    step_events={"invite": {"delivered", "opened", "clicked"}},
    events={"webinar.registered", "replied"},
)
QUIET = View(contact={"country": "US", "attributes": {}}, facts={"offer": "Free trial"})

# Every form SPEC section 3 shows or lists, and how it evaluates for an engaged and a quiet contact.
ALLOWED = [
    ("score >= 10", True, False),
    ("disposition in ['qualified', 'appointment_set']", True, False),
    ("disposition == None", False, True),
    ("not opened('invite')", False, True),
    ("clicked('invite') or event('webinar.registered')", True, False),
    ("delivered('invite') and score >= 3", True, False),
    ("replied()", True, False),
    ("attempts < 3", True, True),
    ("contact.country == 'ID'", True, False),
    ("contact.timezone == 'Asia/Jakarta'", True, False),
    ("contact.attributes.plan == 'pro'", True, False),
    ("contact.attributes.seats >= 5", True, False),  # missing on the quiet contact: false, not an error
    ("facts.offer != None", True, True),
    ("facts.tiers.basic < facts.price", True, False),
    ("1 <= score < 20", True, False),
    ("score > -5", True, True),
    ("disposition not in ('lost', 'not_interested')", True, True),
    ("'gratis' in facts.offer", True, False),
    ("contact.attributes.plan in ['pro', 'team']", True, False),
    ("True and not False", True, True),
    ("(score >= 10 or attempts >= 2) and contact.locale == 'id'", True, False),
    ("  score >= 10  ", True, False),
    ("score >= 10 and\n  opened('invite')", True, False),  # a YAML block scalar keeps its line breaks
]


@pytest.mark.parametrize(("text", "engaged", "quiet"), ALLOWED, ids=[a[0] for a in ALLOWED])
def test_allowed_forms_compile_and_evaluate(text: str, engaged: bool, quiet: bool) -> None:
    condition = compile_condition(text)
    assert condition(ENGAGED) is engaged
    assert condition(QUIET) is quiet


def test_missing_or_mismatched_values_are_false_never_an_error() -> None:
    odd = View(facts={"n": 5, "items": [1, [2]], "mapping": {"a": 1}}, contact={"attributes": {"plan": None}})
    for text, expected in [
        ("contact.attributes.plan > 3", False),
        ("contact.attributes.plan < 'b'", False),
        ("facts.n > 'a'", False),
        ("'a' in facts.n", False),
        ("'a' not in facts.n", True),
        ("[1] in facts.mapping", False),
        ("facts.items > [1]", False),
        ("facts.missing.deeper == None", True),
        ("facts.n.deeper == None", True),
        ("1 in facts.offer", False),
    ]:
        assert compile_condition(text)(odd) is expected, text


REFUSED = [
    ("''.__class__", 1, "only contact.<field> and facts.<name> can be read"),
    ("().__class__.__bases__[0].__subclasses__()", 1, "is not a condition function"),
    ("facts.offer.__class__", 1, "names starting with '_' are not allowed"),
    ("contact.__dict__", 1, "names starting with '_' are not allowed"),
    ("facts._secret == 1", 1, "names starting with '_' are not allowed"),
    ("__import__('os').system('id')", 1, "is not a condition function"),
    ("score >= 1 and eval('1')", 16, "'eval' is not a condition function"),
    ("open('/etc/passwd')", 1, "'open' is not a condition function"),
    ("getattr(facts, 'x')", 1, "'getattr' is not a condition function"),
    ("facts.offer.upper() == 'X'", 1, "'facts.offer.upper' is not a condition function"),
    ("score[0] == 1", 1, "indexing ([...]) is not allowed"),
    ("facts['offer'] == 'x'", 1, "indexing ([...]) is not allowed"),
    ("(lambda: 1)() == 1", 1, "is not a condition function"),
    ("lambda: True", 1, "lambda is not allowed"),
    ("[x for x in facts.items] == []", 1, "comprehensions are not allowed"),
    ("{x for x in 'ab'} == 1", 1, "comprehensions are not allowed"),
    ("any(x for x in [1])", 1, "'any' is not a condition function"),
    ("(score := 10) > 1", 2, "':=' is not allowed"),
    ("f'{score}' == '1'", 1, "f-strings are not allowed"),
    ("score + 1 > 2", 1, "arithmetic is not allowed"),
    ("score if True else 0", 1, "'x if y else z' is not allowed"),
    ("{'a': 1} == facts", 1, "mappings ({...}) are not allowed"),
    ("disposition in {'a', 'b'}", 16, "sets ({...}) are not allowed"),
    ("disposition is None", 16, "'is' is not allowed in a comparison"),
    ("b'x' == 'x'", 1, "b'x' is not a value a condition can use"),
    ("-score > 1", 1, "a sign (- or +) is only allowed before a number"),
    ("contact.email != None", 1, "contact.email is not visible to conditions"),
    ("contact.nickname == 'x'", 1, "unknown contact field 'nickname'"),
    ("contact.attributes == {}", 1, "write contact.attributes.<name>"),
    ("contact.country.code == 'ID'", 1, "contact.country has no fields"),
    ("contact == 1", 1, "'contact' needs a field, e.g. contact.country"),
    ("opened == True", 1, "'opened' is a function: call it"),
    ("opened(step='invite')", 1, "write opened('step-id') with a quoted text argument"),
    ("opened()", 1, "write opened('step-id') with a quoted text argument"),
    ("clicked(score)", 1, "write clicked('step-id') with a quoted text argument"),
    ("replied('invite')", 1, "write replied()"),
    ("score >= 10 and scroe < 20", 17, "unknown name 'scroe'"),
    ("qualified == disposition", 1, "unknown name 'qualified'; conditions may use score"),
    ("true", 1, "unknown name 'true'; write True"),
]


@pytest.mark.parametrize(("text", "column", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused_forms_say_why_and_where(text: str, column: int, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(text)
    assert message in caught.value.message
    assert caught.value.column == column


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("score >= 10 and", 15, "the condition ends too early"),
        ("opened('invite'", 7, "'(' was never closed"),
        ("score >= 1 0", 12, "invalid syntax"),
        ("score => 3", 7, "write '>=' instead of '=>'"),
        ("score =< 3", 7, "write '<=' instead of '=<'"),
        ("opened('a') && score > 1", 13, "write 'and' instead of '&&'"),
        ("opened('a') || score > 1", 13, "write 'or' instead of '||'"),
        ("!opened('a')", 1, "write 'not' instead of '!'"),
        ("score = 3", 7, "write '==' to compare"),
        ("opened('a=b') and", 17, "the condition ends too early"),  # an '=' in quotes is not the mistake
        ("   score >=", 11, "the condition ends too early"),  # columns count the leading spaces too
        ("'unterminated", 1, "syntax error"),
    ],
)
def test_syntax_errors_point_at_the_mistake(text: str, column: int, message: str) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(text)
    assert message in caught.value.message
    assert caught.value.column == column


def test_columns_count_characters_not_bytes() -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition("facts.offer == 'Diskon 20% — hari ini' and nope")
    assert caught.value.column == 44  # "—" is one character (three UTF-8 bytes)


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_conditions_are_refused(text: str) -> None:
    with pytest.raises(ConditionError, match="non-empty expression"):
        compile_condition(text)


def test_very_long_or_deep_conditions_are_refused_cleanly() -> None:
    with pytest.raises(ConditionError, match="at most 1000 characters"):
        compile_condition("score > 1 and " * 100 + "True")
    with pytest.raises(ConditionError):
        compile_condition("(" * 300 + "score" + ")" * 300)
    assert compile_condition("not " * 200 + "True")(QUIET) is True


def test_references_name_steps_facts_and_dispositions_with_columns() -> None:
    condition = compile_condition(
        "opened('invite') and facts.tiers.basic > 1 or disposition in ['qualified', 'won'] or event('x.y')"
    )
    assert condition.steps == frozenset({"invite"})
    assert condition.events == frozenset({"x.y"})
    assert condition.references == (
        Reference("step", "invite", 9),  # inside the quotes
        Reference("fact", "tiers.basic", 22),
        Reference("disposition", "qualified", 64),
        Reference("disposition", "won", 77),
    )
    assert compile_condition("'won' == disposition").references == (Reference("disposition", "won", 2),)


def test_nothing_is_ever_passed_to_eval_or_exec() -> None:
    calls: list[str] = []
    real = builtins.eval, builtins.exec

    def spy(name: str):
        def refuse(*args: object, **kwargs: object) -> None:
            calls.append(name)
            raise AssertionError(f"conditions must never reach {name}")

        return refuse

    builtins.eval, builtins.exec = spy("eval"), spy("exec")
    try:
        condition = compile_condition.__wrapped__("score >= 10 and not opened('invite') and facts.price < 100")
        results = condition(ENGAGED), condition(View(score=11, facts={"price": 5}))
    finally:
        builtins.eval, builtins.exec = real
    assert calls == []
    assert results == (False, True)


# -- property: random text never escapes as anything but ConditionError ---------------------------------
_TOKENS = st.sampled_from(
    [
        "score", "disposition", "attempts", "contact", "facts", "opened", "clicked", "delivered", "replied",
        "event", "'invite'", '"x"', "'", '"', "(", ")", "[", "]", "{", "}", ".", ",", ":", "==", "!=", ">=",
        "<", "in", "not", "and", "or", "is", "lambda", "for", "if", "else", "-", "+", "*", "**", "1", "0.5",
        "1e999", "-0", "True", "None", "__class__", "_x", "attributes", "country", "\n", " ", "\\", "\x00",
        "é", "\ud800", "f'", "b'", "@", "`", "$", ";", "=", ":=", "...", "#",
    ]
)  # fmt: skip


def _check_text(text: str) -> None:
    try:
        condition = compile_condition(text)
    except ConditionError as problem:
        assert problem.column >= 1
        assert problem.message
        return
    # Whatever compiles evaluates without raising, whatever the contact looks like.
    for view in (ENGAGED, QUIET, View(facts={"x": [1, {"a": None}]}, contact={"attributes": {"plan": 3}})):
        assert isinstance(condition(view), bool)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=80))
def test_random_text_raises_only_condition_error(text: str) -> None:
    _check_text(text)


@settings(max_examples=600, deadline=None)
@given(st.lists(_TOKENS, max_size=14).map(" ".join))
def test_random_expressions_raise_only_condition_error(text: str) -> None:
    _check_text(text)
