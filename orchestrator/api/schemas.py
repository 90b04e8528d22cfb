"""JSON Schemas derived from the frozen dataclasses, so the OpenAPI document cannot drift from
the views the API actually serialises."""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
import collections.abc
from typing import Any, Literal, Union

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
}


def ref(cls: type, components: dict[str, Any]) -> dict[str, Any]:
    """A `$ref` to `cls`'s schema, adding it (and what it uses) to `components`."""
    name = cls.__name__
    if name not in components:
        components[name] = {}  # placeholder first: breaks recursion
        hints = typing.get_type_hints(cls)
        fields = dataclasses.fields(cls)
        components[name] = {
            "type": "object",
            "properties": {f.name: schema_for(hints[f.name], components) for f in fields},
            "required": [f.name for f in fields],
        }
    return {"$ref": f"#/components/schemas/{name}"}


def schema_for(tp: Any, components: dict[str, Any]) -> dict[str, Any]:
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    if tp is Any:
        return {}
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"type": "string", "enum": [m.value for m in tp]}
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return ref(tp, components)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return {"enum": list(args)}
    if origin in (Union, types.UnionType):
        return {"anyOf": [schema_for(a, components) for a in args]}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": schema_for(args[0], components)}
        return {"type": "array", "prefixItems": [schema_for(a, components) for a in args],
                "minItems": len(args), "maxItems": len(args)}
    if origin in (list, collections.abc.Sequence):
        return {"type": "array", "items": schema_for(args[0], components)}
    if origin in (dict, collections.abc.Mapping):
        return {"type": "object", "additionalProperties": schema_for(args[1], components)}
    raise TypeError(f"no JSON Schema for {tp!r}")
