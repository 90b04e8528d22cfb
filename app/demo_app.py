"""The getting-started demo: greets, shows the container's hostname and counts visits in Redis.

An aiohttp + redis.asyncio port of the tutorial's Flask app. Standalone (it runs in its own
image, with Debian's python3-aiohttp and python3-redis or the pip ones), so it imports nothing
from the orchestrator package. Settings come from the environment:

    NAME         who to greet                       (default "World")
    REDIS_HOST   where the counter lives            (default "redis", the stack's service name)
    REDIS_PORT   its port                           (default 6379)
    REDIS_DB     its database number                (default 0)
    COUNTER_KEY  the key that INCR counts visits in (default "counter")
    HOST, PORT   where the app listens              (default 0.0.0.0, 80)

When Redis does not answer, the page still comes back within about 2 s and says the counter is
disabled; `/healthz` never asks Redis, so an orchestrator does not kill web replicas for a
Redis outage.
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import redis.asyncio as aioredis
from aiohttp import web
from redis.exceptions import RedisError

log = logging.getLogger("demo_app")

#: Per socket operation (connect, read): a dead Redis costs at most about this much.
REDIS_SOCKET_TIMEOUT_S = 0.8
#: The whole INCR, retries included; keeps the page well within 2 s whatever the client does.
COUNTER_BUDGET_S = 1.5
DISABLED = "<i>cannot connect to Redis, counter disabled</i>"


@dataclass(frozen=True, slots=True)
class Config:
    name: str = "World"
    redis_host: str = "redis"
    redis_port: int = 6379
    redis_db: int = 0
    counter_key: str = "counter"
    host: str = "0.0.0.0"  # noqa: S104 - a container's app listens on all its interfaces
    port: int = 80

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        """Reads the settings above; a malformed number raises ValueError naming the variable."""
        d = cls()
        return cls(
            name=env.get("NAME", d.name),
            redis_host=env.get("REDIS_HOST", d.redis_host),
            redis_port=_int_env(env, "REDIS_PORT", d.redis_port),
            redis_db=_int_env(env, "REDIS_DB", d.redis_db),
            counter_key=env.get("COUNTER_KEY", d.counter_key),
            host=env.get("HOST", d.host),
            port=_int_env(env, "PORT", d.port),
        )


def _int_env(env: Mapping[str, str], key: str, default: int) -> int:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{key} must be a whole number, not {raw!r}") from None


class VisitCounter:
    """INCR on Redis with short timeouts; None (and a dropped connection pool) when it fails."""

    def __init__(self, config: Config) -> None:
        self._key = config.counter_key
        self._redis = aioredis.Redis(
            host=config.redis_host,
            port=config.redis_port,
            db=config.redis_db,
            socket_connect_timeout=REDIS_SOCKET_TIMEOUT_S,
            socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        )
        self._failing = False

    async def incr(self) -> int | None:
        try:
            async with asyncio.timeout(COUNTER_BUDGET_S):
                visits = int(await self._redis.incr(self._key))
        except (RedisError, OSError, TimeoutError) as exc:
            # A cancelled or failed command can leave a connection half-used: drop them all,
            # the next request connects afresh.
            await self._redis.connection_pool.disconnect()
            if not self._failing:
                log.warning("redis_unavailable: %s", exc or type(exc).__name__)
            self._failing = True
            return None
        if self._failing:
            log.info("redis_available")
        self._failing = False
        return visits

    async def close(self) -> None:
        # redis>=5 has aclose(); Debian bookworm's 4.3 only close().
        closer = getattr(self._redis, "aclose", None) or self._redis.close
        await closer()


def render_page(name: str, hostname: str, visits: int | None) -> str:
    shown = DISABLED if visits is None else str(visits)
    return (
        f"<h3>Hello {html.escape(name)}!</h3>"
        f"<b>Hostname:</b> {html.escape(hostname)}<br/>"
        f"<b>Visits:</b> {shown}"
    )


class Pages:
    """The routes. Handlers are bound methods rather than app-stored state, so the app runs on
    Debian bookworm's aiohttp 3.8 (no web.AppKey) and on current aiohttp without warnings."""

    def __init__(self, config: Config) -> None:
        self._config = config
        self._counter: VisitCounter | None = None

    async def counter_ctx(self, _app: web.Application) -> AsyncIterator[None]:
        self._counter = VisitCounter(self._config)
        yield
        await self._counter.close()

    async def hello(self, _request: web.Request) -> web.Response:
        assert self._counter is not None, "the app's cleanup_ctx has not run"
        visits = await self._counter.incr()
        page = render_page(self._config.name, socket.gethostname(), visits)
        return web.Response(text=page, content_type="text/html")

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")


def make_app(config: Config) -> web.Application:
    pages = Pages(config)
    app = web.Application()
    app.cleanup_ctx.append(pages.counter_ctx)
    app.router.add_get("/", pages.hello)
    app.router.add_get("/healthz", pages.healthz)
    return app


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        config = Config.from_env(os.environ)
    except ValueError as exc:
        print(f"demo_app: {exc}", file=sys.stderr)
        sys.exit(2)
    log.info("listening on %s:%d, counter at %s:%d", config.host, config.port,
             config.redis_host, config.redis_port)
    web.run_app(make_app(config), host=config.host, port=config.port, access_log=None,
                print=None)


if __name__ == "__main__":
    main()
