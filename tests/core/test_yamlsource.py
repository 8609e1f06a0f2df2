"""Safe YAML with positions: tags, merge keys, duplicate and odd keys, alias bombs, size limits, columns."""

from __future__ import annotations

import time

import pytest

from core import yamlsource
from core.yamlsource import MAX_EXPANDED_NODES, Position, SourceError, YamlSourceError, load_located


def fails(text: str, *, collect: bool = False) -> SourceError:
    with pytest.raises(YamlSourceError) as caught:
        load_located(text, "c.yaml", collect=collect)
    return caught.value.error


def test_keys_and_values_keep_their_1_based_positions() -> None:
    doc = load_located("id: demo\nsteps:\n  - send: sms\n    message:   hello\n", "c.yaml")
    assert doc.data == {"id": "demo", "steps": [{"send": "sms", "message": "hello"}]}
    assert doc.keys[("id",)] == Position(1, 1)
    assert doc.values[("id",)] == Position(1, 5)
    assert doc.values[("steps", 0)] == Position(3, 5)
    assert doc.keys[("steps", 0, "message")] == Position(4, 5)
    assert doc.values[("steps", 0, "message")] == Position(4, 16)
    assert str(doc.error(("steps", 0, "message"), "boom")) == "c.yaml:4:16: boom"
    assert str(doc.error(("steps", 0, "message"), "boom", key=True)) == "c.yaml:4:5: boom"
    assert str(doc.error(("steps", 0, "nothing", "here"), "boom")) == "c.yaml:3:5: boom"  # nearest parent


def test_timestamps_stay_text_and_plain_values_keep_their_types() -> None:
    doc = load_located("at: 2026-12-03T10:00:00+07:00\nday: 2026-12-03\nn: 3\nf: 0.5\nb: true\nz: ~\n", "c.yaml")
    assert doc.data == {"at": "2026-12-03T10:00:00+07:00", "day": "2026-12-03", "n": 3, "f": 0.5, "b": True, "z": None}


@pytest.mark.parametrize(
    ("text", "column", "shown"),
    [
        ("a: !!python/object:os.system x\n", 4, "!!python/object:os.system"),
        ("a: !!python/object/apply:os.system [ls]\n", 4, "!!python/object/apply:os.system"),
        ("a: !!python/name:os.system\n", 4, "!!python/name:os.system"),
        ("a: !!binary aGVsbG8=\n", 4, "!!binary"),
        ("a: !!set {x, y}\n", 4, "!!set"),
        ("a: !custom thing\n", 4, "!custom"),
    ],
)
def test_tags_outside_the_core_schema_are_refused(text: str, column: int, shown: str) -> None:
    error = fails(text)
    assert (error.line, error.column) == (1, column)
    assert f"tag '{shown}' is not allowed" in error.message


def test_merge_keys_are_refused_with_the_alternative() -> None:
    error = fails("base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n")
    assert (error.line, error.column) == (3, 3)
    assert "merge keys (<<) are not supported; write the keys out" in error.message


def test_duplicate_keys_name_the_first_one() -> None:
    error = fails("a: 1\nb:\n  c: 1\n  c: 2\n")
    assert str(error) == "c.yaml:4:3: duplicate key 'c' (first written at line 3); keep only one of them"


def test_keys_are_the_text_as_written() -> None:
    doc = load_located("on: 1\nyes: 2\n1: 3\n2026-01-01: 4\nnull: 5\n1.50: 6\n", "c.yaml")
    assert list(doc.data) == ["on", "yes", "1", "2026-01-01", "null", "1.50"]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "column", "message"),
    [
        ("? [a, b]\n: 1\n", 3, "a key must be plain text"),
        ("{a: 1}: x\n", 1, "a key must be plain text"),
        ("? !!python/name:os.system\n: 1\n", 3, "a key must be plain text"),
        ("'': 1\n", 1, "empty key"),
    ],
)
def test_keys_that_are_not_plain_text_are_refused(text: str, column: int, message: str) -> None:
    error = fails(text)
    assert error.column == column
    assert message in error.message


def test_collect_mode_reports_every_recoverable_problem_and_keeps_the_rest() -> None:
    doc = load_located(
        "a: !!python/object:x y\nb: 1\nb: 2\nc:\n  <<: {z: 1}\n  d: 3\n? [k]\n: v\ne: ok\n", "c.yaml", collect=True
    )
    assert [str(e) for e in doc.errors] == [
        "c.yaml:1:4: tag '!!python/object:x' is not allowed: cadences hold plain values only (text, numbers, "
        "true/false, lists, mappings); remove the tag",
        "c.yaml:3:1: duplicate key 'b' (first written at line 2); keep only one of them",
        "c.yaml:5:3: merge keys (<<) are not supported; write the keys out (anchors for whole values still work)",
        "c.yaml:7:3: a key must be plain text such as `name:`, not a list, mapping or tag",
    ]
    assert doc.data == {"a": None, "b": 1, "c": {"d": 3}, "e": "ok"}
    # Only the refused value is marked, so the schema layer does not report the same spot again.
    assert doc.poisoned == {("a",)}
    assert doc.is_poisoned(("a", "x")) and not doc.is_poisoned(("b",)) and not doc.is_poisoned(())


