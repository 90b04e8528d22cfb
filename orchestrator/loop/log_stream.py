"""`logs`: the log lines of a service's replicas, merged as they come, one reader per replica.

A bounded queue between the readers and the caller: a slow client holds the readers back rather
than the daemon's memory growing; the readers end with the caller (a closed connection).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from orchestrator.backend import Backend
from orchestrator.model.observed import ContainerState
from orchestrator.views import LogLine

#: Lines read ahead of the caller, all replicas together.
QUEUE_LINES = 1000


async def merged_logs(
    backend: Backend, containers: Sequence[ContainerState], *, follow: bool, tail: int | None
) -> AsyncIterator[LogLine]:
    queue: asyncio.Queue[LogLine | None] = asyncio.Queue(maxsize=QUEUE_LINES)

    async def pump(c: ContainerState) -> None:
        try:
            async for text in backend.logs(c.id, follow=follow, tail=tail):
                await queue.put(LogLine(c.key.slot, c.task_id, "stdout", text))
        finally:
            await queue.put(None)

    pumps = [asyncio.create_task(pump(c)) for c in containers]
    try:
        remaining = len(pumps)
        while remaining:
            line = await queue.get()
            if line is None:
                remaining -= 1
            else:
                yield line
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


__all__ = ["merged_logs"]
