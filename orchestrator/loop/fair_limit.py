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

That orders the daemon's queue; it does not shorten the engine's. The engine shares its time
between the operations it has in flight (its CPU, its network and container locks), so an
operation sent while the bound is full of a big converge's creates and starts takes several
times as long as on an idle engine, however early the daemon sends it. The engine's
throughput, though, barely grows past a few operations in flight (`bench_scale.py --sweep`).
So a stack **yields**: while lighter work is waiting or in flight (a restart, or another stack
with fewer bulk operations outstanding: a small deploy, a scale-up of a few), a stack's bulk and
standby work gets new permits only while it holds fewer than `yield_share`. Its operations in
flight finish (nothing is preempted) and are not replaced, so the engine drains to a few of
them while the light work runs, and the bound is the heavy work's again once the light work is
done. Two big stacks do not slow each other down: the heavier one yields to the lighter, the
lighter keeps the rest of the bound. Standbys yield to any other stack's bulk work, and while a
restart waits or runs, one standby at most is made in the whole daemon: when one replica in each
of 200 stacks died at once, every stack replaced first made its standby again, and those creates
(each heavier for the engine than a start) took the bound from the starts still waiting.

Granting costs O(stacks) per permit; a waiter that is cancelled (the stack is removed) is
skipped when its turn comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections import Counter, OrderedDict, deque
from collections.abc import AsyncIterator

from orchestrator.model.observed import SlotKey


class Urgency(enum.IntEnum):
    """The order in which waiting work gets a permit (lower first)."""

    RESTART = 0
    BULK = 1
    STANDBY = 2


#: stack -> service -> waiters in arrival order; both dicts in their round-robin order.
_Queue = OrderedDict[str, OrderedDict[str, deque[asyncio.Future[None]]]]


def default_yield_share(permits: int) -> int:
    """What a stack keeps in flight while lighter work runs: a quarter of the bound, at least
    2 (bench_scale's sweep: 4 in flight converge about as fast as 16 on this engine)."""
    return min(permits, max(2, permits // 4))


class FairLimit:
    def __init__(self, permits: int, yield_share: int | None = None) -> None:
        if permits < 1:
            raise ValueError(f"a limit needs at least one permit, not {permits}")
        self._free = permits
        self._yield_share = default_yield_share(permits) if yield_share is None else yield_share
        if not 1 <= self._yield_share <= permits:
            raise ValueError(f"a yield share must be between 1 and {permits}, not {self._yield_share}")
        self._queues: dict[Urgency, _Queue] = {u: OrderedDict() for u in Urgency}
        #: Waiters not granted and not cancelled (the queues may still hold cancelled ones).
        self._waiting = 0
        #: Restarts waiting or holding a permit: while there is one, every stack yields.
        self._restarts = 0
        #: Per stack, bulk operations waiting or holding a permit: how heavy its work is.
        self._outstanding: Counter[str] = Counter()
        #: Per stack, permits held by its bulk and standby work (what yielding caps).
        self._held: Counter[str] = Counter()
        #: Permits held by standbys, all stacks together.
        self._standbys_held = 0

    @property
    def waiting(self) -> int:
        return self._waiting

    @contextlib.asynccontextmanager
    async def hold(self, key: SlotKey, urgency: Urgency = Urgency.BULK) -> AsyncIterator[None]:
        await self.acquire(key, urgency)
        try:
            yield
        finally:
            self.release(key, urgency)

    @contextlib.asynccontextmanager
    async def beside(self, stack: str) -> AsyncIterator[None]:
        """Bulk work of `stack` that runs without a permit (a deploy creating its networks):
        heavier stacks yield to it as they would to its creates."""
        self._count(stack, Urgency.BULK, +1)
        try:
            yield
        finally:
            self._count(stack, Urgency.BULK, -1)
            self._grant()

    async def acquire(self, key: SlotKey, urgency: Urgency = Urgency.BULK) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        services = self._queues[urgency].setdefault(key.stack, OrderedDict())
        services.setdefault(key.service, deque()).append(waiter)
        self._waiting += 1
        self._count(key.stack, urgency, +1)
        self._grant()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release(key, urgency)  # granted as the cancellation came: hand the permit on
            else:
                waiter.cancel()  # skipped when its turn comes
                self._waiting -= 1
                self._count(key.stack, urgency, -1)
                self._grant()  # a stack that yielded to this one may go on
            raise

    def release(self, key: SlotKey, urgency: Urgency = Urgency.BULK) -> None:
        self._free += 1
        self._count(key.stack, urgency, -1)
        if urgency is not Urgency.RESTART:
            self._held[key.stack] -= 1
            if self._held[key.stack] <= 0:
                del self._held[key.stack]
        if urgency is Urgency.STANDBY:
            self._standbys_held -= 1
        self._grant()

    def _count(self, stack: str, urgency: Urgency, delta: int) -> None:
        if urgency is Urgency.RESTART:
            self._restarts += delta
        elif urgency is Urgency.BULK:
            self._outstanding[stack] += delta
            if self._outstanding[stack] <= 0:
                del self._outstanding[stack]

    def _grant(self) -> None:
        while self._free > 0 and self._waiting > 0:
            found = self._next()
            if found is None:
                return  # every waiter yields: the permits stay free while the engine drains
            stack, urgency, waiter = found
            self._free -= 1
            self._waiting -= 1
            if urgency is not Urgency.RESTART:
                self._held[stack] += 1
            if urgency is Urgency.STANDBY:
                self._standbys_held += 1
            waiter.set_result(None)

    def _yields(self, stack: str, urgency: Urgency) -> bool:
        """Whether `stack`'s work of this class must wait while lighter work runs."""
        if urgency is Urgency.STANDBY and self._restarts > 0 and self._standbys_held >= 1:
            return True  # restarts in the way: one standby at a time, all stacks together
        if urgency is Urgency.RESTART or self._held[stack] < self._yield_share:
            return False
        if self._restarts > 0:
            return True
        mine = self._outstanding[stack] if urgency is Urgency.BULK else None
        return any(
            other != stack and (mine is None or count < mine)
            for other, count in self._outstanding.items()
        )

    def _next(self) -> tuple[str, Urgency, asyncio.Future[None]] | None:
        """The next waiter to grant: most urgent class, then stacks and services in turn, past
        the stacks that yield (which keep their place in the round)."""
        for urgency in Urgency:
            stacks = self._queues[urgency]
            for stack in list(stacks):
                services = stacks[stack]
                waiter = _first_live(services)
                if waiter is None:
                    del stacks[stack]
                    continue
                if self._yields(stack, urgency):
                    continue
                # granted: this service and this stack go to the back of their rounds
                service, waiters = next(iter(services.items()))
                waiters.popleft()
                services.move_to_end(service)
                if not waiters:
                    del services[service]
                stacks.move_to_end(stack)
                if not services:
                    del stacks[stack]
                return stack, urgency, waiter
        return None


def _first_live(services: OrderedDict[str, deque[asyncio.Future[None]]]) -> asyncio.Future[None] | None:
    """The stack's next waiter in its round of services, dropping cancelled ones on the way."""
    while services:
        service, waiters = next(iter(services.items()))
        while waiters and waiters[0].done():
            waiters.popleft()
        if waiters:
            return waiters[0]
        del services[service]
    return None


__all__ = ["FairLimit", "Urgency", "default_yield_share"]
