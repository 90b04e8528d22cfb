"""Merge several stack files in order, with compose's override rules (compose-spec 13-merge.md,
compose-go override/merge.go): mappings merge key by key; sequences append, except that
command/entrypoint/healthcheck.test are replaced, ports/volumes/secrets/configs are unique by
their key, environment/labels/sysctls/extra_hosts/build.args merge by variable name, networks
and depends_on merge as mappings, ulimits per name, logging only when the driver is the same.
`!reset` removes a value, `!override` replaces it whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.stackfile.shortsyntax import port_merge_key, volume_merge_key
from orchestrator.stackfile.yamlread import YMap, YSeq

_REPLACE = {"command", "entrypoint"}
_AS_MAPPING = {"environment", "labels", "sysctls", "extra_hosts", "annotations"}
_UNIQUE_APPEND = {"dns", "dns_search", "dns_opt", "tmpfs", "expose", "cap_add", "cap_drop", "env_file", "security_opt"}
_MAPPING_OR_LIST = {"networks", "depends_on"}


def drop_reset(tree: YMap) -> YMap:
    """A single (or first) file: `!reset` entries vanish, `!override` is plain."""
    return merge(YMap(tree.where), tree, ())


def merge(base: YMap, over: YMap, path: tuple[str, ...]) -> YMap:
    out = YMap(base.where)
    for key, value in base.items():
        out.put(key, value, base.key_where[key])
    for key, value in over.items():
        where, tag = over.key_where[key], over.tags.get(key)
        if tag == "!reset":
            out.pop(key, None)
            out.key_where.pop(key, None)
        elif tag == "!override" or key not in out:
            out.put(key, _clean(value), where)
        else:
            out.put(key, _merge_value(out[key], value, (*path, key)), where)
    return out


def _clean(value: Any) -> Any:
    return drop_reset(value) if isinstance(value, YMap) else value


def _merge_value(base: Any, over: Any, path: tuple[str, ...]) -> Any:
    special = _special(path)
    if special is not None:
        return special(base, over, path)
    if isinstance(base, YMap) and isinstance(over, YMap):
        return merge(base, over, path)
    if isinstance(base, YSeq) and isinstance(over, YSeq):
        return _concat(base, over, key=None)
    return _clean(over)


def _special(path: tuple[str, ...]) -> Callable[[Any, Any, tuple[str, ...]], Any] | None:
    if len(path) < 3 or path[0] != "services":
        return None
    rest = path[2:]
    leaf = rest[-1]
    if len(rest) == 1:
        if leaf in _REPLACE:
            return lambda _b, over, _p: over
        if leaf in _AS_MAPPING:
            return _merge_as_mapping
        if leaf in _UNIQUE_APPEND:
            return lambda b, o, _p: _concat(b, o, key=repr) if isinstance(b, YSeq) and isinstance(o, YSeq) else o
        if leaf in _MAPPING_OR_LIST:
            return _merge_mapping_or_list
        if leaf in ("ports", "volumes", "secrets", "configs"):
            key = {"ports": port_merge_key, "volumes": volume_merge_key}.get(leaf, _file_ref_key)
            return lambda b, o, _p: _concat(b, o, key=key) if isinstance(b, YSeq) and isinstance(o, YSeq) else o
        if leaf == "logging":
            return _merge_logging
        if leaf == "build":
            return lambda b, o, p: merge(_build_map(b), _build_map(o), p)
    if rest in (("healthcheck", "test"),):
        return lambda _b, over, _p: over
    if rest in (("deploy", "labels"), ("build", "args"), ("build", "labels"), ("logging", "options")):
        return _merge_as_mapping
    if len(rest) == 2 and rest[0] == "ulimits":
        return lambda _b, over, _p: over
    return None


def _concat(base: YSeq, over: YSeq, key: Callable[[Any], Any] | None) -> YSeq:
    """Append `over` to `base`; with a key, an item of `over` replaces the base item it matches."""
    out = YSeq(base.where)
    items = list(zip(base, base.item_where, strict=True))
    if key is not None:
        index = {safe_key(key, item): pos for pos, (item, _w) in enumerate(items)}
    for item, where in zip(over, over.item_where, strict=True):
        pos = index.get(safe_key(key, item)) if key is not None else None
        if pos is None:
            items.append((item, where))
        else:
            items[pos] = (item, where)
    for item, where in items:
        out.add(item, where)
    return out


def safe_key(key: Callable[[Any], Any], item: Any) -> Any:
    try:
        return key(item)
    except (TypeError, ValueError, AttributeError):
        return ("unparsable", repr(item))


def _file_ref_key(item: Any) -> Any:
    if isinstance(item, YMap):
        return item.get("target") or item.get("source")
    return item


def _as_mapping(value: Any, separator: str = "=") -> YMap | None:
    if isinstance(value, YMap):
        return value
    if not isinstance(value, YSeq):
        return None
    out = YMap(value.where)
    for item, where in zip(value, value.item_where, strict=True):
        if not isinstance(item, str):
            return None
        name, sep, rest = item.partition(separator)
        out.put(name, rest if sep else None, where)
    return out


def _merge_as_mapping(base: Any, over: Any, path: tuple[str, ...]) -> Any:
    separator = ":" if path[-1] == "extra_hosts" else "="
    base_map, over_map = _as_mapping(base, separator), _as_mapping(over, separator)
    if base_map is None or over_map is None:
        return over  # malformed: the converter reports it on the value that is kept
    if separator == ":" and (isinstance(base, YSeq) or isinstance(over, YSeq)):
        return _concat(_as_seq(base_map, ":"), _as_seq(over_map, ":"), key=lambda s: s.split(":", 1)[0])
    return merge(base_map, over_map, path)


def _as_seq(mapping: YMap, separator: str) -> YSeq:
    out = YSeq(mapping.where)
    for name, value in mapping.items():
        out.add(name if value is None else f"{name}{separator}{value}", mapping.key_where[name])
    return out


def _merge_mapping_or_list(base: Any, over: Any, path: tuple[str, ...]) -> Any:
    if isinstance(base, YSeq) and isinstance(over, YSeq):
        return _concat(base, over, key=repr)
    base_map, over_map = _names_as_map(base), _names_as_map(over)
    if base_map is None or over_map is None:
        return over
    return merge(base_map, over_map, path)


def _names_as_map(value: Any) -> YMap | None:
    if isinstance(value, YMap):
        return value
    if not isinstance(value, YSeq) or not all(isinstance(item, str) for item in value):
        return None
    out = YMap(value.where)
    for item, where in zip(value, value.item_where, strict=True):
        out.put(item, None, where)
    return out


def _merge_logging(base: Any, over: Any, path: tuple[str, ...]) -> Any:
    if not (isinstance(base, YMap) and isinstance(over, YMap)):
        return over
    if "driver" in over and base.get("driver") not in (None, over["driver"]):
        return drop_reset(over)
    return merge(base, over, path)


def _build_map(value: Any) -> YMap:
    if isinstance(value, YMap):
        return value
    out = YMap(getattr(value, "where", ("", 0)))
    out.put("context", value, out.where)
    return out

