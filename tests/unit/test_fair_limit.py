"""The executor's creation bound is served fairly (issue 18): restarts first, then stacks and
their services in turn, standbys last; never more permits out than it has. Order and counts
only: the waiters are tasks that record when they got in."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.loop.fair_limit import FairLimit, Urgency
from orchestrator.model.observed import SlotKey


class Recorder:
    """Queues waiters on a FairLimit while every permit is out, then frees them one by one."""

    def __init__(self, permits: int) -> None:
        self.limit = FairLimit(permits)
        self.order: list[SlotKey] = []
        self.inside = 0
        self.most_inside = 0
        self.release = asyncio.Event()

    async def work(self, key: SlotKey, urgency: Urgency = Urgency.BULK) -> None:
        async with self.limit.hold(key, urgency):
            self.order.append(key)
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
            await self.release.wait()
            await asyncio.sleep(0)
            self.inside -= 1


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_a_small_stack_waits_for_one_permit_not_for_a_big_stacks_queue() -> None:
    r = Recorder(permits=2)
    tasks = [asyncio.create_task(r.work(SlotKey("big", "b", n))) for n in range(1, 501)]
    await settle()
    tasks.append(asyncio.create_task(r.work(SlotKey("small", "s", 1))))
    await settle()
    r.release.set()
    await asyncio.gather(*tasks)
    position = r.order.index(SlotKey("small", "s", 1))
    assert position == 3  # the 2 that held the permits, then one of big's, then small's turn
    assert sum(1 for k in r.order[:position] if k.stack == "big") == 3
    assert r.most_inside == 2


async def test_a_restart_goes_before_every_waiting_create_and_standbys_go_last() -> None:
    r = Recorder(permits=1)
    holder = asyncio.create_task(r.work(SlotKey("big", "b", 0)))
    await settle()
    waiters = [asyncio.create_task(r.work(SlotKey("other", "o", 1), Urgency.STANDBY))]
    waiters += [asyncio.create_task(r.work(SlotKey("big", "b", n))) for n in range(1, 50)]
    waiters.append(asyncio.create_task(r.work(SlotKey("other", "o", 2), Urgency.RESTART)))
    await settle()
    r.release.set()
    await asyncio.gather(holder, *waiters)
    assert r.order[1] == SlotKey("other", "o", 2)
    assert r.order[-1] == SlotKey("other", "o", 1)


async def test_stacks_and_services_take_turns_and_each_keeps_its_arrival_order() -> None:
    r = Recorder(permits=1)
    holder = asyncio.create_task(r.work(SlotKey("x", "hold", 0)))
    await settle()
    keys = [SlotKey("a", "web", n) for n in (1, 2, 3)] + [SlotKey("a", "db", n) for n in (1, 2)]
    keys += [SlotKey("b", "api", n) for n in (1, 2)]
    waiters = [asyncio.create_task(r.work(k)) for k in keys]
    await settle()
    r.release.set()
    await asyncio.gather(holder, *waiters)
    stacks = [k.stack for k in r.order[1:]]
    assert stacks == ["a", "b", "a", "b", "a", "a", "a"]
    a_services = [k.service for k in r.order[1:] if k.stack == "a"]
    assert a_services == ["web", "db", "web", "db", "web"]
    assert [k.slot for k in r.order if k.service == "web"] == [1, 2, 3]


async def test_a_cancelled_waiter_is_skipped_and_its_permit_is_not_lost() -> None:
    r = Recorder(permits=1)
    holder = asyncio.create_task(r.work(SlotKey("a", "s", 0)))
    await settle()
    gone = asyncio.create_task(r.work(SlotKey("a", "s", 1)))
    kept = asyncio.create_task(r.work(SlotKey("b", "s", 1)))
    await settle()
    assert r.limit.waiting == 2
    gone.cancel()
    await settle()
    assert r.limit.waiting == 1
    r.release.set()
    await asyncio.gather(holder, kept)
    assert gone.cancelled()
    assert r.order == [SlotKey("a", "s", 0), SlotKey("b", "s", 1)]
    async with r.limit.hold(SlotKey("c", "s", 1)):  # the permit came back
        assert r.limit.waiting == 0


async def test_a_waiter_cancelled_as_it_is_granted_hands_its_permit_on() -> None:
    limit = FairLimit(1)
    await limit.acquire(SlotKey("a", "s", 0))
    granted = asyncio.create_task(limit.acquire(SlotKey("a", "s", 1)))
    after = asyncio.create_task(limit.acquire(SlotKey("b", "s", 1)))
    await settle()
    limit.release()  # grants `granted` ...
    granted.cancel()  # ... which is cancelled before it runs
    await settle()
    assert granted.cancelled()
    assert after.done()  # the permit went on to the next waiter


def test_a_limit_needs_a_permit() -> None:
    with pytest.raises(ValueError, match="at least one permit"):
        FairLimit(0)
