"""A StackSpec as plain data (for `orchestrator config`, and later the HTTP API): dataclasses
become mappings, tuples lists; unset values (None, empty collections) are left out."""

from __future__ import annotations

import dataclasses
import io
import json
from typing import Any

from ruamel.yaml import YAML

from orchestrator.model.spec import StackSpec


def stack_to_data(stack: StackSpec) -> dict[str, Any]:
    data: dict[str, Any] = _plain(stack)
    data.pop("warnings", None)
    return data


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = ((f.name, _plain(getattr(value, f.name))) for f in dataclasses.fields(value))
        return {name: item for name, item in fields if not _empty(item)}
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    return value


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, (dict, list)) and not value)


def dump(data: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    setattr(yaml, "sort_base_mapping_type_on_output", False)  # keep our key order (typed None in ruamel)
    out = io.StringIO()
    yaml.dump(data, out)
    return out.getvalue()
