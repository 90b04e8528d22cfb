"""One connection to the engine's event stream, as typed events, ending when the stream does.

aiodocker's `DockerEvents.run()` swallows a dropped connection and ends quietly, and a finished
`run()` is never restarted by `subscribe()` (SEMANTICS.md 4.3). So each EventStream builds its
own `DockerEvents`, drives `run()` in a task it owns, and reports how the stream ended: iteration
stops on a drop, or raises EngineUnavailable / EngineError when the request itself failed.
Reconnecting (and replaying with `since`) is the caller's loop: see orchestrator.intake.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping, Sequence

from types import TracebackType
from typing import Any

import aiodocker
import aiohttp

from orchestrator.backend import EngineEvent
from orchestrator.engine.calls import engine_errors
from orchestrator.errors import EngineUnavailable


def since_param(time_ns: int) -> str:
    """The engine's `since` takes "seconds.nanoseconds"; replay includes that instant."""
    return f"{time_ns // 10**9}.{time_ns % 10**9:09d}"


def parse_event(raw: Mapping[str, Any]) -> EngineEvent:
    actor = raw.get("Actor") or {}
    time_ns = raw.get("timeNano") or int(raw.get("time", 0)) * 10**9
    return EngineEvent(
        type=raw.get("Type", ""),
        action=raw.get("Action", ""),
        actor_id=actor.get("ID", ""),
        time_ns=int(time_ns),
        attributes=dict(actor.get("Attributes") or {}),
    )


class EventStream:
    """`async with engine.events(...) as stream: async for event in stream: ...`"""

    def __init__(
        self,
        docker: aiodocker.Docker,
        *,
        filters: Mapping[str, Sequence[str]],
        since_ns: int | None,
        on_event: Callable[[EngineEvent], None] | None = None,
    ) -> None:
        self._events = aiodocker.events.DockerEvents(docker)
        self._subscriber = self._events.subscribe(create_task=False)
        self._params: dict[str, Any] = {"filters": json.dumps({k: list(v) for k, v in filters.items()})}
        if since_ns is not None:
            self._params["since"] = since_param(since_ns)
        self._reader: asyncio.Task[None] | None = None
        self._on_event = on_event

    async def __aenter__(self) -> EventStream:
        self._reader = asyncio.create_task(self._events.run(**self._params), name="engine-events")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._reader is None:
            return
        reader, self._reader = self._reader, None
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        await self._events.stop()  # closes the HTTP response if run() left it open

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> EngineEvent:
        raw = await self._subscriber.get()
        if raw is not None:
            event = parse_event(raw)
            if self._on_event is not None:
                self._on_event(event)
            return event
        # run() published its end marker: a drop ends iteration; a failed request raises.
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)
            failure = self._reader.exception() if not self._reader.cancelled() else None
            if isinstance(failure, (aiodocker.DockerError, aiohttp.ClientError, ConnectionError)):
                with engine_errors():
                    raise failure
            if failure is not None:
                raise EngineUnavailable(f"event stream failed: {failure!r}") from failure
        raise StopAsyncIteration
