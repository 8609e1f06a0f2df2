"""Safe YAML reading that remembers where every value came from.

Marketers write cadences by hand, so every error must point at `path:line:col`. PyYAML's safe
composer gives us nodes with marks; we build plain Python data from them ourselves, which lets us
(1) keep a position for every key and value (and for every character of a text value, so an error
inside a condition points inside it), (2) refuse any tag outside the YAML core schema
(`!!python/object` and friends), (3) refuse documents whose aliases expand without bound ("billion
laughs") or refer to themselves, by counting what they would expand to before expanding anything,
and (4) treat mapping keys as the text written, so `on:` or `1:` stay "on" and "1".

Problems that leave the rest of the file readable (a duplicate key, a refused tag, a merge key) are
collected in `LocatedDocument.errors` so a marketer sees all of them at once; the affected paths are
listed in `LocatedDocument.poisoned` so later layers do not report the same spot twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.scanner import Scanner

# A cadence has a few hundred values; 50k leaves room for big fact tables and stops alias bombs early.
MAX_EXPANDED_NODES = 50_000
# Cadences nest a handful of levels; deeper documents are refused before Python's recursion limit is hit.
MAX_DEPTH = 64
_CORE_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:map",
}
_MERGE_TAG = "tag:yaml.org,2002:merge"
_BREAKS = "\n\x85\u2028\u2029"

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Position:
    line: int  # 1-based
    column: int  # 1-based


@dataclass(frozen=True)
class SourceError:
    """One problem in a source file, printable as `path:line:col: message`."""

    path: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}: {self.message}"


class YamlSourceError(Exception):
    """A document that cannot be read at all (syntax error, alias bomb, empty file)."""

    def __init__(self, error: SourceError):
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class _Span:
    """Where a text value was written: its first character's mark and its raw source range."""

    line: int  # 0-based, as PyYAML marks
    column: int
    start: int  # index into the source text
    end: int
    style: str | None  # None (plain), "'", '"', "|", ">"


@dataclass
class LocatedDocument:
    """Plain data (dicts, lists, str, int, float, bool, None) plus where each part was written."""

    path: str
    data: object
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)
    errors: list[SourceError] = field(default_factory=list)
    poisoned: set[Path] = field(default_factory=set)
    text: str = ""
    spans: dict[Path, _Span] = field(default_factory=dict)

    def locate(self, path: Path, *, key: bool = False) -> Position:
        """The best position for `path`: the key or value itself, else its nearest written parent."""
        probe = tuple(path)
        while True:
            if key and probe in self.keys:
                return self.keys[probe]
            if probe in self.values:
                return self.values[probe]
            if not probe:
                return Position(1, 1)
            probe = probe[:-1]
            key = False

    def error(self, path: Path, message: str, *, key: bool = False) -> SourceError:
        pos = self.locate(path, key=key)
        return SourceError(self.path, pos.line, pos.column, message)

    def is_poisoned(self, path: Path) -> bool:
        """Whether `path` or one of its parents already has a YAML-level error."""
        return any(tuple(path[:n]) in self.poisoned for n in range(len(path) + 1))

    def position_in_text(self, path: Path, offset: int) -> Position:
        """Where character `offset` (0-based) of the text value at `path` was written in the file.

        Exact for plain and quoted single-line values and for block scalars; approximate (never
        outside the value) for escapes such as `\\u00e9`. Falls back to the value's start.
        """
        span = self.spans.get(tuple(path))
        value = _dig(self.data, path)
        if span is None or not isinstance(value, str):
            return self.locate(path)
        offset = max(0, min(offset, len(value) - 1)) if value else 0
        raw_index = _align(value, self.text, span)[offset] if value else span.start
        return _walk(self.text, span, raw_index)


def _dig(data: object, path: Path) -> object:
    for part in path:
        try:
            data = data[part]  # type: ignore[index]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _align(value: str, text: str, span: _Span) -> list[int]:
    """For each character of `value`, the index in `text` it was written at (greedy alignment).

    Quotes and whitespace in the source (indentation, folded line breaks) may be skipped to find
    the next character, and an escape such as `\\t` in double quotes stands for one character;
    anything else that does not match consumes one source character, so the result stays monotonic
    and inside the value.
    """
    j = span.start
    if span.style in ("|", ">"):
        j = text.find("\n", j, span.end) + 1 or span.start  # content starts after the indicator line
    elif span.style in ("'", '"'):
        j += 1  # the opening quote
    last = max(span.start, span.end - 1)
    mapping: list[int] = []
    for ch in value:
        found = _find_char(ch, text, j, span)
        if found is None:
            mapping.append(min(j, last))
            j += 1
        else:
            mapping.append(found[0])
            j = found[0] + found[1]
    return mapping


def _find_char(ch: str, text: str, k: int, span: _Span) -> tuple[int, int] | None:
    """(index, source length) of `ch` at or after k, skipping only quotes and whitespace."""
    while k < span.end:
        c = text[k]
        if span.style == '"' and c == "\\":
            decoded, length = _escape(text, k)
            if decoded == ch:
                return k, length
            if decoded:
                return None
            k += length  # an escaped line break stands for nothing
            continue
        if c == ch:
            return k, 1
        if c in "'\"" or c.isspace():
            k += 1
            continue
        return None
    return None


