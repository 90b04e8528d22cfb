"""The cost of one event does not grow with the stack (issue 18): once a stack is listed, the
passes that follow a death relist that slot only (one list call each, the slot's containers),
while the view the planner and `ps` read stays the whole stack; a deploy, a scale or the
periodic resync list everything again. Over the in-memory backend, counting its list calls."""

from __future__ import annotations

import asyncio
from pathlib import Path

from orchestrator.model.observed import SlotKey
from tests.unit.test_loop import Running, running_loop, stack

REPLICAS = 300


async def quiet(orch: Running) -> None:
    """Until nothing is in flight and no pass has run for a while (0.1 s: the fake is instant)."""
    while True:
        await orch.until(lambda: not orch.loop.executor.busy(), "nothing in flight")
        passes = orch.loop.reconciler.passes
        await asyncio.sleep(0.1)
        if orch.loop.reconciler.passes == passes and not orch.loop.executor.busy():
            return


async def test_a_death_in_a_big_stack_relists_its_slot_only(tmp_path: Path) -> None:
    async with running_loop(tmp_path) as orch:
        await orch.loop.controller.deploy(stack(tmp_path, replicas=REPLICAS))
        await orch.until(lambda: len(orch.running()) == REPLICAS, "all running")
        await orch.until(lambda: len(orch.backend.containers) == 2 * REPLICAS, "and every standby made")
        await orch.until(lambda: "service.converged" in orch.types(), "converged")
        await quiet(orch)  # the converge's last passes (they list the whole stack) are over
        victim = orch.running()[41]
        key = victim.key
        passes = orch.loop.reconciler.passes
        orch.backend.lists.clear()

        orch.backend.die(victim.id, 3)
        await orch.until(lambda: any(c.key == key and c.id != victim.id for c in orch.running()), "replaced")
        await orch.until(lambda: len(orch.backend.containers) == 2 * REPLICAS + 1, "its standby made again")
        await orch.until(lambda: not orch.loop.executor.busy(), "nothing in flight")

        lists = list(orch.backend.lists)
        assert lists and all(asked == ("app", key) for asked in lists), lists  # never the whole stack
        assert len(lists) <= orch.loop.reconciler.passes - passes  # at most one call per pass
        view = orch.loop.reconciler.observed["app"]  # still the whole stack, and the death in it
        assert sum(c.status == "running" for c in view) == REPLICAS and len(view) == REPLICAS + 1

        orch.backend.lists.clear()
        await orch.loop.controller.scale("app", {"web": REPLICAS - 1})
        await orch.until(lambda: len(orch.running()) == REPLICAS - 1, "scaled down")
        assert ("app", None) in orch.backend.lists  # a scale lists the whole stack


async def test_the_periodic_resync_lists_every_stack_whole(tmp_path: Path) -> None:
    async with running_loop(tmp_path) as orch:
        await orch.loop.controller.deploy(stack(tmp_path, replicas=3))
        await orch.until(lambda: len(orch.backend.containers) == 6, "3 replicas and their standbys")
        await quiet(orch)  # the last standby's own pass is over (it lists its slot)
        orch.backend.lists.clear()
        orch.loop.reconciler.listing.touch("app", SlotKey("app", "web", 1))
        orch.loop.reconciler._next_resync = 0.0  # the resync is due
        orch.loop.reconciler.mark_slot_dirty(SlotKey("app", "web", 1))
        await orch.until(lambda: orch.backend.lists, "a pass")
        assert orch.backend.lists[0] == ("app", None)


async def test_events_that_bring_no_news_ask_for_no_pass(tmp_path: Path) -> None:
    """A signal, and the create and start events of our own actions, cost no engine list; a
    start that is not ours does, even of a container we started before it died."""
    async with running_loop(tmp_path) as orch:
        await orch.loop.controller.deploy(stack(tmp_path, replicas=3))
        await orch.until(lambda: len(orch.backend.containers) == 6, "3 replicas and their standbys")
        await quiet(orch)
        victim = orch.running()[0]
        passes = orch.loop.reconciler.passes
        orch.backend._send(victim, "kill")  # noqa: SLF001 - a signal it outlives (no ingress here)
        await asyncio.sleep(0.1)
        assert orch.loop.reconciler.passes == passes

        await orch.loop.controller.scale("app", {"web": 4})  # our create and start of slot 4 …
        await orch.until(lambda: len(orch.running()) == 4, "scaled up")
        await quiet(orch)
        fourth = next(c for c in orch.running() if c.key.slot == 4)
        orch.backend.lists.clear()
        # the start's event came while the slot was busy, so its answer is still remembered
        orch.loop.executor._answer(fourth.id, "start")  # noqa: SLF001
        orch.backend.die(fourth.id, 0)  # … and after its death, someone else's start of it
        await orch.until(lambda: orch.backend.lists, "the death's pass")
        await quiet(orch)
        orch.backend.lists.clear()
        orch.backend.containers[fourth.id] = fourth
        orch.backend._send(fourth, "start")  # noqa: SLF001
        await orch.until(lambda: ("app", fourth.key) in orch.backend.lists, "a pass for the start nobody answered")


async def test_a_metrics_scrape_counts_replicas_without_asking_the_engine(tmp_path: Path) -> None:
    """`/metrics` reads the replica counts of the last passes: a scrape every few seconds with
    hundreds of stacks would otherwise list every stack's containers each time."""
    async with running_loop(tmp_path) as orch:
        await orch.loop.controller.deploy(stack(tmp_path, replicas=3))
        await orch.loop.controller.deploy(stack(tmp_path, replicas=2, name="two"))
        await orch.until(lambda: len(orch.backend.containers) == 10, "5 replicas and their standbys")
        await quiet(orch)
        orch.backend.lists.clear()
        counts = orch.loop.controller.replica_counts()
        assert [(c.stack, c.service, c.desired, c.running) for c in counts] == [
            ("app", "web", 3, 3), ("two", "web", 2, 2)]
        assert orch.backend.lists == []
        await orch.loop.controller.scale("app", {"web": 1})
        await orch.until(lambda: len(orch.running()) == 3, "scaled down")
        await quiet(orch)
        assert [(c.desired, c.running) for c in orch.loop.controller.replica_counts()][0] == (1, 1)
