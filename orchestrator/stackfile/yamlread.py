"""YAML text -> plain data that remembers where every entry came from.

Compose reads YAML with go-yaml v3 (YAML 1.2 core schema): `no`/`on` are strings, `22:22` is a
string, `0440` is octal. ruamel composes the node graph (its C parser when ruamel.yaml.clib is
installed); plain scalars are resolved here, not by ruamel, so we decide exactly what they mean.
Anchors and aliases come resolved from the composer; `<<` merge keys are applied here (local
keys win; with a list of maps the first one wins). `!reset`/`!override` mark a mapping value for
the merge of several files.
"""

from __future__ import annotations

import math
import re
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver

from orchestrator.stackfile.problems import Problems, Where

_PLAIN = "?plain"  # tag given to untagged plain scalars, which this module resolves itself
_STR, _INT, _FLOAT, _BOOL, _NULL = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
MERGE_TAGS = ("!reset", "!override")
#: An alias bomb ("billion laughs") must not eat the machine: cap the expanded size.
MAX_NODES = 2_000_000

_INT_RE = re.compile(r"[-+]?(0|[1-9][0-9_]*)")
_OCTAL_RE = re.compile(r"[-+]?0o?[0-7_]+")
_HEX_RE = re.compile(r"[-+]?0x[0-9a-fA-F_]+")
_BIN_RE = re.compile(r"[-+]?0b[01_]+")
_FLOAT_RE = re.compile(r"[-+]?(\.[0-9]+|[0-9][0-9_]*(\.[0-9_]*)?)([eE][-+]?[0-9]+)?")
_SPECIAL_FLOATS = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}


class YMap(dict[str, Any]):
    """A mapping with the place of each key, and the merge tag (if any) of each value."""

    __slots__ = ("where", "key_where", "tags")

    def __init__(self, where: Where) -> None:
        super().__init__()
        self.where = where
        self.key_where: dict[str, Where] = {}
        self.tags: dict[str, str] = {}

    def put(self, key: str, value: Any, where: Where, tag: str | None = None) -> None:
        self[key] = value
        self.key_where[key] = where
        if tag:
            self.tags[key] = tag
        else:
            self.tags.pop(key, None)


class YSeq(list[Any]):
    """A sequence with the place of each item."""

    __slots__ = ("where", "item_where")

    def __init__(self, where: Where) -> None:
        super().__init__()
        self.where = where
        self.item_where: list[Where] = []

    def add(self, value: Any, where: Where) -> None:
        self.append(value)
        self.item_where.append(where)


def where_of(value: Any, fallback: Where) -> Where:
    return value.where if isinstance(value, (YMap, YSeq)) else fallback


class _Resolver(VersionedResolver):
    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is ScalarNode and implicit[0]:
            return _PLAIN
        return super().resolve(kind, value, implicit)


def _parser() -> YAML:
    yaml = YAML(typ="safe")  # C parser when available; we never use ruamel's constructor
    yaml.Resolver = _Resolver
    yaml.version = (1, 2)
    return yaml


