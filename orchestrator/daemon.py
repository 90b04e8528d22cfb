"""The composition root: builds every part from Settings and runs them until SIGTERM.

Shutdown leaves the containers running (in the spirit of dockerd's live-restore): the next start
adopts them through their labels.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path

import redis.asyncio as aioredis
import structlog

from orchestrator.access import daemon_token
from orchestrator.backend import Backend
from orchestrator.loop.commands import StackCommands
from orchestrator.loop.controller import Controller
from orchestrator.loop.desired import DesiredState
from orchestrator.loop.executor import Executor
from orchestrator.loop.progress import Progress, WaitPublished, load_book, load_tracker
from orchestrator.loop.removal import Removals
from orchestrator.loop.reports import PassReports
from orchestrator.loop.tracker import TaskTracker, Transition
from orchestrator.publishing import events
from orchestrator.engine import Engine, wait_for_engine
from orchestrator.engine.build_context import ContextLimits
from orchestrator.errors import UserError
from orchestrator.publishing.events import Event
from orchestrator.api import check_exposure, make_app, serve
from orchestrator.ingress.remote import RemoteIngress, make_ingress
from orchestrator.ingress.routes import IngressRoutes, ingress_ports
from orchestrator.loop.intake import EventIntake
from orchestrator.logs import redact
from orchestrator.publishing.publisher import Publisher
from orchestrator.publishing.seq_store import SeqStore
from orchestrator.loop.reconciler import Reconciler
from orchestrator.publishing.redis_url import url_secrets
from orchestrator.settings import Settings
from orchestrator.loop.store import StackRecord, Store
from orchestrator.swarm.runner import run_on_swarm

log = structlog.stdlib.get_logger()


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
        self.loop: Loop | None = None
        self._stopping = asyncio.Event()
        self._stop_watch: asyncio.Task[None] | None = None

    def emit(self, event: Event) -> None:
        self.publisher.publish(event)

    def _ingress_lost(self) -> None:
        """A restarted ingress could not bind some port again: a pass reports and retries it."""
        if self.loop is not None:
            self.loop.reconciler.mark_dirty()

    async def run(self) -> None:
        check_exposure(self.settings)
        if self.settings.backend == "swarm":  # Swarm keeps the stacks: docs/swarm.md
            await run_on_swarm(self.settings, self.publisher, self.ready, self._stopping)
            return
        started = time.monotonic()
        self.engine = await self._engine_unless_stopped()
        if self.engine is None:
            await self.publisher.close(timeout=0)
            log.info("daemon_stopped", before="the engine answered")
            return
        redis = aioredis.Redis.from_url(self.settings.redis_url, socket_timeout=2)
        loop = self.loop = build_loop(
            self.engine, self.store, self.settings, self.emit, routes=self.routes, redis_ping=redis.ping,
            wait_published=self.publisher.wait_confirmed,
        )
        if isinstance(self.ingress, RemoteIngress):  # adopt the running data plane, or start one
            await self.ingress.start()
            await self.ingress.prune(wanted_ingress_ports(record for _, record in loop.desired.items()))
        app = make_app(loop.controller, self.settings, redis=redis)
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [
                    group.create_task(self.publisher.run(), name="publisher"),
                    group.create_task(loop.reconciler.run(), name="reconciler"),
                    group.create_task(
                        loop.reconciler.follow(EventIntake(self.engine)), name="intake"
                    ),
                    group.create_task(serve(app, self.settings, self.ready), name="http"),
                ]
                loop.removals.resume()  # in the background: never delays the start
                await self.ready.wait()
                log.info(
                    "daemon_started",
                    listen=self.settings.listen,
                    socket=self.settings.socket,
                    stacks=len(loop.desired),
                    startup_s=round(time.monotonic() - started, 3),
                )
                await self._stopping.wait()
                await self._stop_all_but_publisher(tasks[1:])
                # Events of the last moments (an `rm` just before SIGTERM) still go out.
                await self.publisher.close(timeout=2.0)
        finally:
            await self._close(redis)
            if self._stop_watch is not None:
                self._stop_watch.cancel()

    def stop(self) -> None:
        if not self._stopping.is_set():
            log.info("daemon_stopping")
            self._stop_watch = asyncio.get_running_loop().create_task(report_slow_stop(), name="stop-watch")
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
        if self.loop is not None:
            await self.loop.close()

    async def _close(self, redis: aioredis.Redis) -> None:
        if self.loop is not None:
            await self.loop.close()
            log.info(
                "daemon_stopped",
                stacks=len(self.loop.desired),
                passes=self.loop.reconciler.passes,
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


#: After this long a stop says what it still waits for (and again as often while it waits).
STOP_REPORT_AFTER = 10.0


async def report_slow_stop(every: float = STOP_REPORT_AFTER) -> None:
    """A stop that hangs is otherwise silent: name each task still pending and where it waits."""
    while True:
        await asyncio.sleep(every)
        me = asyncio.current_task()
        pending = [task for task in asyncio.all_tasks() if task is not me and not task.done()]
        log.warning("daemon_stop_slow", pending=[_where(task) for task in pending][:50])


def _where(task: asyncio.Task[object]) -> str:
    """`name: outer < … < innermost` over the chain of awaits the task is suspended in."""
    places: list[str] = []
    awaited: object = task.get_coro()
    while awaited is not None and len(places) < 8:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
        if frame is None:
            break
        places.append(f"{frame.f_code.co_name}@{Path(frame.f_code.co_filename).name}:{frame.f_lineno}")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
    return f"{task.get_name()}: {' < '.join(places)}"


def wanted_ingress_ports(records: Iterable[StackRecord]) -> set[tuple[int, str]]:
    """The ingress ports the deployed stacks (not being removed) publish: what an adopted
    ingress keeps serving."""
    return {
        (p.published, p.protocol)
        for record in records if not record.removing
        for service in record.spec.services.values()
        for p in ingress_ports(service.ports)
        if p.published is not None
    }


@dataclass(frozen=True)
class Loop:
    """The parts of the control loop, built and wired together by `build_loop`."""

    desired: DesiredState
    tracker: TaskTracker
    executor: Executor
    reconciler: Reconciler
    removals: Removals
    commands: StackCommands
    controller: Controller

    async def close(self) -> None:
        """Stop the removals under way and the actions in flight (both go on at the next start)."""
        await self.removals.close()
        await self.executor.cancel()


async def _no_redis() -> None:
    return None


def build_loop(
    backend: Backend,
    store: Store,
    settings: Settings,
    emit: Callable[[Event], None],
    *,
    routes: IngressRoutes | None = None,
    redis_ping: Callable[[], Awaitable[object]] = _no_redis,
    wait_published: WaitPublished | None = None,
) -> Loop:
    """Every part of the loop, from the state on disk. The daemon runs `reconciler.run()` and
    `reconciler.follow(...)`; the tests' harness and the benchmarks build theirs here too."""
    desired = DesiredState.load(store, settings)
    book = load_book(store, settings)

    def on_transition(t: Transition) -> None:
        emit(events.task_state(
            t.key, t.container_id, t.task_id, t.from_state, t.to_state, t.exit_code, t.reason or None
        ))  # fmt: skip

    tracker = load_tracker(store, on_transition)
    progress = Progress(store, book, tracker, wait_published)
    executor = Executor(
        backend,
        tracker,
        book,
        concurrency=settings.concurrency,
        files_dir=store.files_dir,
        on_done=lambda key: reconciler.mark_slot_dirty(key),
        before_stop=routes.drain if routes else None,
        save_shutdown_marks=progress.save_shutdown_marks,
    )
    reports = PassReports(emit)
    reconciler = Reconciler(backend, desired, executor, tracker, book, progress, reports, settings, emit, routes)
    removals = Removals(desired, backend, executor, book, tracker, store.files_dir, reconciler.report_removed, emit)
    commands = StackCommands(desired, backend, executor, book, removals, settings, emit,
                             reconciler.mark_dirty, routes)
    controller = Controller(commands, removals, desired, reconciler, reports, tracker, backend, redis_ping, routes)
    return Loop(desired, tracker, executor, reconciler, removals, commands, controller)


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
    except* UserError as group:  # e.g. ORCHESTRATOR_BACKEND=swarm on an engine that is no manager
        failures.extend(group.exceptions)
    for exc in failures:
        log.error("daemon_failed", error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
    return 1 if failures else 0
