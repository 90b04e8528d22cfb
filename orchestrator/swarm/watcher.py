"""The Swarm watcher: list + watch of services, tasks and nodes → our messages on Redis.

A manager's event stream tells of services and nodes, never of tasks (a task's container events
happen on its node). So the watcher relists the tasks every `swarm_poll_interval` seconds, and at
once when the manager reports a service or node event (a deploy, a scale, a node going down);
services and nodes are relisted on their events and every `SLOW_RELIST` seconds as a safety net.
Each relist is compared with what was last published (swarm/observed.py): one `task.state` per
change of a task's Swarm state, one `node.state` per node change, one `update.*` per change of a
service's rolling update; then what Swarm's supervisor did and where each service stands
(swarm/supervision.py: task.restart_scheduled, task.gave_up, service.converged/degraded).

No message twice, none lost across restarts: the states last published (`Known`) are saved in
Redis (swarm/observed_store.py) before the messages of a relist go to the publisher, whose `seq`
goes on from the stream's last message (publisher.py). A daemon killed and started again, on
this manager or on another one, loads them and tells only what changed meanwhile. When the save
fails, nothing of that relist is published and the next relist computes the same messages again.
(A kill between the save and the publisher's send loses that relist's messages, as a kill loses
the publisher's queue on one engine.)

The last relist is also the `Snapshot` the views read without a request of their own (`ls`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from orchestrator.publishing import events
from orchestrator.errors import EngineError, EngineUnavailable
from orchestrator.publishing.events import Event
from orchestrator.labels import LABEL_SWARM_NAMESPACE
from orchestrator.support.backoff import doubling
from orchestrator.engine.swarm import SwarmManager
from orchestrator.swarm.observed import (
    Known,
    NodeSeen,
    ServiceRef,
    TaskSeen,
    global_slots,
    node_messages,
    node_seen,
    service_ref,
    task_messages,
    task_seen,
    update_messages,
)
from orchestrator.swarm.observed_store import ObservedStore, ObservedStoreUnavailable
from orchestrator.swarm.supervision import Supervision

log = structlog.stdlib.get_logger()

#: Seconds between relists of services and nodes when no event asks for one.
SLOW_RELIST = 5.0
#: Retries after the manager failed a relist or the event stream: doubling up to this.
_RETRY_CAP = 5.0


@dataclass(slots=True)
class Snapshot:
    services: dict[str, dict[str, Any]] = field(default_factory=dict)  # id → listed service of a stack
    refs: dict[str, ServiceRef] = field(default_factory=dict)
    nodes: dict[str, NodeSeen] = field(default_factory=dict)
    tasks: list[TaskSeen] = field(default_factory=list)
    #: Every service listed, of a stack or not: a task of another service is not news.
    all_service_ids: frozenset[str] = frozenset()
    at: float = 0.0


class SwarmWatcher:
    def __init__(self, manager: SwarmManager, emit: Callable[[Event], None], store: ObservedStore,
                 interval: float) -> None:
        self._m = manager
        self._emit = emit
        self._store = store
        self._interval = interval
        #: None until loaded from the store (at the first relist: Redis may not answer yet).
        self._known: Known | None = None
        self._supervision = Supervision()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._services_due = True
        self._nodes_due = True
        self._slow_at = 0.0
        self.snapshot = Snapshot()
        self.relists = 0

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            group.create_task(self._follow_events(), name="swarm-events")
            group.create_task(self._poll(), name="swarm-poll")

    def wake(self, *, services: bool = False, nodes: bool = False) -> None:
        self._services_due |= services
        self._nodes_due |= nodes
        self._wake.set()

    async def refresh(self) -> Snapshot:
        """Relist now (after a deploy or scale, so views and messages follow at once). Without
        Redis the views move and the messages wait for the poller's next relist."""
        self._services_due = self._nodes_due = True
        try:
            await self.relist()
        except ObservedStoreUnavailable as exc:
            log.info("swarm_observed_store_unavailable", error=str(exc))
        return self.snapshot

    async def _poll(self) -> None:
        failing = False
        store_failing = False
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.relist()
            except ObservedStoreUnavailable as exc:
                if not store_failing:
                    log.warning("swarm_observed_store_unavailable", error=str(exc))
                store_failing = True
                await asyncio.sleep(_RETRY_CAP)
                continue
            except (EngineUnavailable, EngineError) as exc:
                if not failing:
                    log.warning("swarm_relist_failed", error=str(exc))
                    self._emit(events.engine_disconnected(f"Swarm manager: {exc}"))
                failing = True
                await asyncio.sleep(_RETRY_CAP)
                continue
            if store_failing:
                log.info("swarm_observed_store_recovered")
                store_failing = False
            if failing:
                log.info("swarm_relist_recovered")
                self._emit(events.engine_reconnected())
                failing = False

    async def _follow_events(self) -> None:
        attempt = 0
        while True:
            try:
                async with self._m.events({"type": ["service", "node"]}) as stream:
                    attempt = 0
                    self.wake(services=True, nodes=True)  # what happened while not subscribed
                    async for event in stream:
                        self.wake(services=event.type == "service", nodes=event.type == "node")
            except (EngineUnavailable, EngineError) as exc:
                log.info("swarm_events_interrupted", error=str(exc))
            await asyncio.sleep(doubling(attempt, 0.5, _RETRY_CAP))
            attempt += 1

    async def relist(self) -> None:
        """List, compare, save what is now known, then publish. ObservedStoreUnavailable when
        the state cannot be loaded or saved: then nothing is published (the views still move)."""
        async with self._lock:
            now = time.monotonic()
            if now >= self._slow_at:
                self._services_due = self._nodes_due = True
                self._slow_at = now + SLOW_RELIST
            snapshot = self.snapshot
            if self._services_due:
                self._services_due = False
                listed = await self._m.services({})
                refs = {}
                for service in listed:
                    ref = service_ref(service, LABEL_SWARM_NAMESPACE)
                    if ref is not None:
                        refs[ref.id] = ref
                snapshot = Snapshot({s["ID"]: s for s in listed if s["ID"] in refs}, refs, snapshot.nodes,
                                    all_service_ids=frozenset(s["ID"] for s in listed))
            if self._nodes_due:
                self._nodes_due = False
                snapshot.nodes = {node["ID"]: node_seen(node) for node in await self._m.nodes()}
            raw_tasks = await self._m.tasks()
            slots = global_slots(snapshot.nodes.values())
            seen = [t for t in (task_seen(task, snapshot.refs, snapshot.nodes, slots) for task in raw_tasks) if t]
            if any(task.get("ServiceID") not in snapshot.all_service_ids for task in raw_tasks):
                self._services_due = True  # a service created since the last services list
            snapshot.tasks = seen
            snapshot.at = time.time()
            self.snapshot = snapshot
            self.relists += 1
            if self._known is None:
                self._known = await self._store.load()
            # Nothing known yet (a first start): old restarts are history, not news.
            first_seen = {t.id for t in seen if t.id not in self._known.tasks} if self._known.tasks else set()
            known = self._known.copy()
            messages = [
                *update_messages(known, ((snapshot.refs[i], s) for i, s in snapshot.services.items())),
                *task_messages(known, seen, (task["ID"] for task in raw_tasks)),
                *node_messages(known, snapshot.nodes.values()),
            ]
            if messages:
                await self._store.save(known)
                self._known = known
            messages += self._supervision.messages(snapshot.services, snapshot.refs, seen, first_seen)
            for message in messages:
                self._emit(message)
