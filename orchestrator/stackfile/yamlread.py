"""YAML text -> plain data that remembers where every entry came from.

Compose reads YAML with go-yaml v3 (YAML 1.2 core schema): `no`/`on` are strings, `22:22` is a
string, `0440` is octal. ruamel's parser (libyaml through ruamel.yaml.clib when installed) gives
the events; this module builds the tree from them and resolves plain scalars itself (scalars.py),
so we decide exactly what they mean. Anchors and aliases are shared values (an alias bomb is capped); `<<`
merge keys are applied here (local keys win; with a list of maps the first one wins).
`!reset`/`!override` mark a mapping value for the merge of several files. Mapping keys are
strings: `123:` or `true:` is an error, as in compose-go (quoted, `"123":` is a string). A file may
hold several `---`-separated documents, which the loader merges in order like several files.

Nesting is counted while the parser runs, and the parse stops at the first event deeper than the
limit: libyaml's work per event grows with the depth (100,000 `[` take minutes), and every pass
after this one (building, interpolation, merging) recurses once per level, so a document deeper
than the limit is refused before any of them runs.
"""

from __future__ import annotations

import gc
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    Event,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
)

from orchestrator.stackfile.limits import Limits, limit_note
from orchestrator.stackfile.problems import Problems, Where
from orchestrator.stackfile.scalars import resolve_plain

