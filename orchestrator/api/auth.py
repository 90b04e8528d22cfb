"""Bearer-token check. With a token set every route needs it except `GET /v1/health`, which
reveals only whether the engine and Redis answer, so that probes need no secret."""

from __future__ import annotations

import hmac
from typing import Any

from aiohttp import web

from orchestrator.api.errors import error_response
from orchestrator.api.state import SETTINGS

OPEN_PATHS = frozenset({"/v1/health"})


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    token = request.app[SETTINGS].token
    if token and request.path not in OPEN_PATHS and not _authorized(request, token):
        return error_response(401, "unauthorized", "missing or wrong bearer token",
                              headers={"WWW-Authenticate": 'Bearer realm="orchestrator"'})
    response: web.StreamResponse = await handler(request)
    return response


def _authorized(request: web.Request, token: str) -> bool:
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Constant time, so the token cannot be guessed byte by byte from response times.
    return hmac.compare_digest(given.strip().encode(), token.encode())
