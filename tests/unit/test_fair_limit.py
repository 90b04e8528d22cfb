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
    limit.release(SlotKey("a", "s", 0))  # grants `granted` ...
    granted.cancel()  # ... which is cancelled before it runs
    await settle()
    assert granted.cancelled()
    assert after.done()  # the permit went on to the next waiter


def test_a_limit_needs_a_permit() -> None:
    with pytest.raises(ValueError, match="at least one permit"):
        FairLimit(0)


class Held:
    """Work items that each hold their permit until finished one by one: who holds what, when.
    Used as `async with Held(...) as h`: whatever is left is cancelled at the end."""

    def __init__(self, permits: int, yield_share: int | None = None) -> None:
        self.limit = FairLimit(permits, yield_share)
        self.holding: set[SlotKey] = set()
        self._done: dict[SlotKey, asyncio.Event] = {}
        self.tasks: dict[SlotKey, asyncio.Task[None]] = {}

    async def __aenter__(self) -> Held:
        return self

    async def __aexit__(self, *_: object) -> None:
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    def add(self, key: SlotKey, urgency: Urgency = Urgency.BULK) -> None:
        self._done[key] = asyncio.Event()
        self.tasks[key] = asyncio.create_task(self._work(key, urgency))

    async def fill(self, stack: str, count: int, urgency: Urgency = Urgency.BULK) -> None:
        """`count` work items of `stack` (slots 1…count), queued and granted what they can."""
        for slot in range(1, count + 1):
            self.add(SlotKey(stack, "s", slot), urgency)
        await settle()

    async def _work(self, key: SlotKey, urgency: Urgency) -> None:
        async with self.limit.hold(key, urgency):
            self.holding.add(key)
            await self._done[key].wait()
            self.holding.discard(key)

    async def finish(self, *keys: SlotKey) -> None:
        for key in keys:
            self._done[key].set()
        await settle()

    def of(self, stack: str) -> list[SlotKey]:
        return sorted((k for k in self.holding if k.stack == stack), key=lambda k: (k.service, k.slot))


async def test_a_big_stack_yields_to_a_small_one_until_its_work_is_done() -> None:
    async with Held(permits=8, yield_share=2) as h:
        await h.fill("big", 100)
        assert len(h.of("big")) == 8
        small = SlotKey("small", "s", 1)
        h.add(small)
        await settle()
        await h.finish(h.of("big")[0])  # a permit frees: it goes to the small stack
        assert h.of("small") == [small]
        await h.finish(*h.of("big")[:5])  # the big stack's work in flight drains to its share ...
        assert len(h.of("big")) == 2
        assert h.limit.waiting == 100 - 8  # ... and the permits it freed stay free
        await h.finish(small)  # the small stack is done: the whole bound is big's again
        assert len(h.of("big")) == 8


async def test_every_stack_yields_while_a_restart_waits_or_runs() -> None:
    async with Held(permits=4, yield_share=1) as h:
        await h.fill("big", 20)
        restart = SlotKey("big", "s", 99)
        h.add(restart, Urgency.RESTART)
        await h.finish(h.of("big")[0])
        assert restart in h.holding
        await h.finish(*[k for k in h.of("big") if k != restart])
        assert len(h.of("big")) == 2  # the restart and one bulk create (the share), no more
        await h.finish(restart)
        assert len(h.of("big")) == 4


async def test_two_big_stacks_keep_the_whole_bound_between_them() -> None:
    async with Held(permits=8, yield_share=2) as h:
        await h.fill("a", 50)
        await h.fill("b", 60)
        for turn in range(30):  # whatever finishes, the bound stays full, and both get work in
            await h.finish(h.of("a")[0] if len(h.of("a")) >= len(h.of("b")) else h.of("b")[0])
            assert len(h.holding) == 8
            assert turn < 2 or (h.of("a") and h.of("b"))


async def test_standbys_yield_to_another_stacks_bulk_work() -> None:
    async with Held(permits=4, yield_share=1) as h:
        await h.fill("conv", 10, Urgency.STANDBY)
        assert len(h.of("conv")) == 4
        new = SlotKey("new", "s", 1)
        h.add(new)
        await h.finish(h.of("conv")[0])
        assert h.of("new") == [new]
        await h.finish(*h.of("conv"))
        assert len(h.of("conv")) == 1  # its share while the deploy runs ...
        await h.finish(new)
        assert len(h.of("conv")) == 4  # ... and the whole bound after it


async def test_while_restarts_wait_or_run_one_standby_is_made_in_all_stacks() -> None:
    """One replica died in each of many stacks: the first replaced ones must not take the bound
    for their standbys from the restarts still waiting (issue 18)."""
    async with Held(permits=4) as h:
        for stack in ("a", "b", "c"):
            h.add(SlotKey(stack, "s", 1), Urgency.RESTART)
        await settle()
        for stack in ("a", "b", "c"):
            h.add(SlotKey(stack, "s", 2), Urgency.STANDBY)
            h.add(SlotKey(stack, "s", 3), Urgency.STANDBY)
        await settle()
        standbys = [k for k in h.holding if k.slot > 1]
        assert len(standbys) == 1  # the one free permit, and only one standby in it
        await h.finish(SlotKey("a", "s", 1))
        assert len([k for k in h.holding if k.slot > 1]) == 1  # a restart still runs: still one
        await h.finish(SlotKey("b", "s", 1), SlotKey("c", "s", 1))
        assert len([k for k in h.holding if k.slot > 1]) == 4  # no restart left: the whole bound


async def test_a_cancelled_light_waiter_lets_the_yielding_stack_go_on() -> None:
    async with Held(permits=4, yield_share=1) as h:
        await h.fill("big", 10)
        small = SlotKey("small", "s", 1)
        h.add(small)
        await settle()
        await h.finish(h.of("big")[0])
        await h.finish(*h.of("big"))
        assert len(h.of("big")) == 1 and h.of("small") == [small]
        h.tasks[small].cancel()  # the small stack is removed while its create runs
        await settle()
        assert len(h.of("big")) == 4


async def test_a_deploy_making_its_networks_without_a_permit_is_yielded_to_as_well() -> None:
    """The engine creates a network behind the starts it has in flight: while a deploy makes
    its networks (Executor.ensure_stack_objects), the big stack drains to its share."""
    async with Held(permits=8, yield_share=2) as h:
        await h.fill("big", 50)
        async with h.limit.beside("small"):
            await h.finish(*h.of("big")[:7])
            assert len(h.of("big")) == 2
        await settle()
        assert len(h.of("big")) == 8


def test_a_yield_share_is_within_the_bound() -> None:
    with pytest.raises(ValueError, match="between 1 and 4"):
        FairLimit(4, yield_share=5)