def _escape(text: str, k: int) -> tuple[str, int]:
    """The character a double-quoted escape at text[k] stands for, and its length in the source."""
    code = text[k + 1 : k + 2]
    if code in Scanner.ESCAPE_REPLACEMENTS:
        return Scanner.ESCAPE_REPLACEMENTS[code], 2
    if code in Scanner.ESCAPE_CODES:
        digits = Scanner.ESCAPE_CODES[code]
        try:
            return chr(int(text[k + 2 : k + 2 + digits], 16)), 2 + digits
        except ValueError:
            return "\\", 1
    if code in "\r\n":
        return "", 2
    return "\\", 1


def _walk(text: str, span: _Span, index: int) -> Position:
    """Line and column of `text[index]`, counted from the span's mark with PyYAML's line-break rules."""
    line, column = span.line, span.column
    i = span.start
    while i < index:
        ch = text[i]
        if ch in _BREAKS or (ch == "\r" and text[i + 1 : i + 2] != "\n"):
            line, column = line + 1, 0
        else:
            column += 1
        i += 1
    return Position(line + 1, column + 1)


class _Alias:
    """An alias as written (`*name`): the anchored node it refers to plus where the alias itself is."""

    __slots__ = ("anchor", "mark", "node")

    def __init__(self, node: Node, mark: yaml.Mark, anchor: str):
        self.node, self.mark, self.anchor = node, mark, anchor


class _Loader(yaml.SafeLoader):
    """The safe loader, except that aliases stay visible (PyYAML shares the anchored node silently)."""

    def compose_node(self, parent, index):  # type: ignore[no-untyped-def]
        if self.check_event(AliasEvent):
            event = self.peek_event()
            node = super().compose_node(parent, index)
            return _Alias(node, event.start_mark, event.anchor)
        return super().compose_node(parent, index)


def _position(node: Node | _Alias) -> Position:
    mark = node.mark if isinstance(node, _Alias) else node.start_mark
    return Position(mark.line + 1, mark.column + 1)


