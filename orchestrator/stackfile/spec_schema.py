"""The compose-spec's own JSON schema (compose-spec.json, compose-go's copy; see
compose-spec.NOTICE.md) applied to the keys the loader does not apply.

A key the daemon cannot honour on one engine (`devices`, `gpus`, `develop`, `build.ssh`, ...) is
warned about and not read. compose-go still checks its value against the schema, so a malformed
one (`gpus: [{count: 1}]` without `capabilities`) makes the file invalid there: here too, at the
key path and line of the value that is wrong. Keys the loader reads have their own, more precise
checks; the schema is not applied to them.

jsonschema is imported, and the schema compiled, the first time such a key is met.
"""

from __future__ import annotations

import functools
import json
import re
from pathlib import Path
from typing import Any

from orchestrator.stackfile.problems import Where, quote
from orchestrator.stackfile.validate import locate
from orchestrator.stackfile.yamlread import YMap, YSeq

_SCHEMA_FILE = Path(__file__).with_name("compose-spec.json")
_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@functools.cache
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(_SCHEMA_FILE.read_text(encoding="utf-8"))
    return schema


def problems_of(path: str, value: Any, where: Where) -> list[tuple[Where, str, str]]:
    """(where, key path, message) for what the schema finds wrong with `value` at `path`
    (`services.web.gpus`); nothing when the schema has no rule for that path."""
    subschema = _subschema(path)
    if subschema is None:
        return []
    if path.endswith((".gpus", ".reservations.devices")) and isinstance(value, YSeq):
        found = _device_requests(path, value)
        if found:
            return found
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    root = _schema()
    validator = Draft202012Validator({"$defs": root.get("$defs", {}), **subschema})
    error = best_match(validator.iter_errors(_plain(value)))
    if error is None:
        return []
    steps = list(error.absolute_path)
    shown = path + "".join(f"[{s}]" if isinstance(s, int) else f".{s}" for s in steps)
    return [(_where(value, steps, where), shown, f"{_message(error)} (the compose-spec schema)")]


def _device_requests(path: str, requests: YSeq) -> list[tuple[Where, str, str]]:
    """compose-go's rules on GPU/device requests that its schema does not state."""
    found = []
    for index, (request, where) in enumerate(zip(requests, requests.item_where, strict=True)):
        if not isinstance(request, YMap):
            continue
        count = request.get("count")
        if isinstance(count, str) and count != "all" and not (count.isascii() and count.isdigit()):
            found.append((request.key_where["count"], f"{path}[{index}].count", f"must be all or a number, not {quote(count)}"))
        if "count" in request and "device_ids" in request:
            found.append((where, f"{path}[{index}]", "count and device_ids cannot be used together"))
    return found


def _subschema(path: str) -> dict[str, Any] | None:
    """The schema of the value at a concrete key path, following properties, names that match
    a pattern, list items and the alternatives of oneOf/anyOf."""
    nodes: list[Any] = [_schema()]
    for name, index in _STEP.findall(path):
        found = []
        for node in _expanded(nodes):
            if index:
                if isinstance(node.get("items"), dict):
                    found.append(node["items"])
            elif name in node.get("properties", {}):
                found.append(node["properties"][name])
            else:
                found += [s for pattern, s in node.get("patternProperties", {}).items() if re.search(pattern, name)]
        if not found:
            return None
        nodes = found
    candidates = _expanded(nodes)
    return candidates[0] if len(candidates) == 1 else ({"anyOf": candidates} if candidates else None)


def _expanded(nodes: list[Any]) -> list[dict[str, Any]]:
    """Each node with its $ref resolved and its oneOf/anyOf alternatives listed."""
    out: list[dict[str, Any]] = []
    for node in nodes:
        while isinstance(node, dict) and "$ref" in node:
            node = _schema()["$defs"][node["$ref"].rsplit("/", 1)[1]]
        if not isinstance(node, dict):
            continue
        alternatives = node.get("oneOf") or node.get("anyOf")
        out += _expanded(alternatives) if alternatives and "properties" not in node else [node]
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, YMap):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, YSeq):
        return [_plain(item) for item in value]
    return value


def _where(value: Any, steps: list[Any], where: Where) -> Where:
    """The place of the part of `value` that is wrong (`where` is the place of its key)."""
    return locate(value, *steps) if steps and isinstance(value, (YMap, YSeq)) else where


_KINDS = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "an integer",
          "number": "a number", "boolean": "a boolean", "null": "null"}


def _message(error: Any) -> str:
    """jsonschema's finding in our words, the offending value cut short (a mapping or a list is
    only named)."""
    if error.validator == "required":
        return "needs " + str(error.message).split(" is a required property")[0]
    if error.validator == "additionalProperties":
        return str(error.message).replace("Additional properties are not allowed", "unknown key(s)")
    instance = error.instance
    shown = "a mapping" if isinstance(instance, dict) else "a list" if isinstance(instance, list) else quote(instance)
    if error.validator == "enum":
        return f"{shown} is not one of {', '.join(map(str, error.validator_value))}"
    if error.validator in ("type", "oneOf", "anyOf"):
        kinds = _kinds(error.validator_value if error.validator == "type" else {"anyOf": error.validator_value})
        return f"must be {' or '.join(kinds)}, not {shown}" if kinds else f"{shown} is not valid here"
    message = str(error.message)
    return message if len(message) <= 120 else message[:119] + "…"


def _kinds(schema: Any) -> list[str]:
    """What a schema (or a type name, or a list of them) accepts, in words."""
    if isinstance(schema, str):
        return [_KINDS.get(schema, schema)]
    if isinstance(schema, list):
        return [kind for item in schema for kind in _kinds(item)]
    found: list[str] = []
    for node in _expanded([schema]):
        for kind in _kinds(node.get("type", [])) + (["'" + "' or '".join(map(str, node["enum"])) + "'"] if "enum" in node else []):
            if kind not in found:
                found.append(kind)
    return found
