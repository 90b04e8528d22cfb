"""The executor's engine-wide bound on creations, served fairly: no stack waits on another's work.

A plain semaphore serves its waiters in arrival order, so a 500-replica deploy queued 500
creates and everything that came after (another stack's only replica, the restart of a replica
that died) waited behind all of them (issue 18: a 1-replica deploy took 72 s instead of 1.4 s).
`FairLimit` keeps the same number of permits, but when one frees it goes to

1. the most urgent class first: a restart (a replica that died is worth more than the 250th of
   a new deploy), then bulk work (a deploy's, scale-up's or update's creates, removals), then
   standbys (docs/standby.md: a spare is only worth making when nothing else waits);
2. within a class, the stacks in turn (round-robin), and within a stack its services in turn;
3. within a service, in arrival order.

So a small stack's create waits for one permit to free, not for a big stack's queue, and a
restart waits for no bulk work at all. Work in flight is never preempted: what a newcomer can
still wait for is the engine finishing what it already has (`concurrency` operations at most).

Granting is O(1) per permit; a waiter that is cancelled (the stack is removed) is skipped when
its turn comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import OrderedDict, deque
from collections.abc import AsyncIterator

from orchestrator.model.observed import SlotKey


class Urgency(enum.IntEnum):
    """The order in which waiting work gets a permit (lower first)."""

    RESTART = 0
    BULK = 1
    STANDBY = 2


#: stack -> service -> waiters in arrival order; both dicts in their round-robin order.
_Queue = OrderedDict[str, OrderedDict[str, deque[asyncio.Future[None]]]]


class FairLimit:
    def __init__(self, permits: int) -> None:
        if permits < 1:
            raise ValueError(f"a limit needs at least one permit, not {permits}")
        self._free = permits
        self._queues: dict[Urgency, _Queue] = {u: OrderedDict() for u in Urgency}
        #: Waiters not granted and not cancelled (the queues may still hold cancelled ones).
        self._waiting = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    @contextlib.asynccontextmanager
    async def hold(self, key: SlotKey, urgency: Urgency = Urgency.BULK) -> AsyncIterator[None]:
        await self.acquire(key, urgency)
        try:
            yield
        finally:
            self.release()

    async def acquire(self, key: SlotKey, urgency: Urgency = Urgency.BULK) -> None:
        if self._free > 0 and self._waiting == 0:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        services = self._queues[urgency].setdefault(key.stack, OrderedDict())
        services.setdefault(key.service, deque()).append(waiter)
        self._waiting += 1
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # granted as the cancellation came: hand the permit on
            else:
                waiter.cancel()  # skipped when its turn comes
                self._waiting -= 1
            raise

    def release(self) -> None:
        self._free += 1
        while self._free > 0 and self._waiting > 0:
            waiter = self._next()
            if waiter is None:
                return
            self._free -= 1
            self._waiting -= 1
            waiter.set_result(None)

    def _next(self) -> asyncio.Future[None] | None:
        """The next waiter to grant: most urgent class, then stacks and services in turn."""
        for urgency in Urgency:
            stacks = self._queues[urgency]
            while stacks:
                stack, services = next(iter(stacks.items()))
                service, waiters = next(iter(services.items()))
                waiter = None
                while waiters and waiter is None:
                    candidate = waiters.popleft()
                    waiter = None if candidate.done() else candidate
                # this service and this stack go to the back of their rounds
                services.move_to_end(service)
                if not waiters:
                    del services[service]
                stacks.move_to_end(stack)
                if not services:
                    del stacks[stack]
                if waiter is not None:
                    return waiter
        return None


__all__ = ["FairLimit", "Urgency"]
