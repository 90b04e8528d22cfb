"""The JSON routes under /v1/ (events are in sse.py): each reads its input through `bodies`,
calls one Control method and serialises the frozen views with `dataclasses.asdict` (`as_json`:
big answers in a thread, so that no caller holds the event loop)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Awaitable
from typing import Any, TypeVar

import structlog
from aiohttp import web

from orchestrator import metrics
from orchestrator.api import bodies
from orchestrator.api.auth import is_authenticated
from orchestrator.api.errors import RequestError, error_body
from orchestrator.api.loading import LOADER
from orchestrator.api.state import CONTROL
from orchestrator.views import DeployOutcome, LogLine
from orchestrator.errors import OrchestratorError, UnknownService
from orchestrator.views import log_line_text

T = TypeVar("T")
log = structlog.stdlib.get_logger()


#: An answer of more rows than this is built in a thread: asdict and json of 60k `ps` rows take
#: ~3 s, which on the loop would hold everything else (in a thread the GIL changes hands often).
ROWS_INLINE = 200


async def as_json(value: Any, status: int = 200, *, rows: int | None = None) -> web.Response:
    """`value` (dataclasses, and lists and dicts of them) as a JSON answer; `rows` is its size
    (by default the length of a list)."""
    if rows is None:
        rows = len(value) if isinstance(value, (list, tuple)) else 1
    text = await asyncio.to_thread(_json_text, value) if rows > ROWS_INLINE else _json_text(value)
    return web.Response(text=text, status=status, content_type="application/json")


def _json_text(value: Any) -> str:
    return json.dumps(_plain(value))


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


async def _committed(action: Awaitable[T]) -> T:
    """A change the caller asked for runs to its end even if the caller hangs up meanwhile."""
    return await asyncio.shield(action)


async def list_stacks(request: web.Request) -> web.Response:
    return await as_json(list(request.app[CONTROL].stacks()))


async def deploy_stack(request: web.Request) -> web.Response:
    stack = bodies.name_param(request, "stack")
    body = await request.read()  # bounded by the app's body limit
    # Decoding and loading run in a worker process, on a budget (api/loading.py).
    spec = await request.app[LOADER].load(stack, request.content_type, body,
                                          request.query.get("base_dir", "/"))
    outcome = await _committed(request.app[CONTROL].deploy(spec))
    return web.json_response(_deploy_body(outcome, spec.warnings),
                             status=201 if outcome.result == "created" else 200)


def _deploy_body(outcome: DeployOutcome, spec_warnings: tuple[str, ...]) -> dict[str, Any]:
    body = dataclasses.asdict(outcome)
    body["warnings"] = list(dict.fromkeys((*spec_warnings, *outcome.warnings)))
    return body


async def inspect_stack(request: web.Request) -> web.Response:
    stack = bodies.name_param(request, "stack")
    control = request.app[CONTROL]
    spec = control.stack_spec(stack)
    summary = next((s for s in control.stacks() if s.name == stack), None)
    services = await control.services(stack)
    # A service's spec costs about as much to serialise as six `ps` rows.
    return await as_json({"name": stack, "summary": summary, "spec": spec, "services": services},
                         rows=len(spec.services) * 6)


async def remove_stack(request: web.Request) -> web.Response:
    """200 when the stack is gone; 202 while the daemon is still at it (the engine refuses)."""
    stack = bodies.name_param(request, "stack")
    volumes = bodies.bool_query(request, "volumes")
    outcome = await _committed(request.app[CONTROL].remove(stack, volumes=volumes))
    return await as_json(outcome, status=200 if outcome.removed else 202)


async def list_services(request: web.Request) -> web.Response:
    stack = bodies.name_param(request, "stack")
    return await as_json(list(await request.app[CONTROL].services(stack)))


async def list_tasks(request: web.Request) -> web.Response:
    stack = bodies.name_param(request, "stack")
    history = bodies.bool_query(request, "all")
    return await as_json(list(await request.app[CONTROL].tasks(stack, include_history=history)))


async def scale_services(request: web.Request) -> web.Response:
    stack = bodies.name_param(request, "stack")
    counts = bodies.read_scale(await bodies.read_json(request))
    await _committed(request.app[CONTROL].scale(stack, counts))
    return web.json_response({"stack": stack, "replicas": counts})


async def rollback_service(request: web.Request) -> web.Response:
    stack = bodies.name_param(request, "stack")
    service = bodies.name_param(request, "service")
    await _committed(request.app[CONTROL].rollback(stack, service))
    return web.json_response({"stack": stack, "service": service, "rollback": "started"},
                             status=202)


async def service_logs(request: web.Request) -> web.StreamResponse:
    """One JSON object per line (application/x-ndjson), or `?format=text` for the
    `<stack>_<service>.<slot>.<task> | text` lines the CLI prints."""
    stack = bodies.name_param(request, "stack")
    service = bodies.name_param(request, "service")
    follow = bodies.bool_query(request, "follow")
    tail = bodies.tail_query(request)
    fmt = request.query.get("format", "json")
    if fmt not in ("json", "text"):
        raise RequestError("format must be json or text", path="format")
    control = request.app[CONTROL]
    if service not in control.stack_spec(stack).services:  # 404 before the stream starts
        raise UnknownService(stack, service)
    response = web.StreamResponse(headers={
        "Content-Type": "application/x-ndjson" if fmt == "json" else "text/plain; charset=utf-8",
    })
    await response.prepare(request)
    try:
        async for line in control.logs(stack, service, follow=follow, tail=tail):
            await response.write(_log_line(line, stack, service, fmt).encode())
    except (OrchestratorError, OSError) as exc:
        # The status is already sent: end the stream with the reason instead.
        log.warning("log_stream_failed", stack=stack, service=service, error=str(exc))
        await response.write(_stream_error(str(exc), fmt).encode())
    await response.write_eof()
    return response


def _stream_error(message: str, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(error_body("stream_failed", message)) + "\n"
    return f"error: {message}\n"


def _log_line(line: LogLine, stack: str, service: str, fmt: str) -> str:
    plain = dataclasses.asdict(line)
    return json.dumps(plain) + "\n" if fmt == "json" else log_line_text(stack, service, plain)


async def health(request: web.Request) -> web.Response:
    """Open to anyone for probes, so only the booleans unless the caller is authenticated: the
    reasons name addresses (Redis host and port, the engine's socket)."""
    view = await request.app[CONTROL].health()
    body = dataclasses.asdict(view) if is_authenticated(request) else {
        "engine": view.engine, "redis": view.redis}
    return web.json_response(body, status=200 if view.engine and view.redis else 503)


async def prometheus(request: web.Request) -> web.Response:
    metrics.refresh_replicas(request.app[CONTROL].replica_counts())
    response = web.Response(body=metrics.render())
    response.headers["Content-Type"] = metrics.CONTENT_TYPE
    return response
