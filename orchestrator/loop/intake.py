"""The engine's container events, followed forever, as a stream of IntakeItems.

The event stream is lossy (the engine keeps 256 events in memory and skips slow readers) and
aiodocker ends a dropped stream silently (SEMANTICS.md 4.3), so this module owns the loop:

    ping → open the stream (since = last seen timeNano) → Resync → events … → drop
         → Disconnected → back off (growing delays) → ping → open … → Resync → events …

`Resync` comes on the first connect and after every reconnect: the consumer must relist
everything, because events may have been lost meanwhile. Replay with `since` is inclusive and
may repeat what was seen before the drop: repeats are dropped by (timeNano, id, action).
Events carry no truth (DESIGN.md): they only say which stack to look at again.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import cast

import structlog

from orchestrator import labels
from orchestrator.backend import Backend, EngineEvent
from orchestrator.labels import decimal
from orchestrator.errors import EngineError, EngineUnavailable
from orchestrator.model.observed import Health

log = structlog.stdlib.get_logger()

#: The container actions that can change what a pass would plan (exec_* from healthchecks,
#: attach, resize, top… cannot). `health_status` matches its suffixed forms.
FOLLOWED_ACTIONS = (
    "create", "start", "restart", "die", "kill", "oom", "stop", "destroy",
    "pause", "unpause", "rename", "health_status",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class ContainerEvent:
    stack: str
    service: str
    slot: int | None
    container_id: str
    #: Without the engine's suffix: "health_status: unhealthy" → "health_status".
    action: str
    exit_code: int | None
    health: Health | None
    time_ns: int
    attributes: Mapping[str, str] = field(default_factory=dict)
    #: Our task id label ("" for a container without it).
    task_id: str = ""


@dataclass(frozen=True, slots=True)
class Resync:
    """Connected (again): events may have been missed, relist everything."""

    reason: str


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The stream dropped or the engine is unreachable; reconnecting with backoff."""

    error: str


IntakeItem = ContainerEvent | Resync | Disconnected


def container_event(event: EngineEvent) -> ContainerEvent:
    attributes = event.attributes
    action, _, detail = event.action.partition(": ")
    slot = attributes.get(labels.LABEL_SLOT, "")
    exit_code = attributes.get("exitCode", "")
    return ContainerEvent(
        stack=attributes.get(labels.LABEL_STACK, ""),
        service=attributes.get(labels.LABEL_SERVICE, ""),
        slot=decimal(slot),
        container_id=event.actor_id,
        action=action,
        exit_code=decimal(exit_code),
        health=cast(Health, detail) if action == "health_status" and detail else None,
        time_ns=event.time_ns,
        attributes=attributes,
        task_id=attributes.get(labels.LABEL_TASK_ID, ""),
    )


class SeenEvents:
    """The keys of recently seen events, to drop the repeats of an inclusive replay."""

    def __init__(self, capacity: int = 4096) -> None:
        self._keys: OrderedDict[tuple[int, str, str], None] = OrderedDict()
        self._capacity = capacity

    def first_time(self, event: EngineEvent) -> bool:
        key = (event.time_ns, event.actor_id, event.action)
        if key in self._keys:
            return False
        self._keys[key] = None
        if len(self._keys) > self._capacity:
            self._keys.popitem(last=False)
        return True


class EventIntake:
    """`async with contextlib.aclosing(intake.stream()) as items: async for item in items: ...`"""

    def __init__(
        self,
        engine: Backend,
        *,
        stack: str | None = None,
        reconnect_backoff: Sequence[float] = (0.1, 0.5, 1, 2, 5),
        idle_ping: float = 30.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        """`stack`: follow one stack only (default: all of ours). `idle_ping`: after that many
        quiet seconds, ping the engine, so that a half-open connection is noticed."""
        self._engine = engine
        self._stack = stack
        self._backoff = tuple(reconnect_backoff) or (1.0,)
        self._idle_ping = idle_ping
        self._clock = clock
        self._seen = SeenEvents()
        self._last_ns: int | None = None

    def __aiter__(self) -> AsyncIterator[IntakeItem]:
        return self.stream()

    async def stream(self) -> AsyncGenerator[IntakeItem, None]:
        failures = 0  # connection attempts that failed since the last good connection
        while True:
            connected_at = None
            try:
                await self._engine.ping()
                if self._last_ns is None:  # replay from the first connect on: no gap, ever
                    self._last_ns = self._clock()
                since = self._last_ns
                async with self._engine.events(stack=self._stack, actions=FOLLOWED_ACTIONS, since_ns=since) as events:
                    connected_at = time.monotonic()
                    if failures:
                        log.info("event_stream_reconnected", since_ns=since, attempts=failures)
                    yield Resync("reconnected" if failures else "connected")
                    async for item in self._follow(events):
                        yield item
                error = "event stream ended"
            except (EngineUnavailable, EngineError) as exc:
                error = str(exc)
            # A connection that held for a while starts the backoff afresh.
            if connected_at is not None and time.monotonic() - connected_at >= max(self._backoff):
                failures = 0
            delay = self._backoff[min(failures, len(self._backoff) - 1)]
            if failures == 0 or connected_at is not None:  # once per outage, not per retry
                log.warning("event_stream_disconnected", error=error, retry_in_s=delay)
                yield Disconnected(error)
            else:
                log.debug("event_stream_retrying", error=error, retry_in_s=delay, attempt=failures)
            failures += 1
            await asyncio.sleep(delay)

    async def _follow(self, events: AsyncIterator[EngineEvent]) -> AsyncIterator[ContainerEvent]:
        while True:
            try:
                async with asyncio.timeout(self._idle_ping):
                    event = await anext(events)
            except StopAsyncIteration:
                return
            except TimeoutError:
                await self._engine.ping()  # raises when the engine is gone: a drop
                continue
            self._last_ns = max(self._last_ns or 0, event.time_ns)
            if self._seen.first_time(event):
                yield container_event(event)
