"""Reading what a caller sends: names, query flags, the deploy and scale bodies.

Everything here raises RequestError (a 400 naming the offending parameter) and nothing else,
so a malformed request can never become a 500.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiohttp import web

from orchestrator import names
from orchestrator.api.errors import RequestError

YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/plain"})
DEFAULT_FILE_NAME = "stack.yml"


def name_param(request: web.Request, key: Literal["stack", "service"]) -> str:
    value = request.match_info[key]
    return check_stack_name(value, key) if key == "stack" else check_service_name(value, key)


def check_stack_name(value: str, path: str) -> str:
    if not names.is_stack_name(value):
        raise RequestError(f"invalid stack name {value!r}: use {names.STACK_RULE}",
                           path=path, code="invalid_name")
    return value


def check_service_name(value: str, path: str) -> str:
    if not names.is_service_name(value):
        raise RequestError(f"invalid service name {value!r}: use {names.SERVICE_RULE}",
                           path=path, code="invalid_name")
    return value


#: Query flags take exactly these (the OpenAPI document's enum); `?all=` is false, as absent.
TRUE_FLAGS = ("true", "1", "yes")
FALSE_FLAGS = ("false", "0", "no", "")
#: Lines a log request may ask for per replica, and the largest event seq (Redis stream ids
#: are 64-bit).
MAX_TAIL = 100_000
MAX_SEQ = 2**63 - 1
#: ASCII digits only: str.isdigit() is also true for '²' and other digits int() refuses.
_DIGITS = re.compile(r"[0-9]{1,20}")


def bool_query(request: web.Request, key: str) -> bool:
    raw = request.query.get(key, "false")
    if raw in TRUE_FLAGS:
        return True
    if raw in FALSE_FLAGS:
        return False
    raise RequestError(f"{key} must be one of {', '.join(TRUE_FLAGS + FALSE_FLAGS[:-1])} or empty, "
                       f"not {shown(raw)}", path=key)


def tail_query(request: web.Request) -> int | None:
    """`?tail=N` lines per replica; absent, empty or `all`: everything (None)."""
    raw = request.query.get("tail")
    if raw is None or raw in ("", "all"):
        return None
    return parse_count(raw, "tail", MAX_TAIL, also="or 'all'")


def parse_count(raw: str, key: str, maximum: int, *, also: str = "") -> int:
    """A non-negative integer in ASCII digits, at most `maximum`; else a 400 naming `key`."""
    if not _DIGITS.fullmatch(raw) or int(raw) > maximum:
        raise RequestError(f"{key} must be an integer from 0 to {maximum}{' ' + also if also else ''}, "
                           f"not {shown(raw)}", path=key)
    return int(raw)


def shown(value: object, limit: int = 40) -> str:
    """A caller's value quoted in an error, cut short: an answer never echoes a whole header."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(frozen=True, slots=True)
class DeployRequest:
    files: tuple[tuple[str, str], ...]
    base_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)


def parse_deploy(content_type: str, raw: bytes, base_dir: str = "/") -> DeployRequest:
    """YAML text of one stack file (relative paths against `base_dir`, the query's), or JSON
    `{"files": [...], "env": {...}, "base_dir": ...}`. Pure: the deploy route runs it in a
    stack-loading worker (api/loading.py), as decoding 1 MiB of JSON takes ~0.1-0.2 s."""
    if content_type in YAML_TYPES:
        return DeployRequest(((DEFAULT_FILE_NAME, _utf8(raw)),), _base_dir(base_dir, "base_dir"))
    if content_type == "application/json":
        return _deploy_from_json(decode_json(raw))
    raise RequestError(
        f"unsupported Content-Type {content_type!r}: send the stack file as application/yaml "
        "or a JSON body {files, env, base_dir} as application/json",
        code="unsupported_media_type", status=415)


def _deploy_from_json(body: Any) -> DeployRequest:
    _require_object(body, "")
    unknown = sorted(set(body) - {"files", "env", "base_dir"})
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}", path=unknown[0])
    files = body.get("files")
    if not isinstance(files, list) or not files:
        raise RequestError("files must be a non-empty list of {name, content}", path="files")
    parsed = tuple(_file_entry(entry, f"files[{i}]") for i, entry in enumerate(files))
    env = body.get("env", {})
    _require_object(env, "env")
    for key, value in env.items():
        if not isinstance(value, str):
            raise RequestError("environment values must be strings", path=f"env.{key}")
    base_dir = body.get("base_dir", "/")
    if not isinstance(base_dir, str):
        raise RequestError("base_dir must be a string", path="base_dir")
    return DeployRequest(parsed, _base_dir(base_dir, "base_dir"), dict(env))


def _file_entry(entry: Any, path: str) -> tuple[str, str]:
    _require_object(entry, path)
    name, content = entry.get("name"), entry.get("content")
    if not isinstance(name, str) or not name:
        raise RequestError("name must be a non-empty string", path=f"{path}.name")
    if not isinstance(content, str):
        raise RequestError("content must be a string (the file's text)", path=f"{path}.content")
    return name, content


def _base_dir(raw: str, path: str) -> Path:
    if not raw.startswith("/") or "\x00" in raw:
        raise RequestError("base_dir must be an absolute path", path=path)
    return Path(raw)


def read_scale(body: Any) -> dict[str, int]:
    _require_object(body, "")
    if not body:
        raise RequestError("give at least one service: {\"web\": 3}")
    counts: dict[str, int] = {}
    for service, count in body.items():
        check_service_name(service, service)
        # JSON Schema's integer, as the document says: 3 and 3.0, not 3.5, not `true` (a bool
        # is an int in Python). The upper limit is the controller's (max_replicas, and the total).
        if isinstance(count, float) and count.is_integer():
            count = int(count)
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise RequestError(f"replica count must be a non-negative integer, not {shown(count)}",
                               path=service)
        counts[service] = count
    return counts


async def read_json(request: web.Request) -> Any:
    return decode_json(await request.read())


def decode_json(raw: bytes) -> Any:
    try:
        return json.loads(_utf8(raw))
    except ValueError as exc:  # also a number of more than 4300 digits
        raise RequestError(f"body is not valid JSON: {exc}", code="invalid_json") from None
    except RecursionError:
        raise RequestError("body is not valid JSON: nested too deeply", code="invalid_json") from None


def _utf8(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise RequestError("body is not UTF-8 text", code="invalid_encoding") from None


def _require_object(value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise RequestError("expected a JSON object", path=path or None)
