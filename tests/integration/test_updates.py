"""Rolling updates and rollbacks (issue 7) against the real engine, judged from the events."""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import UserError
from tests.integration.conftest import BUSYBOX
from tests.integration.orchestrator_harness import Running, running_orchestrator

pytestmark = pytest.mark.integration


def web(version: str, *, replicas: int, update: str, command: str = "sleep 600", restart: str = "") -> str:
    """A service whose `VERSION` changes its spec hash; `update` is the update_config body."""
    return textwrap.dedent(f"""\
        services:
          web:
            image: {BUSYBOX}
            command: ["sh", "-c", {command!r}]
            environment:
              VERSION: "{version}"
            stop_grace_period: 1s
            deploy:
              replicas: {replicas}
              {restart}
              update_config:
        """) + textwrap.indent(textwrap.dedent(update), " " * 8)


@pytest.fixture
async def orch(tmp_path: Path, stack_name: str) -> AsyncIterator[Running]:
    async with running_orchestrator(tmp_path / "state", backoff_base=0.3, backoff_cap=2.0, healthy_run=3.0) as running:
        yield running


def at(event: dict[str, Any]) -> float:
    return datetime.fromisoformat(event["time"].replace("Z", "+00:00")).timestamp()


def of_type(orch: Running, kind: str) -> list[dict[str, Any]]:
    return [e for e in orch.events if e["type"] == kind]


async def hashes_by_task(orch: Running, stack: str) -> dict[str, str]:
    return {c.task_id: c.spec_hash for c in await orch.containers(stack)}


async def update_state(orch: Running, stack: str, state: str) -> bool:
    views = await orch.controller.services(stack)
    return any(v.update_state == state for v in views)


async def deploy_and_update(orch: Running, stack: str, tmp_path: Path, replicas: int, update: str,
                            **new: str) -> str:
    """v1 running, then v2 deployed; returns v1's spec hash."""
    await orch.deploy(stack, web("1", replicas=replicas, update=update), tmp_path)
    running = await orch.wait_running(stack, "web", replicas)
    orch.events.clear()
    await orch.deploy(stack, web("2", replicas=replicas, update=update, **new), tmp_path)
    return running[0].spec_hash


async def test_parallelism_and_delay_are_respected(orch: Running, stack_name: str, tmp_path: Path) -> None:
    old = await deploy_and_update(orch, stack_name, tmp_path, 4, "parallelism: 2\ndelay: 2s\nmonitor: 0.5s\n")
    await orch.wait_for(lambda: update_state(orch, stack_name, "completed"), 60, "update completed")
    hashes = await hashes_by_task(orch, stack_name)
    created = sorted((at(e), e["slot"]) for e in orch.task_events(stack_name, "created")
                     if hashes.get(e["task_id"]) not in (None, old))
    running = sorted(at(e) for e in orch.task_events(stack_name, "running") if hashes.get(e["task_id"]) != old)
    assert [slot for _, slot in created] in ([1, 2, 3, 4], [2, 1, 3, 4], [1, 2, 4, 3], [2, 1, 4, 3])
    first_batch_running = max(running[:2])
    assert created[2][0] >= first_batch_running + 2.0, "the second batch waits for the delay"
    assert created[1][0] < first_batch_running, "a batch's slots start together"
    (started,) = of_type(orch, "update.started")
    (completed,) = of_type(orch, "update.completed")
    assert started["replicas"] == completed["replicas"] == 4
    assert at(completed) >= max(running) + 0.5, "one more monitor period after the last slot"
    assert {c.spec_hash for c in await orch.running(stack_name, "web")} != {old}


@pytest.mark.parametrize("order", ["start-first", "stop-first"])
async def test_order(orch: Running, stack_name: str, tmp_path: Path, order: str) -> None:
    old = await deploy_and_update(orch, stack_name, tmp_path, 1, f"order: {order}\nmonitor: 0.2s\n")
    await orch.wait_for(lambda: update_state(orch, stack_name, "completed"), 60, "update completed")
    hashes = await hashes_by_task(orch, stack_name)
    old_down = next(at(e) for e in orch.task_events(stack_name, "shutdown") if hashes[e["task_id"]] == old)
    new_up = next(at(e) for e in orch.task_events(stack_name, "running") if hashes[e["task_id"]] != old)
    new_created = next(at(e) for e in orch.task_events(stack_name, "created") if hashes[e["task_id"]] != old)
    if order == "start-first":
        assert new_up <= old_down, "the old replica stops only after its replacement runs"
    else:
        assert old_down <= new_created, "the old replica is stopped before its replacement is created"


async def test_a_broken_update_rolls_back(orch: Running, stack_name: str, tmp_path: Path) -> None:
    old = await deploy_and_update(orch, stack_name, tmp_path, 3, "failure_action: rollback\nmonitor: 2s\n",
                                  command="exit 1")
    await orch.wait_for(lambda: update_state(orch, stack_name, "rolled_back"), 60, "rolled back")
    running = await orch.wait_running(stack_name, "web", 3)
    assert {c.spec_hash for c in running} == {old}
    (rollback,) = of_type(orch, "update.rollback_started")
    assert "exit code 1" in rollback["reason"]
    assert of_type(orch, "update.rolled_back") and not of_type(orch, "update.completed")
    assert orch.controller.stack_spec(stack_name).services["web"].environment["VERSION"] == "1"


async def test_a_missing_image_pauses_and_says_where_it_stands(orch: Running, stack_name: str, tmp_path: Path) -> None:
    await orch.deploy(stack_name, web("1", replicas=3, update="monitor: 1s\n"), tmp_path)
    old = (await orch.wait_running(stack_name, "web", 3))[0].spec_hash
    broken = web("1", replicas=3, update="monitor: 1s\n").replace(BUSYBOX, "orchestrator-test/missing:nope")
    await orch.deploy(stack_name, broken, tmp_path)
    await orch.wait_for(lambda: update_state(orch, stack_name, "paused"), 60, "paused")
    (view,) = await orch.controller.services(stack_name)
    assert "rejected" in view.update_message and f"slots 2,3 on {old}" in view.update_message
    (paused,) = of_type(orch, "update.paused")
    assert "slot 1" in paused["reason"]
    assert [c.key.slot for c in await orch.running(stack_name, "web")] == [2, 3], "nothing more replaced"
    # and by hand, back to what ran before
    await orch.controller.rollback(stack_name, "web")
    await orch.wait_for(lambda: update_state(orch, stack_name, "rolled_back"), 60, "rolled back")
    assert {c.spec_hash for c in await orch.wait_running(stack_name, "web", 3)} == {old}


async def test_max_failure_ratio(orch: Running, stack_name: str, tmp_path: Path) -> None:
    update = "max_failure_ratio: 0.5\nmonitor: 5s\n"
    await deploy_and_update(orch, stack_name, tmp_path, 4, update, command="exit 1",
                            restart="restart_policy: {condition: none}")
    await orch.wait_for(lambda: update_state(orch, stack_name, "paused"), 60, "paused")
    (paused,) = of_type(orch, "update.paused")
    assert paused["reason"].startswith("3 of 4 updated tasks failed"), "1/4 and 2/4 are not above 0.5"
    running = await orch.running(stack_name, "web")
    assert [c.key.slot for c in running] == [4]


async def test_rollback_without_a_previous_version_is_refused(orch: Running, stack_name: str, tmp_path: Path) -> None:
    await orch.deploy(stack_name, web("1", replicas=1, update="monitor: 0s\n"), tmp_path)
    with pytest.raises(UserError, match="no previous version"):
        await orch.controller.rollback(stack_name, "web")
