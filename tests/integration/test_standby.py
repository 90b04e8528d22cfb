"""Standbys (docs/standby.md): a killed replica's replacement is its slot's pre-created standby."""

from __future__ import annotations

from pathlib import Path

import aiodocker
import pytest

from orchestrator.labels import LABEL_STACK
from orchestrator.model.observed import ContainerState
from tests.integration.orchestrator_harness import Running, engine_calls
from tests.integration.test_reconciler import orch, service, stack_yaml  # noqa: F401 - fixture

pytestmark = pytest.mark.integration


async def standbys(orch: Running, stack: str) -> list[ContainerState]:
    return [c for c in await orch.containers(stack) if c.is_standby]


async def wait_standbys(orch: Running, stack: str, count: int) -> list[ContainerState]:
    async def ready() -> list[ContainerState] | None:
        found = await standbys(orch, stack)
        return found if len(found) == count else None

    return await orch.wait_for(ready, 20, f"{count} standbys")


async def test_a_killed_replica_is_replaced_by_its_standby(
    orch: Running, stack_name: str, tmp_path: Path, docker: aiodocker.Docker
) -> None:
    await orch.deploy(stack_name, stack_yaml(service("web", "sleep 600", replicas=2)), tmp_path)
    running = await orch.wait_running(stack_name, "web", 2)
    before = {c.key.slot: c for c in await wait_standbys(orch, stack_name, 2)}
    assert sorted(before) == [1, 2]
    victim = running[0]
    await docker.containers.container(victim.id).kill(signal="SIGKILL")

    async def replaced() -> list[ContainerState] | None:
        found = [c for c in await orch.running(stack_name, "web") if c.key.slot == victim.key.slot]
        return found if found and found[0].id != victim.id else None

    (replacement,) = await orch.wait_for(replaced, 20, "a replacement in the killed slot")
    assert replacement.id == before[victim.key.slot].id, "the standby is started, not a new container"
    after = {c.key.slot: c for c in await wait_standbys(orch, stack_name, 2)}
    assert after[victim.key.slot].id != replacement.id, "a new standby is made for the slot"
    assert after[2].id == before[2].id, "the other slot's standby is left alone"
    # The standby's task is published from `starting`: never as new → created.
    started = [e for e in orch.task_events(stack_name) if e.get("task_id") == replacement.task_id]
    assert [(e["from"], e["to"]) for e in started][:2] == [("new", "starting"), ("starting", "running")]
    standby_tasks = {c.task_id for c in after.values()} | {before[2].task_id}
    assert not [e for e in orch.task_events(stack_name) if e.get("task_id") in standby_tasks]
    # ps shows the tasks, not the standbys
    rows = await orch.controller.tasks(stack_name)
    assert not {r.container_id for r in rows} & {c.id for c in after.values()}
    assert replacement.id in {r.container_id for r in rows}


async def quiet(orch: Running) -> bool:
    return orch.reconciler.idle and not orch.reconciler._executor.busy()  # noqa: SLF001


async def test_a_replacement_costs_the_engine_its_start_its_standby_and_slot_lists(
    orch: Running, stack_name: str, tmp_path: Path, docker: aiodocker.Docker
) -> None:
    """Issue 18: what a replacement costs the engine does not grow with anything: the standby's
    start, the next standby's create, and a list of the one slot after each of the death and
    the two actions (the events of our own create and start add none, and the death's facts
    need no inspect). Counted through `orchestrator_engine_calls_total`; the test's own waits
    go through a client of their own."""
    await orch.deploy(stack_name, stack_yaml(service("web", "sleep 600", replicas=3)), tmp_path)
    running = await orch.wait_running(stack_name, "web", 3)
    await wait_standbys(orch, stack_name, 3)
    await orch.wait_for(lambda: quiet(orch), 20, "the loop at rest")
    before = engine_calls()
    victim = running[1]
    await docker.containers.container(victim.id).kill(signal="SIGKILL")
    mine = {"label": [f"{LABEL_STACK}={stack_name}"]}

    async def replaced_and_spare_again() -> bool:
        listed = await docker.containers.list(all=True, filters=mine)
        states = [c["State"] for c in listed if c["Id"] != victim.id]
        return states.count("running") == 3 and states.count("created") == 3

    await orch.wait_for(replaced_and_spare_again, 20, "the replacement and its slot's new standby")
    await orch.wait_for(lambda: quiet(orch), 20, "the loop at rest")
    spent = {kind: count - before[kind] for kind, count in engine_calls().items() if count > before[kind]}
    assert spent.pop("start") == 1 and spent.pop("create") == 1, spent
    assert spent.pop("inspect", 0) == 0, spent
    # after the death, the start's end and the standby's end (the `kill` event asks for none)
    assert spent.pop("slot_list") <= 3, spent
    assert spent.pop("list", 0) <= 1, spent  # the periodic resync may fall in between
    assert not spent, spent


async def test_remove_leaves_no_standby(
    orch: Running, stack_name: str, tmp_path: Path, docker: aiodocker.Docker
) -> None:
    await orch.deploy(stack_name, stack_yaml(service("web", "sleep 600", replicas=2)), tmp_path)
    await orch.wait_running(stack_name, "web", 2)
    await wait_standbys(orch, stack_name, 2)
    await orch.controller.remove(stack_name)
    flt = {"label": [f"{LABEL_STACK}={stack_name}"]}
    assert await docker.containers.list(all=True, filters=flt) == []


async def test_scale_down_removes_the_dropped_slots_standbys(orch: Running, stack_name: str, tmp_path: Path) -> None:
    await orch.deploy(stack_name, stack_yaml(service("web", "sleep 600", replicas=3)), tmp_path)
    await orch.wait_running(stack_name, "web", 3)
    await wait_standbys(orch, stack_name, 3)
    await orch.controller.scale(stack_name, {"web": 1})
    (left,) = await wait_standbys(orch, stack_name, 1)
    assert left.key.slot == 1


async def test_condition_none_gets_no_standby(orch: Running, stack_name: str, tmp_path: Path) -> None:
    """Beside a service that gets its standby (so the passes that would make one have run)."""
    services = service("web", "sleep 600") + service("once", "sleep 600", restart="condition: none\n")
    await orch.deploy(stack_name, stack_yaml(services), tmp_path)
    await orch.wait_running(stack_name, "once", 1)
    (made,) = await wait_standbys(orch, stack_name, 1)
    assert made.key.service == "web"
