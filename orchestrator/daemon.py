"""The composition root: builds every part from Settings and runs them until SIGTERM.

Shutdown leaves the containers running (in the spirit of dockerd's live-restore): the next start
adopts them through their labels.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import redis.asyncio as aioredis
import structlog

from orchestrator.access import daemon_token
from orchestrator.controller import Controller
from orchestrator.engine import Engine
from orchestrator.engine.build_context import ContextLimits
from orchestrator.errors import EngineUnavailable
from orchestrator.events import Event
from orchestrator.api import check_exposure, make_app, serve
from orchestrator.ingress_remote import RemoteIngress, make_ingress, wanted_ingress_ports
from orchestrator.ingress_routes import IngressRoutes
from orchestrator.intake import EventIntake
from orchestrator.logs import redact
from orchestrator.publisher import Publisher
from orchestrator.seq_store import SeqStore
from orchestrator.reconciler import Reconciler
from orchestrator.redis_url import url_secrets
from orchestrator.settings import Settings
from orchestrator.store import Store

log = structlog.stdlib.get_logger()

ENGINE_WAIT_DELAYS = (0.5, 1.0, 2.0, 5.0)


class Daemon:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ready = asyncio.Event()
        self.store = Store(settings.state_dir)
        self.publisher = Publisher(
            settings.redis_url,
            settings.prefix,
            SeqStore(Path(settings.state_dir) / "event-seq"),
            queue_limit=settings.queue_limit,
            stream_maxlen=settings.stream_maxlen,
        )
        self.engine: Engine | None = None
        self.ingress = make_ingress(settings, on_lost=self._ingress_lost)
        self.routes = IngressRoutes(self.ingress, emit=self.emit)
        self.reconciler: Reconciler | None = None
        self.controller: Controller | None = None
        self._stopping = asyncio.Event()

    def emit(self, event: Event) -> None:
        self.publisher.publish(event)

    def _ingress_lost(self) -> None:
        """A restarted ingress could not bind some port again: a pass reports and retries it."""
        if self.reconciler is not None:
            self.reconciler.mark_dirty()

    async def run(self) -> None:
        check_exposure(self.settings)
        started = time.monotonic()
        self.engine = await self._engine_unless_stopped()
        if self.engine is None:
            await self.publisher.close(timeout=0)
            log.info("daemon_stopped", before="the engine answered")
            return
        self.reconciler = Reconciler(
            self.engine, self.store, self.settings, self.emit, routes=self.routes
        )
        if isinstance(self.ingress, RemoteIngress):  # adopt the running data plane, or start one
            await self.ingress.start()
            await self.ingress.prune(wanted_ingress_ports(self.reconciler.records.values()))
        redis = aioredis.Redis.from_url(self.settings.redis_url, socket_timeout=2)
        self.controller = Controller(self.reconciler, redis.ping)
        app = make_app(self.controller, self.settings, redis=redis)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self.publisher.run(), name="publisher"),
                    group.create_task(self.reconciler.run(), name="reconciler"),
                    group.create_task(
                        self.reconciler.follow(EventIntake(self.engine)), name="intake"
                    ),
                    group.create_task(serve(app, self.settings, self.ready), name="http"),
                ]
                self.controller.resume_removals()  # in the background: never delays the start
                await self.ready.wait()
                log.info(
                    "daemon_started",
                    listen=self.settings.listen,
                    socket=self.settings.socket,
                    stacks=len(self.reconciler.records),
                    startup_s=round(time.monotonic() - started, 3),
                )
                await self._stopping.wait()
                await self._stop_all_but_publisher(tasks[1:])
                # Events of the last moments (an `rm` just before SIGTERM) still go out.
                await self.publisher.close(timeout=2.0)
        finally:
            await self._close(redis)

    def stop(self) -> None:
        self._stopping.set()

    async def _engine_unless_stopped(self) -> Engine | None:
        """The engine once it answers, or None if SIGTERM comes first: a daemon waiting for
        dockerd still stops when asked."""
        waiting = asyncio.create_task(wait_for_engine(self.settings.docker_host or None, ContextLimits(
            self.settings.max_build_context_bytes, self.settings.max_build_context_files)))
        stopping = asyncio.create_task(self._stopping.wait())
        await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not waiting.done():
            waiting.cancel()
        await asyncio.gather(waiting, stopping, return_exceptions=True)
        return waiting.result() if not waiting.cancelled() else None

    async def _stop_all_but_publisher(self, tasks: list[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self.controller is not None:
            await self.controller.close()
        if self.reconciler is not None:
            await self.reconciler.executor.cancel()

    async def _close(self, redis: aioredis.Redis) -> None:
        if self.controller is not None:
            await self.controller.close()
        if self.reconciler is not None:
            await self.reconciler.executor.cancel()
            log.info(
                "daemon_stopped",
                stacks=len(self.reconciler.records),
                passes=self.reconciler.passes,
                containers_left_running=True,
            )
        if isinstance(self.ingress, RemoteIngress):
            await self.ingress.detach()  # the data plane outlives the daemon: docs/dataplane.md
        else:
            await self.routes.close()
        await self.publisher.close(timeout=2.0)
        await redis.aclose()
        if self.engine is not None:
            await self.engine.close()


async def wait_for_engine(docker_host: str | None, build_limits: ContextLimits = ContextLimits()) -> Engine:
    """Connect to the engine, waiting (with growing delays) while it does not answer."""
    engine = await Engine.connect(docker_host, build_limits)
    try:
        for attempt in itertools.count():
            try:
                await engine.ping()
                return engine
            except EngineUnavailable as exc:
                if attempt == 0:
                    log.warning("engine_unavailable_waiting", error=str(exc))
                await asyncio.sleep(ENGINE_WAIT_DELAYS[min(attempt, len(ENGINE_WAIT_DELAYS) - 1)])
    except BaseException:  # cancelled (SIGTERM while waiting): its connection pool goes too
        await engine.close()
        raise
    raise AssertionError("unreachable")


def run_daemon(settings: Settings) -> int:
    """Entry point of `orchestrator daemon`: runs until SIGTERM/SIGINT. Exit 1, with one clear
    line and no traceback, when it cannot start (address in use, state dir not writable)."""
    check_exposure(settings)  # beyond loopback only with a token the operator chose
    settings = replace(settings, token=daemon_token(settings))
    redact(settings.token, *url_secrets(settings.redis_url))

    async def main() -> None:
        daemon = Daemon(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, daemon.stop)
        await daemon.run()

    failures: list[BaseException] = []
    try:
        asyncio.run(main())
    except* OSError as group:
        failures.extend(group.exceptions)
    for exc in failures:
        log.error("daemon_failed", error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
    return 1 if failures else 0
