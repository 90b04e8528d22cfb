"""A service's lists whose entries are unique by a key, as compose-go's EnforceUnicity makes them
(override/uncity.go): a later entry replaces an earlier one with the same key, in one file as
across files — `- A=2` replaces `- A=1`, a volume at the same container path replaces the earlier
one. The keys are the ones several files merge by (stackfile/merge.py). A replaced mount or port
that differed is worth a warning: something the file asks for is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.stackfile.merge import safe_key
from orchestrator.stackfile.shortsyntax import port_merge_key, volume_merge_key
from orchestrator.stackfile.yamlread import YMap, YSeq



def _name_key(item: Any) -> Any:
    return item.partition("=")[0] if isinstance(item, str) else repr(item)


def _mount_key(default_dir: str) -> Callable[[Any], Any]:
    def key(item: Any) -> Any:
        if isinstance(item, YMap):
            return item.get("target") or f"{default_dir}/{item.get('source')}"
        return f"{default_dir}/{item}"
    return key


def _env_file_key(item: Any) -> Any:
    return item.get("path") if isinstance(item, YMap) else item


#: A service's lists whose entries are unique by a key (compose-go's EnforceUnicity): a later
#: entry replaces an earlier one with the same key, within one file as across files.
_UNIQUE_BY: dict[tuple[str, ...], Callable[[Any], Any]] = {
    **{(key,): _name_key for key in ("environment", "labels", "sysctls", "annotations", "cap_add", "cap_drop", "dns",
                                     "dns_opt", "dns_search", "links", "profiles", "tmpfs")},
    **{key: _name_key for key in (("deploy", "labels"), ("build", "args"), ("build", "labels"), ("build", "tags"))},
    ("expose",): str,
    ("ports",): port_merge_key,
    ("volumes",): volume_merge_key,
    ("secrets",): _mount_key("/run/secrets"),
    ("configs",): _mount_key(""),
    ("env_file",): _env_file_key,
}
#: Of those, the ones where a replaced entry that differs is worth a warning (a mount or a port lost).
_WARN_REPLACED = {("ports",), ("volumes",), ("secrets",), ("configs",)}


def unique_entries(tree: YMap, warn: Callable[[str, str], None]) -> YMap:
    """`tree` with the duplicate entries of its services' lists removed, the later one kept."""
    services = tree.get("services")
    if not isinstance(services, YMap):
        return tree
    for name, service in services.items():
        if not isinstance(service, YMap):
            continue
        for keys, key in _UNIQUE_BY.items():
            parent: Any = service
            for step in keys[:-1]:
                parent = parent.get(step) if isinstance(parent, YMap) else None
            seq = parent.get(keys[-1]) if isinstance(parent, YMap) else None
            if isinstance(seq, YSeq) and len(seq) > 1:
                path = f"services.{name}.{'.'.join(keys)}"
                parent[keys[-1]] = _deduplicated(seq, key, path, warn if keys in _WARN_REPLACED else None)
    return tree


def _deduplicated(seq: YSeq, key: Callable[[Any], Any], path: str, warn: Callable[[str, str], None] | None) -> YSeq:
    kept: dict[Any, int] = {}
    items: list[tuple[Any, Any]] = []
    for index, (item, where) in enumerate(zip(seq, seq.item_where, strict=True)):
        found = kept.get(safe_key(key, item))
        if found is None:
            kept[safe_key(key, item)] = len(items)
            items.append((item, where))
            continue
        if warn is not None and items[found][0] != item:
            warn(f"{path}[{index}]", "replaces an earlier entry for the same container path or port (as compose does)")
        items[found] = (item, where)
    out = YSeq(seq.where)
    for item, where in items:
        out.add(item, where)
    return out
