"""Every API error is JSON `{"error": {"code", "message", "path"?}}`; this module makes them.

The error middleware maps the project's UserError tree and aiohttp's HTTP exceptions to 4xx
answers; anything unexpected is logged with its traceback and answered with a bare 500.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiohttp import web

from orchestrator import metrics
from orchestrator.api.state import BODY_LIMIT
from orchestrator.errors import (
    Conflict,
    EngineError,
    EngineUnavailable,
    LimitExceeded,
    UnknownService,
    UnknownStack,
    UserError,
)

log = structlog.stdlib.get_logger()


class RequestError(UserError):
    """A malformed request: `path` names the offending parameter or body key."""

    def __init__(self, message: str, *, path: str | None = None, code: str = "bad_request",
                 status: int = 400) -> None:
        super().__init__(message)
        self.path = path
        self.code = code
        self.status = status


def error_body(code: str, message: str, path: str | None = None, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if path is not None:
        error["path"] = path
    error.update(extra)
    return {"error": error}


def error_response(status: int, code: str, message: str, path: str | None = None,
                   headers: dict[str, str] | None = None, **extra: Any) -> web.Response:
    return web.json_response(error_body(code, message, path, **extra), status=status,
                             headers=headers)


def user_error_response(exc: UserError) -> web.Response:
    problems = getattr(exc, "problems", None)
    if problems is not None:  # stackfile.StackFileError: every problem with its key path and line
        listed = [_problem(p) for p in problems]
        first = listed[0]["path"] if listed else None
        return error_response(400, "invalid_stack_file", str(exc), first, problems=listed)
    if isinstance(exc, RequestError):
        return error_response(exc.status, exc.code, str(exc), exc.path)
    if isinstance(exc, LimitExceeded):
        return error_response(400, "limit_exceeded", str(exc), exc.path)
    if isinstance(exc, UnknownStack):
        return error_response(404, "unknown_stack", str(exc), "stack")
    if isinstance(exc, UnknownService):
        return error_response(404, "unknown_service", str(exc), "service")
    if isinstance(exc, Conflict):
        return error_response(409, "conflict", str(exc), exc.path)
    return error_response(400, "bad_request", str(exc))


def _problem(problem: Any) -> dict[str, Any]:
    return {
        "file": getattr(problem, "file", None),
        "path": getattr(problem, "path", None),
        "line": getattr(problem, "line", None),
        "message": getattr(problem, "message", str(problem)),
    }


_HTTP_CODES = {
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def http_error_response(request: web.Request, exc: web.HTTPException) -> web.Response:
    status = exc.status
    headers = {k: v for k, v in exc.headers.items() if k in ("Allow", "WWW-Authenticate")}
    if status == 404:
        message = f"no route for {request.method} {request.path}"
    elif status == 405:
        message = f"{request.method} is not allowed on {request.path}; allowed: {headers.get('Allow', '')}"
    elif status == 413:
        message = f"request body is larger than {request.app[BODY_LIMIT]} bytes"
    else:
        message = exc.text or exc.reason
    return error_response(status, _HTTP_CODES.get(status, f"http_{status}"), message,
                          headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        response = http_error_response(request, exc)
    except UserError as exc:
        response = user_error_response(exc)
    except EngineUnavailable as exc:
        response = error_response(503, "engine_unavailable", str(exc))
    except EngineError as exc:
        response = error_response(502, "engine_error", exc.message)
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("request_failed", method=request.method, path=request.path)
        response = error_response(500, "internal", "internal error; see the daemon's log")
    _count(request, response.status)
    return response


def _count(request: web.Request, status: int) -> None:
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    metrics.HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
