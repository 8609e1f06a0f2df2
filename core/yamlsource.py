"""Safe YAML reading that remembers where every value came from.

Marketers write cadences by hand, so every error must point at `path:line:col`. PyYAML's safe
composer gives us nodes with marks; we build plain Python data from them ourselves, which lets us
(1) keep a position for every key and value, (2) refuse any tag outside the YAML core schema
(`!!python/object` and friends) and (3) refuse documents whose aliases expand without bound
("billion laughs") before they use the memory.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

# A cadence has a few hundred nodes; 50k leaves room for big fact tables and stops alias bombs early.
MAX_EXPANDED_NODES = 50_000
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
    def __init__(self, error: SourceError):
        super().__init__(str(error))
        self.error = error


@dataclass
class LocatedDocument:
    """Plain data (dicts, lists, str, int, float, bool, None) plus where each part was written."""

    path: str
    data: object
    values: dict[Path, Position] = field(default_factory=dict)
    keys: dict[Path, Position] = field(default_factory=dict)

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


def _position(node: Node) -> Position:
    return Position(node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, doc: LocatedDocument):
        self.doc = doc
        self.count = 0
        self.constructor = SafeConstructor()

    def fail(self, node: Node, message: str) -> YamlSourceError:
        pos = _position(node)
        return YamlSourceError(SourceError(self.doc.path, pos.line, pos.column, message))

    def build(self, node: Node, path: Path) -> object:
        self.count += 1
        if self.count > MAX_EXPANDED_NODES:
            raise self.fail(
                node,
                f"document expands to more than {MAX_EXPANDED_NODES} values (an alias bomb?); "
                "write the values out or use fewer nested anchors",
            )
        if node.tag not in _CORE_TAGS:
            raise self.fail(node, f"tag {node.tag!r} is not allowed; only plain YAML values are accepted")
        self.doc.values.setdefault(path, _position(node))
        if isinstance(node, MappingNode):
            return self._mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        assert isinstance(node, ScalarNode)
        try:
            value = self.constructor.construct_object(node, deep=True)
        except ConstructorError as exc:
            raise self.fail(node, f"cannot read value: {exc.problem}") from exc
        # Timestamps stay text: snapshots travel as JSON and templates format them as they like.
        if isinstance(value, dt.datetime | dt.date):
            return node.value
        return value

    def _mapping(self, node: MappingNode, path: Path) -> dict:
        result: dict = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.fail(key_node, "merge keys (<<) are not supported; write the keys out")
            key = self.build(key_node, (*path, "<key>"))
            if not isinstance(key, str | int | bool) or key is None:
                raise self.fail(key_node, "mapping keys must be plain text")
            key = str(key) if not isinstance(key, str) else key
            if key in result:
                raise self.fail(key_node, f"duplicate key {key!r}")
            self.doc.keys[(*path, key)] = _position(key_node)
            result[key] = self.build(value_node, (*path, key))
        return result


def load_located(text: str, path: str) -> LocatedDocument:
    """Parse one YAML document into plain data with positions; raise YamlSourceError when unreadable."""
    doc = LocatedDocument(path=path, data=None)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise YamlSourceError(SourceError(path, line, col, f"YAML syntax: {exc.problem}")) from exc
    except yaml.YAMLError as exc:
        raise YamlSourceError(SourceError(path, 1, 1, f"YAML error: {exc}")) from exc
    if root is None:
        raise YamlSourceError(SourceError(path, 1, 1, "the file is empty"))
    doc.data = _Builder(doc).build(root, ())
    return doc
