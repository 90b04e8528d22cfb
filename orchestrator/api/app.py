"""make_app: the aiohttp application; serve: run it on a TCP address and a unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from orchestrator.api import routes, sse
from orchestrator.api.auth import auth_middleware
from orchestrator.api.errors import error_middleware
from orchestrator.api.loading import LOADER, StackLoader
from orchestrator.api.openapi import openapi_json
from orchestrator.api.event_hub import EventHub
from orchestrator.api.state import BODY_LIMIT, CONTROL, EVENT_HUB, REDIS, SETTINGS, STOPPING
from orchestrator.views import Control
from orchestrator.dashboard import add_routes as add_dashboard_routes
from orchestrator.errors import UserError
from orchestrator.labels import events_channel
from orchestrator.settings import Settings

log = structlog.stdlib.get_logger()

SHUTDOWN_TIMEOUT = 5.0


def _get(path: str, handler: Any) -> web.RouteDef:
    return web.get(path, handler, allow_head=False)  # the router lists exactly what is documented


def make_app(control: Control, settings: Settings, redis: Any = None, *,
             body_limit: int | None = None) -> web.Application:
    """`redis`: a redis.asyncio client for /v1/events (None: that route answers 503);
    `body_limit`: bytes of a request body (default: settings.max_body_bytes)."""
    body_limit = body_limit or settings.max_body_bytes
    app = web.Application(middlewares=[error_middleware, auth_middleware],
                          client_max_size=body_limit)
    app[CONTROL] = control
    app[SETTINGS] = settings
    app[REDIS] = redis
    app[EVENT_HUB] = EventHub(redis, events_channel(settings.prefix)) if redis is not None else None
    app[BODY_LIMIT] = body_limit
    app[STOPPING] = asyncio.Event()
    app[LOADER] = StackLoader(settings)
    app.on_shutdown.append(_stop_streams)
    app.cleanup_ctx.append(_loader_workers)
    app.router.add_routes([
        _get("/v1/stacks", routes.list_stacks),
        web.put("/v1/stacks/{stack}", routes.deploy_stack),
        _get("/v1/stacks/{stack}", routes.inspect_stack),
        web.delete("/v1/stacks/{stack}", routes.remove_stack),
        _get("/v1/stacks/{stack}/services", routes.list_services),
        _get("/v1/stacks/{stack}/tasks", routes.list_tasks),
        web.post("/v1/stacks/{stack}/scale", routes.scale_services),
        web.post("/v1/stacks/{stack}/services/{service}/rollback", routes.rollback_service),
        _get("/v1/stacks/{stack}/services/{service}/logs", routes.service_logs),
        _get("/v1/events", sse.events),
        _get("/v1/health", routes.health),
        _get("/v1/openapi.json", openapi_json),
        _get("/metrics", routes.prometheus),
    ])
    add_dashboard_routes(app)
    return app


async def _stop_streams(app: web.Application) -> None:
    app[STOPPING].set()
    hub = app[EVENT_HUB]
    if hub is not None:
        hub.close()


async def _loader_workers(app: web.Application) -> AsyncIterator[None]:
    """The stack-loading workers live as long as the app. They warm up while it starts serving
    (the first start takes a second or so); a deploy meanwhile waits for them."""
    loader = app[LOADER]
    warming = asyncio.create_task(_warm(loader), name="stack-loader-start")
    yield
    warming.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await warming
    await loader.close()


async def _warm(loader: StackLoader) -> None:
    try:
        await loader.start()
    except Exception as exc:  # noqa: BLE001 - each deploy tries again and answers for itself
        log.warning("stack_loader_start_failed", error=str(exc))


def check_exposure(settings: Settings) -> None:
    """The endpoint can start any container (root-equivalent): beyond loopback it needs a token."""
    if settings.listens_beyond_loopback and not settings.token:
        raise UserError(
            f"refusing to listen on {settings.listen} without a token: anyone who reaches it can "
            "run containers as root. Set ORCHESTRATOR_TOKEN, or listen on 127.0.0.1")


async def serve(app: web.Application, settings: Settings, ready: asyncio.Event) -> None:
    """Serve until cancelled; `ready` is set once both listeners accept connections."""
    check_exposure(settings)
    runner = web.AppRunner(app, handle_signals=False, handler_cancellation=True,
                           shutdown_timeout=SHUTDOWN_TIMEOUT, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.listen_host, settings.listen_port).start()
        if settings.socket:
            _clear_stale_socket(Path(settings.socket))
            await web.UnixSite(runner, settings.socket).start()
            os.chmod(settings.socket, 0o600)  # root-equivalent: the owner only
        log.info("api_listening", listen=settings.listen, socket=settings.socket or None)
        ready.set()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _clear_stale_socket(path: Path) -> None:
    """Remove a socket left by a daemon that died; refuse if one still answers on it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        return
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    finally:
        probe.close()
    raise UserError(f"another daemon is already serving on {path}")