def read_yaml(text: str, file: str, problems: Problems) -> YMap | None:
    """Parse one stack file. None (with problems recorded) when it is not a usable document."""
    try:
        node = _parser().compose(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problems.error((file, line), "", f"invalid YAML: {exc.problem or exc.context}")
        return None
    except (YAMLError, ValueError) as exc:  # e.g. "expected a single document", bad characters
        problems.error((file, 0), "", f"invalid YAML: {exc}")
        return None
    if node is None:
        problems.error((file, 1), "", "the file is empty")
        return None
    if not isinstance(node, MappingNode):
        problems.error((file, _line(node)), "", "the top level must be a mapping")
        return None
    builder = _Builder(file, problems)
    try:
        result = builder.build(node, "")
    except _TooBig:
        problems.error((file, 0), "", f"the document expands to more than {MAX_NODES} nodes (alias bomb?)")
        return None
    return result if isinstance(result, YMap) else None


class _TooBig(Exception):
    pass


def _line(node: Node) -> int:
    return int(node.start_mark.line) + 1


class _Builder:
    def __init__(self, file: str, problems: Problems) -> None:
        self.file = file
        self.problems = problems
        self.count = 0
        self.active: set[int] = set()  # nodes being built: an alias to one of them is a cycle

    def error(self, node: Node, path: str, message: str) -> None:
        self.problems.error((self.file, _line(node)), path, message)

    def build(self, node: Node, path: str) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooBig
        if id(node) in self.active:
            self.error(node, path, "an alias refers to its own anchor (recursive structure)")
            return None
        tag = node.tag if isinstance(node.tag, str) else str(node.tag)
        if isinstance(node, ScalarNode):
            return self.scalar(node, tag, path)
        self.active.add(id(node))
        try:
            if tag not in (_MAP, _SEQ, *MERGE_TAGS):
                self.error(node, path, f"unsupported YAML tag {tag}")
            if isinstance(node, SequenceNode):
                return self.sequence(node, path)
            return self.mapping(node, path)
        finally:
            self.active.discard(id(node))

    def sequence(self, node: SequenceNode, path: str) -> YSeq:
        seq = YSeq((self.file, _line(node)))
        for index, item in enumerate(node.value):
            item_path = f"{path}[{index}]"
            if _merge_tag(item):
                self.error(item, item_path, f"{_merge_tag(item)} is only allowed on a mapping value")
            seq.add(self.build(item, item_path), (self.file, _line(item)))
        return seq

    def mapping(self, node: MappingNode, path: str) -> YMap:
        result = YMap((self.file, _line(node)))
        merged: list[YMap] = []
        for key_node, value_node in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag == _PLAIN and key_node.value == "<<":
                merged.extend(self.merge_sources(value_node, path))
                continue
            key = self.key(key_node, path)
            if key is None:
                continue
            key_path = f"{path}.{key}" if path else key
            if key in result:
                self.error(key_node, key_path, "duplicate key")
                continue
            result.put(key, self.build(value_node, key_path), (self.file, _line(key_node)), _merge_tag(value_node))
        for source in merged:  # YAML merge: keys already present (local or earlier source) win
            for key, value in source.items():
                if key not in result:
                    result.put(key, value, source.key_where[key], source.tags.get(key))
        return result

    def merge_sources(self, node: Node, path: str) -> list[YMap]:
        value = self.build(node, path)
        items = value if isinstance(value, YSeq) else [value]
        sources = [item for item in items if isinstance(item, YMap)]
        if len(sources) != len(items):
            self.error(node, path or "<<", "a << merge key needs a mapping or a list of mappings")
        return sources

    def key(self, node: Node, path: str) -> str | None:
        if not isinstance(node, ScalarNode):
            self.error(node, path, "a mapping key must be a scalar")
            return None
        if node.tag == _PLAIN and node.value in ("", "~", "null", "Null", "NULL"):
            self.error(node, path, "a mapping key must not be null")
            return None
        return str(node.value)

    def scalar(self, node: ScalarNode, tag: str, path: str) -> Any:
        text: str = node.value
        if tag == _PLAIN:
            return resolve_plain(text)
        if tag in (_STR, *MERGE_TAGS):
            return text if tag == _STR or node.style else resolve_plain(text)
        if tag in (_INT, _FLOAT, _BOOL, _NULL):
            value = resolve_plain(text)
            expected = {_INT: int, _FLOAT: (int, float), _BOOL: bool, _NULL: type(None)}[tag]
            if isinstance(value, expected) and not (tag == _INT and isinstance(value, bool)):
                return float(value) if tag == _FLOAT else value
            self.error(node, path, f"{text!r} is not a valid {tag.rsplit(':', 1)[1]}")
            return None
        self.error(node, path, f"unsupported YAML tag {tag}")
        return None


def _merge_tag(node: Node) -> str | None:
    tag = node.tag if isinstance(node.tag, str) else str(node.tag)
    return tag if tag in MERGE_TAGS else None


def resolve_plain(text: str) -> Any:
    """An untagged plain scalar as go-yaml v3 reads it (YAML 1.2 core schema + `0755` octal)."""
    if text in ("", "~", "null", "Null", "NULL"):
        return None
    if text in ("true", "True", "TRUE"):
        return True
    if text in ("false", "False", "FALSE"):
        return False
    first = text[0]
    if not (first.isdigit() or first in "+-."):
        return text
    clean = text.replace("_", "")
    if _INT_RE.fullmatch(text):
        return int(clean)
    for pattern, base in ((_OCTAL_RE, 8), (_HEX_RE, 16), (_BIN_RE, 2)):
        if pattern.fullmatch(text):
            digits = clean.lstrip("+-")
            digits = digits[2:] if digits[1:2] in ("o", "x", "b") else digits
            number = int(digits, base) if digits else 0
            return -number if clean.startswith("-") else number
    if text.lower() in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[text.lower()]
    if _FLOAT_RE.fullmatch(text):
        return float(clean)
    return text
