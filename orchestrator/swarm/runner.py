"""The daemon with `ORCHESTRATOR_BACKEND=swarm`: the API, the watcher and the publisher.

No reconciler, executor or ingress: Swarm keeps the stacks at their replica counts and places
the tasks. The daemon checks at start that DOCKER_HOST is an active Swarm manager (a clear error
and exit 1 otherwise, docs/swarm.md), then serves the same API (swarm/control.py) and publishes
what the watcher sees (swarm/watcher.py). Stopping it stops nothing on the Swarm.
"""

from __future__ import annotations

import asyncio
import itertools
import time

import redis.asyncio as aioredis
import structlog

from orchestrator.api import make_app, serve
from orchestrator.errors import EngineUnavailable
from orchestrator.publishing.publisher import Publisher
from orchestrator.settings import Settings
from orchestrator.support.backoff import doubling
from orchestrator.swarm.apply import ReplicaBudget
from orchestrator.swarm.control import SwarmControl
from orchestrator.engine.swarm import SwarmManager
from orchestrator.swarm.observed_store import ObservedStore
from orchestrator.swarm.watcher import SwarmWatcher

log = structlog.stdlib.get_logger()



async def run_on_swarm(settings: Settings, publisher: Publisher, ready: asyncio.Event,
                       stopping: asyncio.Event) -> None:
    started = time.monotonic()
    manager = SwarmManager.connect(settings.docker_host or None)
    redis = aioredis.Redis.from_url(settings.redis_url, socket_timeout=2)
    try:
        watcher = SwarmWatcher(manager, publisher.publish, ObservedStore(redis, settings.prefix),
                               settings.swarm_poll_interval)
        control = SwarmControl(manager, watcher, publisher.publish,
                               ReplicaBudget(settings.max_replicas, settings.max_replicas_total), redis.ping)
        if not await _manager_unless_stopped(manager, control, stopping):
            log.info("daemon_stopped", before="the engine answered")
            return
        app = make_app(control, settings, redis=redis)
        async with asyncio.TaskGroup() as group:
            tasks = [
                group.create_task(publisher.run(), name="publisher"),
                group.create_task(watcher.run(), name="swarm-watcher"),
                group.create_task(serve(app, settings, ready), name="http"),
            ]
            await ready.wait()
            log.info("daemon_started", backend="swarm", manager=manager.host, listen=settings.listen,
                     socket=settings.socket, startup_s=round(time.monotonic() - started, 3))
            await stopping.wait()
            for task in tasks[1:]:
                task.cancel()
            await asyncio.gather(*tasks[1:], return_exceptions=True)
            await publisher.close(timeout=2.0)
        log.info("daemon_stopped", backend="swarm", relists=watcher.relists)
    finally:
        await publisher.close(timeout=0)
        await redis.aclose()
        await manager.close()


async def _manager_unless_stopped(manager: SwarmManager, control: SwarmControl, stopping: asyncio.Event) -> bool:
    """True once the manager answers and the stack records are loaded; False if SIGTERM comes first."""
    waiting = asyncio.create_task(_wait_for_manager(manager, control))
    stop = asyncio.create_task(stopping.wait())
    await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
    for task in (waiting, stop):
        task.cancel()
    await asyncio.gather(stop, return_exceptions=True)
    if waiting.cancelled() or not waiting.done():
        await asyncio.gather(waiting, return_exceptions=True)
        return False
    waiting.result()  # NotAManager: the daemon exits with it
    return True


async def _wait_for_manager(manager: SwarmManager, control: SwarmControl) -> None:
    """Wait while the engine does not answer; NotAManager (exit 1) when it answers as no manager."""
    for attempt in itertools.count():
        try:
            await manager.check_manager()
            await control.load()
            return
        except EngineUnavailable as exc:
            if attempt == 0:
                log.warning("engine_unavailable_waiting", error=str(exc))
            await asyncio.sleep(doubling(attempt, 0.5, 5.0))