def _laughs(levels: int, width: int = 9) -> str:
    lines = [f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    for level in range(1, levels):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def _expanded(levels: int, width: int = 9) -> int:
    """Values the _laughs document expands to: the root, each key, each list and its items."""
    size, total = width + 1, 1 + 2 + width  # level 0: list + items; root + key
    for _ in range(1, levels):
        size = 1 + width * size
        total += 1 + size
    return total


@pytest.mark.parametrize("levels", [2, 3, 4])
def test_small_alias_documents_expand_normally(levels: int) -> None:
    assert _expanded(levels) <= MAX_EXPANDED_NODES
    doc = load_located(_laughs(levels), "c.yaml")
    assert doc.data["l1"] == [["lol"] * 9] * 9  # type: ignore[index]


@pytest.mark.parametrize("levels", [5, 6, 9, 12, 30])
def test_alias_bombs_are_refused_before_expanding(levels: int) -> None:
    assert _expanded(levels) > MAX_EXPANDED_NODES
    started = time.perf_counter()
    error = fails(_laughs(levels))
    assert time.perf_counter() - started < 1.0
    assert "(an alias bomb?)" in error.message
    assert error.message.startswith("alias *l")
    assert error.line >= 5  # at an alias that pushes the count over, not at the top of the file


def test_a_wide_alias_bomb_is_refused_at_the_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlsource, "MAX_EXPANDED_NODES", 5_000)
    text = "big: &big [" + ", ".join(["x"] * 3_000) + "]\ncopy: *big\n"
    error = fails(text)
    assert (error.line, error.column) == (2, 7)
    assert error.message.startswith("alias *big expands to 3001 values, making the document larger than 5000")


def test_self_referencing_aliases_are_refused() -> None:
    error = fails("a: &a [1, *a]\n")
    assert (error.line, error.column, error.message) == (
        1,
        11,
        "alias *a refers to a value that contains it (a loop); write the values out",
    )
    assert "loop" in fails("a: &a {b: *a}\n").message


@pytest.mark.parametrize("text", ["a: " + "[" * 5000 + "]" * 5000, "a: " + "[" * 65 + "]" * 65])
def test_deep_nesting_is_refused_without_a_crash(text: str) -> None:
    assert "nested more than 64 levels deep" in fails(text).message


def test_block_nesting_at_a_realistic_depth_is_fine() -> None:
    text = "".join(f"{'  ' * i}k{i}:\n" for i in range(30)) + f"{'  ' * 30}v: 1\n"
    doc = load_located(text, "c.yaml")
    assert doc.keys[(*(f"k{i}" for i in range(30)), "v")] == Position(31, 61)


def test_a_huge_flat_document_just_under_the_limit_loads() -> None:
    pairs = (MAX_EXPANDED_NODES - 1) // 2  # the root mapping plus a key and a value per pair
    text = "".join(f"k{i}: {i}\n" for i in range(pairs))
    doc = load_located(text, "c.yaml")
    assert len(doc.data) == pairs  # type: ignore[arg-type]
    assert doc.values[(f"k{pairs - 1}",)] == Position(pairs, len(f"k{pairs - 1}: ") + 1)


def test_one_value_over_the_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yamlsource, "MAX_EXPANDED_NODES", 2_001)
    text = "".join(f"k{i}: {i}\n" for i in range(1_000))  # 1 + 2 * 1000 = 2001 values
    assert len(load_located(text, "c.yaml").data) == 1_000  # type: ignore[arg-type]
    error = fails(text + "one: more\n")
    assert str(error) == "c.yaml:1:1: the document holds more than 2001 values; split it into smaller files"
    assert len(load_located("items:\n" + "  - x\n" * 1_998, "c.yaml").data["items"]) == 1_998  # type: ignore[index]
    assert "more than 2001 values" in fails("items:\n" + "  - x\n" * 1_999).message


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("", 1, 1, "the file is empty"),
        ("# only a comment\n", 1, 1, "the file is empty"),
        ("a: 1\n\tb: 2\n", 2, 1, "indent with spaces, not tabs"),
        ("a: *missing\n", 1, 4, "define the anchor (&name) before using the alias (*name)"),
        ("a: b: c\n", 1, 5, "put text containing ': ' in quotes"),
        ("a: [1, 2\n", 2, 1, "YAML syntax"),
        ("a: 1\n---\nb: 2\n", 2, 1, "YAML syntax"),
    ],
)
def test_unreadable_documents_say_where(text: str, line: int, column: int, message: str) -> None:
    error = fails(text)
    assert (error.line, error.column) == (line, column)
    assert message in error.message


# -- positions inside text values (for errors inside conditions) ----------------------------------------
@pytest.mark.parametrize(
    ("text", "offset", "expected"),
    [
        ("if: opened('x')\n", 8, Position(1, 13)),  # plain
        ("if: \"opened('x')\"\n", 8, Position(1, 14)),  # double-quoted
        ("if: 'opened(''x'')'\n", 8, Position(1, 15)),  # single-quoted, '' is one quote
        ('if: "a\\tb == c"\n', 2, Position(1, 9)),  # an escape is one character
        ("if: >\n  score >= 10 and\n  opened('x')\n", 24, Position(3, 11)),  # folded block
        ("if: |\n  score >= 10 and\n  opened('x')\n", 24, Position(3, 11)),  # literal block
        ("if: score >= 10 and\n  opened('x')\n", 24, Position(2, 11)),  # multi-line plain
        ("if: \"score >= 10 and\r\n  opened('x')\"\r\n", 24, Position(2, 11)),  # Windows line ends
        ("if: opened('é—x')\n", 10, Position(1, 15)),  # characters, not bytes
    ],
)
def test_positions_inside_text_values(text: str, offset: int, expected: Position) -> None:
    doc = load_located(text, "c.yaml")
    value = doc.data["if"]  # type: ignore[index]
    assert value[offset] in "x'b", value  # the character the offset names
    assert doc.position_in_text(("if",), offset) == expected
