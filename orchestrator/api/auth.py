"""Who may call the API (orchestrator/access.py has the model).

Over the unix socket (0600: its owner only) every request is trusted. Over TCP every route needs
`Authorization: Bearer <token>` but `GET /v1/health` and the dashboard's page and static files
(they hold no data: the page asks for the token and sends it with every call); with no token
configured nothing else passes (closed, not open, by default). Health answers anyone, but only
with booleans: the reasons (addresses, error texts) are for authenticated callers
(`is_authenticated`).

The header is read as the bytes the caller sent: any byte sequence, of any length aiohttp's
parser lets through, is a 401, never an error of ours; the comparison takes constant time.
"""

from __future__ import annotations

import hmac
import socket
from typing import Any

from aiohttp import web

from orchestrator.api.errors import error_response
from orchestrator.api.state import SETTINGS
from orchestrator.dashboard import PUBLIC_PATHS as DASHBOARD_PATHS

OPEN_PATHS = frozenset({"/v1/health", *DASHBOARD_PATHS})
AUTHENTICATED = web.RequestKey("authenticated", bool)


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    request[AUTHENTICATED] = _over_unix_socket(request) or _bearer_matches(
        request, request.app[SETTINGS].token)
    if not request[AUTHENTICATED] and request.path not in OPEN_PATHS:
        return error_response(401, "unauthorized", "missing or wrong bearer token",
                              headers={"WWW-Authenticate": 'Bearer realm="orchestrator"'})
    response: web.StreamResponse = await handler(request)
    return response


def is_authenticated(request: web.Request) -> bool:
    return bool(request.get(AUTHENTICATED, False))


def _over_unix_socket(request: web.Request) -> bool:
    transport = request.transport
    sock = transport.get_extra_info("socket") if transport is not None else None
    return sock is not None and sock.family == socket.AF_UNIX


def _bearer_matches(request: web.Request, token: str) -> bool:
    if not token:
        return False
    given = [value for name, value in request.raw_headers if name.lower() == b"authorization"]
    if len(given) != 1:
        return False
    scheme, _, credentials = given[0].strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    # Constant time, so the token cannot be guessed byte by byte from response times.
    return hmac.compare_digest(credentials.strip(), token.encode("utf-8", "surrogateescape"))