class _Builder:
    def __init__(self, doc: LocatedDocument, collect: bool):
        self.doc = doc
        self.collect = collect
        self.sizes: dict[int, int] = {}
        self.constructor = SafeConstructor()

    def fatal(self, node: Node | _Alias, message: str) -> YamlSourceError:
        pos = _position(node)
        return YamlSourceError(SourceError(self.doc.path, pos.line, pos.column, message))

    def soft(self, node: Node | _Alias, message: str, poisoned: Path | None = None) -> None:
        """A problem that leaves the rest readable: collect it (or raise it when not collecting).

        `poisoned` is the path whose value was dropped, so later layers stay quiet about it.
        """
        if not self.collect:
            raise self.fatal(node, message)
        pos = _position(node)
        self.doc.errors.append(SourceError(self.doc.path, pos.line, pos.column, message))
        if poisoned is not None:
            self.doc.poisoned.add(poisoned)

    # -- size check, before anything is expanded ---------------------------------------------------
    def check_size(self, root: Node) -> None:
        total = self._size(root, [], 0)
        if total > MAX_EXPANDED_NODES:
            culprit = self._first_big_alias(root, 0, set())
            if culprit is not None:
                alias, size = culprit
                raise self.fatal(
                    alias,
                    f"alias *{alias.anchor} expands to {_many(size)} values, making the document larger than "
                    f"{MAX_EXPANDED_NODES} values (an alias bomb?); write the values out or nest fewer anchors",
                )
            raise self.fatal(
                root, f"the document holds more than {MAX_EXPANDED_NODES} values; split it into smaller files"
            )

    def _size(self, node: Node | _Alias, active: list[int], depth: int) -> int:
        """Values `node` expands to (capped just above the limit); refuses cycles and deep nesting."""
        if depth > MAX_DEPTH:
            raise self.fatal(node, f"values are nested more than {MAX_DEPTH} levels deep; flatten the structure")
        target = node.node if isinstance(node, _Alias) else node
        if id(target) in active:
            assert isinstance(node, _Alias)
            raise self.fatal(
                node, f"alias *{node.anchor} refers to a value that contains it (a loop); write the values out"
            )
        if id(target) in self.sizes:
            return self.sizes[id(target)]
        active.append(id(target))
        total = 1
        if isinstance(target, SequenceNode):
            for item in target.value:
                total += self._size(item, active, depth + 1)
        elif isinstance(target, MappingNode):
            for key, value in target.value:
                total += self._size(key, active, depth + 1) + self._size(value, active, depth + 1)
        active.pop()
        total = min(total, MAX_EXPANDED_NODES + 1)
        self.sizes[id(target)] = total
        return total

    def _first_big_alias(self, node: Node | _Alias, count: int, seen: set[int]) -> tuple[_Alias, int] | None:
        """The first alias (in document order) whose expansion would push the count over the limit."""
        if isinstance(node, _Alias):
            size = self.sizes[id(node.node)]
            return (node, size) if count + size > MAX_EXPANDED_NODES or size > MAX_EXPANDED_NODES else None
        children: list[Node | _Alias] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        count += 1
        for child in children:
            found = self._first_big_alias(child, count, seen)
            if found is not None:
                return found
            target = child.node if isinstance(child, _Alias) else child
            count += self.sizes[id(target)]
        return None

    # -- building plain data --------------------------------------------------------------------------
    def build(self, node: Node | _Alias, path: Path) -> object:
        self.doc.values.setdefault(path, _position(node))
        target = node.node if isinstance(node, _Alias) else node
        if target.tag not in _CORE_TAGS:
            self.soft(
                node,
                f"tag '{_short_tag(target.tag)}' is not allowed: cadences hold plain values only (text, numbers, "
                "true/false, lists, mappings); remove the tag",
                poisoned=path,
            )
            return None
        if isinstance(target, MappingNode):
            return self._mapping(target, path)
        if isinstance(target, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(target.value)]
        assert isinstance(target, ScalarNode)
        try:
            value = self.constructor.construct_object(target, deep=True)
        except ConstructorError as exc:
            self.soft(node, f"cannot read value: {exc.problem}", poisoned=path)
            return None
        if isinstance(value, str) and not isinstance(node, _Alias):
            self.doc.spans[path] = _Span(
                target.start_mark.line,
                target.start_mark.column,
                target.start_mark.index,
                target.end_mark.index,
                target.style,
            )
        # Timestamps stay text: snapshots travel as JSON and templates format them as they like.
        if isinstance(value, dt.datetime | dt.date):
            return target.value
        return value

    def _mapping(self, node: MappingNode, path: Path) -> dict:
        result: dict = {}
        first_seen: dict[str, Position] = {}
        for key_node, value_node in node.value:
            key_target = key_node.node if isinstance(key_node, _Alias) else key_node
            if key_target.tag == _MERGE_TAG:
                self.soft(
                    key_node,
                    "merge keys (<<) are not supported; write the keys out (anchors for whole values still work)",
                )
                continue
            if not isinstance(key_target, ScalarNode) or key_target.tag not in _CORE_TAGS:
                self.soft(key_node, "a key must be plain text such as `name:`, not a list, mapping or tag")
                continue
            # The key is the text as written: `on:` stays "on" and `1:` stays "1" (YAML 1.1 would change them).
            key = key_target.value
            if key == "":
                self.soft(key_node, "empty key; write a name before the ':'")
                continue
            if key in result:
                first = first_seen[key]
                self.soft(
                    key_node,
                    f"duplicate key '{key}' (first written at line {first.line}); keep only one of them",
                )
                continue
            first_seen[key] = _position(key_node)
            self.doc.keys[(*path, key)] = _position(key_node)
            result[key] = self.build(value_node, (*path, key))
        return result


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix("tag:yaml.org,2002:") if tag.startswith("tag:yaml.org,2002:") else tag


def _many(size: int) -> str:
    return f"more than {MAX_EXPANDED_NODES}" if size > MAX_EXPANDED_NODES else str(size)


def load_located(text: str, path: str, *, collect: bool = False) -> LocatedDocument:
    """Parse one YAML document into plain data with positions.

    Raises YamlSourceError when the document cannot be read at all. Problems that leave the rest
    readable (duplicate keys, refused tags, merge keys, non-text keys) raise too unless `collect`
    is set, in which case they are listed in `errors` and the rest of the document is kept.
    """
    doc = LocatedDocument(path=path, data=None, text=text)
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlSourceError(SourceError(path, line, col, _syntax_message(exc))) from exc
    except yaml.YAMLError as exc:
        raise YamlSourceError(SourceError(path, 1, 1, f"YAML error: {exc}")) from exc
    except RecursionError as exc:
        raise YamlSourceError(
            SourceError(path, 1, 1, f"values are nested more than {MAX_DEPTH} levels deep; flatten the structure")
        ) from exc
    finally:
        loader.dispose()
    if root is None:
        raise YamlSourceError(SourceError(path, 1, 1, "the file is empty"))
    builder = _Builder(doc, collect)
    builder.check_size(root)
    doc.data = builder.build(root, ())
    return doc


def _syntax_message(exc: yaml.MarkedYAMLError) -> str:
    problem = str(exc.problem or exc.context or "unreadable YAML")
    hint = ""
    if "'\\t'" in problem:
        hint = "; indent with spaces, not tabs"
    elif "found undefined alias" in problem:
        hint = "; define the anchor (&name) before using the alias (*name)"
    elif "mapping values are not allowed" in problem:
        hint = "; put text containing ': ' in quotes"
    elif "found character '@'" in problem or "found character '`'" in problem:
        hint = "; put text starting with @ or ` in quotes"
    return f"YAML syntax: {problem}{hint}"
