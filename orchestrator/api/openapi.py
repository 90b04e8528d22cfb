"""`GET /v1/openapi.json`: the OpenAPI 3.1 document of every route (a test checks it against
the router both ways). View schemas come from the dataclasses via `schemas.ref`."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from orchestrator import names
from orchestrator.api.bodies import FALSE_FLAGS, MAX_SEQ, MAX_TAIL, TRUE_FLAGS
from orchestrator.api.schemas import ref
from orchestrator.api.state import SETTINGS
from orchestrator.views import (
    DeployOutcome,
    LogLine,
    RemoveOutcome,
    ServiceView,
    StackView,
    TaskView,
)
from orchestrator.dashboard.assets import FILES as DASHBOARD_FILES
from orchestrator.model.spec import StackSpec
from orchestrator.settings import Settings

# Anchored: a JSON Schema pattern matches anywhere in the string.
_STACK_NAME = {"type": "string", "pattern": f"^{names.STACK_NAME.pattern}$"}
_SERVICE_NAME = {"type": "string", "pattern": f"^{names.SERVICE_NAME.pattern}$"}


def _param(name: str, where: str, schema: dict[str, Any], doc: str) -> dict[str, Any]:
    return {"name": name, "in": where, "required": where == "path", "schema": schema,
            "description": doc}


#: A stack file's text: an empty one (or one of comments only) is a 400 invalid_stack_file.
_STACK_TEXT = {"type": "string", "minLength": 1}
_BASE_DIR = {"type": "string", "pattern": "^/[^\\u0000]*$"}

STACK = _param("stack", "path", _STACK_NAME, "Stack name.")
SERVICE = _param("service", "path", _SERVICE_NAME, "Service name within the stack.")
_BOOL = {"type": "string", "enum": [*TRUE_FLAGS, *FALSE_FLAGS]}  # "" (`?all=`) is false
_SEQ = {"type": "integer", "minimum": 0, "maximum": MAX_SEQ}
_TAIL = {"anyOf": [{"type": "integer", "minimum": 0, "maximum": MAX_TAIL},
                   {"type": "string", "enum": ["all", ""]}]}
#: Only the booleans without a token; the reasons (addresses, error texts) with one.
_HEALTH = {"type": "object", "required": ["engine", "redis"], "properties": {
    "engine": {"type": "boolean"}, "redis": {"type": "boolean"},
    "engine_error": {"type": "string"}, "redis_error": {"type": "string"}}}
_ERRORS = ("400", "401", "404", "405", "409", "413")


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _op(summary: str, ok: str, ok_schema: dict[str, Any] | None, *, params: tuple[Any, ...] = (),
        errors: tuple[str, ...] = ("400", "401", "404"), **extra: Any) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": "OK", **(_json(ok_schema) if ok_schema else {})}}
    for code in errors:
        responses[code] = {"$ref": f"#/components/responses/Error{code}"}
    return {"summary": summary, "parameters": list(params), "responses": responses, **extra}


def _static(summary: str, content: dict[str, Any], params: tuple[Any, ...]) -> dict[str, Any]:
    """A dashboard file: open to anyone (`security: []`), answered in its own content type."""
    responses: dict[str, Any] = {"200": {"description": "OK", "content": content}}
    if params:
        responses["404"] = {"$ref": "#/components/responses/Error404"}
    return {"summary": summary, "parameters": list(params), "responses": responses, "security": []}


def build_document(settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or Settings()
    c: dict[str, Any] = {}
    error = {"type": "object", "required": ["error"], "properties": {"error": {
        "type": "object", "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"},
                       "path": {"type": ["string", "null"]},
                       "problems": {"type": "array", "items": {"type": "object"}}}}}}
    c["Error"] = error
    deploy_json = {"type": "object", "required": ["files"], "additionalProperties": False,
                   "properties": {
                       "files": {"type": "array", "minItems": 1, "items": {
                           "type": "object", "required": ["name", "content"],
                           "properties": {"name": {"type": "string", "minLength": 1},
                                          "content": _STACK_TEXT}}},
                       "env": {"type": "object", "additionalProperties": {"type": "string"}},
                       "base_dir": _BASE_DIR}}
    deploy_body = {"required": True, "content": {
        "application/yaml": {"schema": _STACK_TEXT},
        "text/plain": {"schema": _STACK_TEXT},
        "application/json": {"schema": deploy_json}}}
    scale_body = {"required": True, **_json({
        "type": "object", "minProperties": 1,
        "propertyNames": _SERVICE_NAME,
        "additionalProperties": {"type": "integer", "minimum": 0, "maximum": settings.max_replicas},
        "description": f"Replicas per service, at most {settings.max_replicas} each "
                       f"(max_replicas) and {settings.max_replicas_total} for all stacks together "
                       "(max_replicas_total): over either, 400 limit_exceeded."})}
    def array(cls: type) -> dict[str, Any]:
        return {"type": "array", "items": ref(cls, c)}

    stack_detail = {"type": "object", "required": ["name", "spec", "services"], "properties": {
        "name": {"type": "string"}, "summary": {"anyOf": [ref(StackView, c), {"type": "null"}]},
        "spec": ref(StackSpec, c), "services": array(ServiceView)}}
    deploy_ok = {"description": "Deployed", **_json(ref(DeployOutcome, c))}
    paths: dict[str, Any] = {
        "/v1/stacks": {"get": _op("List stacks", "200", array(StackView), errors=("401",))},
        "/v1/stacks/{stack}": {
            "put": _op("Deploy or update a stack from its stack file(s)", "200", ref(DeployOutcome, c),
                       params=(STACK, _param("base_dir", "query", _BASE_DIR,
                                             "Directory relative paths resolve against (YAML body).")),
                       errors=(*_ERRORS, "415", "503"), requestBody=deploy_body),
            "get": _op("Inspect a stack: spec, summary and services", "200", stack_detail,
                       params=(STACK,)),
            "delete": _op("Remove a stack: 200 once it is gone, 202 while the daemon is still at it",
                          "200", ref(RemoveOutcome, c), params=(
                STACK, _param("volumes", "query", _BOOL, "Also remove the stack's named volumes."))),
        },
        "/v1/stacks/{stack}/services": {"get": _op(
            "A stack's services (replicas desired/running, image, ports, update state)", "200",
            array(ServiceView), params=(STACK,))},
        "/v1/stacks/{stack}/tasks": {"get": _op(
            "A stack's tasks (the `ps` view)", "200", array(TaskView),
            params=(STACK, _param("all", "query", _BOOL, "Include exited tasks (history).")))},
        "/v1/stacks/{stack}/scale": {"post": _op(
            "Set replica counts", "200", {"type": "object"}, params=(STACK,),
            errors=_ERRORS, requestBody=scale_body)},
        "/v1/stacks/{stack}/services/{service}/rollback": {"post": _op(
            "Roll a service back to its previous spec", "202", {"type": "object"},
            params=(STACK, SERVICE), errors=("400", "401", "404", "409"))},
        "/v1/stacks/{stack}/services/{service}/logs": {"get": _op(
            "A service's logs, all replicas interleaved; streamed", "200", None,
            params=(STACK, SERVICE,
                    _param("follow", "query", _BOOL, "Keep streaming new lines."),
                    _param("tail", "query", _TAIL,
                           "Lines from the end of each replica's log; all (or empty): every line."),
                    _param("format", "query", {"type": "string", "enum": ["json", "text"]},
                           "json: one LogLine per line; text: `<stack>_<service>.<slot>.<task> | text`.")))},
        "/v1/events": {"get": _op(
            "State-change events as Server-Sent Events (id = seq)", "200", None,
            params=(_param("since", "query", _SEQ,
                           "Replay events with seq > since, then follow; a seq newer than the "
                           "newest message is a 400 that names the newest."),
                    _param("Last-Event-ID", "header", _SEQ, "As since; takes precedence."),
                    _param("stack", "query", _STACK_NAME, "Only this stack's events.")),
            errors=("400", "401", "503"))},
        "/v1/health": {"get": _op("Engine and Redis reachability (open without a token: then "
                                  "only the booleans)", "200", _HEALTH, errors=(),
                                  security=[])},
        "/v1/openapi.json": {"get": _op("This document", "200", {"type": "object"}, errors=("401",))},
        "/metrics": {"get": _op("Prometheus metrics (text format)", "200", None, errors=("401",))},
        # The dashboard (docs/dashboard.md): static files, open without a token (no data in them).
        "/": {"get": _static("The dashboard page (HTML)", {"text/html": {}}, ())},
        "/ui/{file}": {"get": _static(
            "The dashboard's scripts, style sheet and icon", {
                "text/javascript": {}, "text/css": {}, "image/svg+xml": {}},
            (_param("file", "path", {"type": "string", "enum": list(DASHBOARD_FILES)},
                    "One of the dashboard's files."),))},
    }
    paths["/v1/stacks/{stack}"]["put"]["responses"]["201"] = deploy_ok
    paths["/v1/health"]["get"]["responses"]["503"] = {"description": "Engine or Redis unreachable",
                                                      **_json(_HEALTH)}
    paths["/v1/stacks/{stack}"]["delete"]["responses"]["202"] = {
        "description": "The removal goes on in the daemon (the engine refuses for now: `message`)",
        **_json(ref(RemoveOutcome, c))}
    ref(LogLine, c)
    statuses = {"400": "Bad input", "401": "Missing or wrong bearer token", "404": "Unknown stack, service or route",
                "405": "Method not allowed", "409": "Conflict with the current state",
                "413": "Body over the size limit", "415": "Unsupported Content-Type",
                "503": "Engine or Redis unreachable, or every stack-loading worker busy (retry)"}
    return {
        "openapi": "3.1.0",
        "info": {"title": "orchestrator", "version": "1",
                 "description": "Control endpoint of the orchestrator daemon. See docs/api.md."},
        "paths": paths,
        "components": {
            "schemas": c,
            "responses": {f"Error{k}": {"description": v, **_json({"$ref": "#/components/schemas/Error"})}
                          for k, v in statuses.items()},
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "Required over TCP (ORCHESTRATOR_TOKEN, or the token the daemon "
                               "keeps in <state_dir>/token); the unix socket needs none."}},
        },
        "security": [{"bearer": []}],
    }


async def openapi_json(request: web.Request) -> web.Response:
    return web.json_response(build_document(request.app[SETTINGS]))