_STR, _INT, _FLOAT, _BOOL, _NULL = (f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null"))
_MAP, _SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"
MERGE_TAGS = ("!reset", "!override")



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


def _parser() -> YAML:
    yaml = YAML(typ="safe")  # C parser (libyaml) when ruamel.yaml.clib is installed
    yaml.version = (1, 2)
    return yaml


def read_documents(text: str, file: str, problems: Problems, limits: Limits = Limits()) -> list[YMap] | None:
    """Parse one stack file into its YAML documents, each a mapping: compose-go reads the
    documents of a `---`-separated stream as successive files, merged in order. Empty (null)
    documents are skipped. None (with problems recorded) when the file is not usable."""
    gc_was_enabled = gc.isenabled()
    gc.disable()  # building thousands of small containers otherwise triggers many useless collections
    try:
        return _read(text, file, problems, limits)
    finally:
        if gc_was_enabled:
            gc.enable()


def _read(text: str, file: str, problems: Problems, limits: Limits) -> list[YMap] | None:
    try:
        # The parser's events, not ruamel's composer: building our tree straight from them is
        # several times faster, and scalars are resolved here anyway.
        events = _events(text, limits.max_yaml_depth)
    except _TooDeep as exc:
        note = limit_note(limits.max_yaml_depth, "levels of YAML nesting", "max_yaml_depth")
        problems.error((file, exc.line), "", f"the document nests deeper than {note}")
        return None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problems.error((file, line), "", f"invalid YAML: {exc.problem or exc.context}")
        return None
    except (YAMLError, ValueError) as exc:  # e.g. characters YAML does not allow
        problems.error((file, 0), "", f"invalid YAML: {exc}")
        return None
    roots = [i + 1 for i, event in enumerate(events) if isinstance(event, DocumentStartEvent)]
    roots = [i for i in roots if not _is_null(events[i])]
    if not roots:
        problems.error((file, 1), "", "the file is empty")
        return None
    builder = _Builder(file, problems, events, limits.max_yaml_nodes)
    documents = []
    for number, root in enumerate(roots, start=1):
        if not isinstance(events[root], MappingStartEvent):
            which = f" (document {number})" if len(roots) > 1 else ""
            problems.error((file, _line(events[root])), "", f"the top level must be a mapping{which}")
            continue
        try:
            documents.append(builder.build_document(root))
        except _TooBig:
            note = limit_note(limits.max_yaml_nodes, "YAML nodes", "max_yaml_nodes")
            problems.error((file, 0), "", f"the document, aliases expanded, is over {note} (an alias bomb?)")
            return None
    return documents if len(documents) == len(roots) else None


def _events(text: str, max_depth: int) -> list[Event]:
    """Every parser event, stopping at the first one that nests deeper than `max_depth`."""
    events: list[Event] = []
    depth = 0
    for event in _parser().parse(text):
        if isinstance(event, (MappingStartEvent, SequenceStartEvent)):
            depth += 1
            if depth > max_depth:
                raise _TooDeep(_line(event))
        elif isinstance(event, (MappingEndEvent, SequenceEndEvent)):
            depth -= 1
        events.append(event)
    return events


class _TooBig(Exception):
    pass


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


def _line(event: Event) -> int:
    return int(event.start_mark.line) + 1


def _is_null(event: Event) -> bool:
    return isinstance(event, ScalarEvent) and event.tag is None and bool(event.implicit[0]) and resolve_plain(event.value) is None


def _scalar_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    return "a number" if isinstance(value, (int, float)) else "a tagged value"


def _tag(event: Event) -> str | None:
    tag = getattr(event, "tag", None)
    return tag if tag is None or isinstance(tag, str) else str(tag)


_MERGE_KEY = object()


class _Builder:
    """Recursive descent over the parser's events, from the document's root node."""

    def __init__(self, file: str, problems: Problems, events: list[Event], max_nodes: int) -> None:
        self.file = file
        self.problems = problems
        self.events = events
        self.max_nodes = max_nodes
        self.pos = 0
        self.count = 0  # nodes built in the file, each alias counted at the full size of what it repeats
        self.anchors: dict[str, tuple[Any, int]] = {}  # anchor -> (value, size)
        self.open_anchors: set[str] = set()

    def error(self, event: Event, path: str, message: str) -> None:
        self.problems.error((self.file, _line(event)), path, message)

    def build_document(self, root: int) -> YMap:
        """The mapping that starts at event `root` (anchors belong to their document)."""
        self.pos, self.anchors = root, {}
        result = self.build("")
        assert isinstance(result, YMap)
        return result

    def build(self, path: str) -> Any:
        event = self.events[self.pos]
        self.pos += 1
        if isinstance(event, AliasEvent):
            return self.alias(event, path)
        self.count += 1
        if self.count > self.max_nodes:
            raise _TooBig
        anchor, count_before, tag = getattr(event, "anchor", None), self.count, _tag(event)
        if isinstance(event, ScalarEvent):
            value = self.scalar(event, tag, path)
        else:
            if anchor:
                self.open_anchors.add(anchor)
            if tag is not None and tag not in (_MAP, _SEQ, *MERGE_TAGS):
                self.error(event, path, f"unsupported YAML tag {tag}")
            value = self.sequence(event, path) if isinstance(event, SequenceStartEvent) else self.mapping(event, path)
            self.open_anchors.discard(anchor)
        if anchor:
            self.anchors[anchor] = (value, self.count - count_before + 1)
        return value

    def alias(self, event: AliasEvent, path: str) -> Any:
        if event.anchor in self.open_anchors:
            self.error(event, path, "an alias refers to its own anchor (recursive structure)")
            return None
        if event.anchor not in self.anchors:
            self.error(event, path, f"alias *{event.anchor} has no anchor")
            return None
        value, size = self.anchors[event.anchor]
        self.count += size  # shared here, but later passes walk it once per use
        if self.count > self.max_nodes:
            raise _TooBig
        return value

    def sequence(self, start: Event, path: str) -> YSeq:
        seq = YSeq((self.file, _line(start)))
        while not isinstance(self.events[self.pos], SequenceEndEvent):
            item = self.events[self.pos]
            item_path = f"{path}[{len(seq)}]"
            if _tag(item) in MERGE_TAGS:
                self.error(item, item_path, f"{_tag(item)} is only allowed on a mapping value")
            seq.add(self.build(item_path), (self.file, _line(item)))
        self.pos += 1
        return seq

    def mapping(self, start: Event, path: str) -> YMap:
        result = YMap((self.file, _line(start)))
        merged: list[YMap] = []
        while not isinstance(self.events[self.pos], MappingEndEvent):
            key_event = self.events[self.pos]
            key = self.key(path)
            value_event = self.events[self.pos]
            if key is _MERGE_KEY:
                merged.extend(self.merge_sources(value_event, path))
                continue
            key_path = f"{path}.{key}" if path else str(key)
            value = self.build(key_path)
            if key is None:
                continue
            if key in result:
                self.error(key_event, key_path, "duplicate key")
                continue
            tag = _tag(value_event)
            result.put(key, value, (self.file, _line(key_event)), tag if tag in MERGE_TAGS else None)
        self.pos += 1
        for source in merged:  # YAML merge: keys already present (local or earlier source) win
            for key, value in source.items():
                if key not in result:
                    result.put(key, value, source.key_where[key], source.tags.get(key))
        return result

    def merge_sources(self, event: Event, path: str) -> list[YMap]:
        value = self.build(path)
        items = value if isinstance(value, YSeq) else [value]
        sources = [item for item in items if isinstance(item, YMap)]
        if len(sources) != len(items):
            self.error(event, path or "<<", "a << merge key needs a mapping or a list of mappings")
        return sources

    def key(self, path: str) -> Any:
        event = self.events[self.pos]
        if not isinstance(event, ScalarEvent):
            self.error(event, path, "a mapping key must be a scalar")
            self.build(path)  # skip it
            return None
        self.pos += 1
        plain = event.tag is None and event.implicit[0]
        if plain and event.value == "<<":
            return _MERGE_KEY
        if plain and event.value in ("", "~", "null", "Null", "NULL"):
            self.error(event, path, "a mapping key must not be null")
            return None
        if "\x00" in event.value:
            self.error(event, path, "a mapping key must not contain a NUL character")
            return None
        value = resolve_plain(event.value) if plain else event.value
        if event.tag not in (None, _STR, "!") or not isinstance(value, str):
            # compose-go refuses them ("non-string key"): `123:` would otherwise silently name a service "123"
            self.error(event, path, f"a mapping key must be a string, not {_scalar_kind(value)} {event.value[:60]!r}: quote it if a string is meant")
            return None
        return str(event.value)

    def scalar(self, event: ScalarEvent, tag: str | None, path: str) -> Any:
        text: str = event.value
        if tag is None:
            return resolve_plain(text) if event.implicit[0] else text
        if tag in (_STR, "!"):
            return text
        if tag in MERGE_TAGS:
            return text if event.style else resolve_plain(text)
        if tag in (_INT, _FLOAT, _BOOL, _NULL):
            value = resolve_plain(text)
            expected: dict[str, type | tuple[type, ...]] = {
                _INT: int, _FLOAT: (int, float), _BOOL: bool, _NULL: type(None)}
            if isinstance(value, expected[tag]) and not (tag == _INT and isinstance(value, bool)):
                return float(value) if tag == _FLOAT and isinstance(value, (int, float)) else value
            self.error(event, path, f"{text!r} is not a valid {tag.rsplit(':', 1)[1]}")
            return None
        self.error(event, path, f"unsupported YAML tag {tag}")
        return None
