"""The Swarm backend (orchestrator/swarm/control.py, apply.py, watcher.py) on the 1-node test
Swarm: deploy, update, scale, rollback, logs and rm through the same `Control` the API serves,
and the watcher's messages for each, with Swarm's state and the node kept."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiodocker
import jsonschema
import pytest
import redis.asyncio as aioredis

from orchestrator.publishing import events
from orchestrator.errors import Conflict, UnknownStack, UserError
from orchestrator.publishing.events import Event
from orchestrator.labels import LABEL_SWARM_NAMESPACE
from orchestrator.model.spec import StackSpec
from orchestrator.stackfile import load_stack
from orchestrator.stackfile.limits import Limits
from orchestrator.swarm.apply import ReplicaBudget
from orchestrator.swarm.control import SwarmControl
from orchestrator.engine.swarm import NotAManager, SwarmManager
from orchestrator.swarm.observed_store import ObservedStore
from orchestrator.swarm.watcher import SwarmWatcher
from tests.integration.conftest import BUSYBOX
from tests.swarm.cluster import Cluster
from tests.swarm.stack_objects import WAIT_LIMIT

pytestmark = [pytest.mark.integration, pytest.mark.swarm]

SWARM = Limits(backend="swarm")

STACK = """
services:
  web:
    image: {image}
    command: [sh, -c, "echo hello from $$HOSTNAME; exec sleep 3600"]
    init: true
    stop_grace_period: 1s
    environment: {{VERSION: "{version}"}}
    deploy:
      replicas: {replicas}
      update_config: {{parallelism: 0, monitor: 1s}}
      placement:
        constraints: [node.role == manager]
    networks: [back]
    ports:
      - {{target: 80, published: {port}, mode: host}}
networks:
  back:
    driver: overlay
"""


def stack_file(tmp_path: Path, name: str, *, version: str = "1", replicas: int = 2, port: int = 18080) -> StackSpec:
    path = tmp_path / "stack.yml"
    path.write_text(STACK.format(image=BUSYBOX, version=version, replicas=replicas, port=port))
    return load_stack(path, name=name, limits=SWARM, deploying=True)


class Backend:
    """A SwarmControl and its watcher running, the messages collected."""

    def __init__(self, control: SwarmControl, watcher: SwarmWatcher, messages: list[Event]) -> None:
        self.control = control
        self.watcher = watcher
        self.messages = messages

    async def until(self, check: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT_LIMIT
        while not check():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; messages: {self.messages[-20:]}")
            await asyncio.sleep(0.2)

    def task_messages(self, stack: str, service: str = "web") -> list[Event]:
        return [m for m in self.messages if m.type == "task.state" and m.stack == stack and m.service == service]

    def running(self, stack: str) -> int:
        return sum(view.replicas_running for view in self.control.stacks() if view.name == stack)


@pytest.fixture
async def redis_prefix(redis_client: aioredis.Redis) -> AsyncIterator[str]:
    """A prefix of the test's own; the watcher's state under it is removed afterwards."""
    prefix = f"orchestrator-test-{secrets.token_hex(4)}"
    yield prefix
    keys = [key async for key in redis_client.scan_iter(match=f"{prefix}*")]
    if keys:
        await redis_client.delete(*keys)


@contextlib.asynccontextmanager
async def running_backend(cluster: Cluster, redis: aioredis.Redis, prefix: str) -> AsyncIterator[Backend]:
    """The watcher keeps its state under `prefix` in Redis (observed_store.py): two backends
    given the same prefix are one daemon started twice."""
    manager = SwarmManager.connect(cluster.manager.docker_host)
    messages: list[Event] = []
    store = ObservedStore(redis, prefix)
    watcher = SwarmWatcher(manager, messages.append, store, interval=0.2)
    control = SwarmControl(manager, watcher, messages.append, ReplicaBudget(100, 1000), redis.ping)
    await control.load()
    task = asyncio.create_task(watcher.run())
    try:
        await watcher.refresh()
        yield Backend(control, watcher, messages)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await manager.close()


async def test_deploy_update_scale_rollback_logs_rm(swarm1: Cluster, swarm1_stack: str, swarm1_docker: aiodocker.Docker,
                                                    tmp_path: Path, redis_client: aioredis.Redis,
                                                    redis_prefix: str) -> None:
    stack = swarm1_stack
    async with running_backend(swarm1, redis_client, redis_prefix) as backend:
        control = backend.control
        outcome = await control.deploy(stack_file(tmp_path, stack, replicas=1))
        assert (outcome.result, outcome.changed_services) == ("created", ("web",))
        await backend.until(lambda: backend.running(stack) == 1, "one replica running")
        # /metrics reads the watcher's last relist: the same counts, no Swarm call
        assert [(c.service, c.desired, c.running) for c in control.replica_counts() if c.stack == stack] == [
            ("web", 1, 1)]

        # Named and labelled as `docker stack deploy`: the stack's service, network.
        service = (await swarm1_docker.services.list(filters={"name": [f"{stack}_web"]}))[0]
        assert service["Spec"]["Labels"][LABEL_SWARM_NAMESPACE] == stack
        assert service["Spec"]["TaskTemplate"]["Placement"]["Constraints"] == ["node.role == manager"]
        network = (await swarm1_docker.networks.list(filters={"name": [f"{stack}_back"]}))[0]
        assert (network["Driver"], network["Scope"], network["Attachable"]) == ("overlay", "swarm", False)

        first = backend.task_messages(stack)
        assert first[-1].to_state == "running" and first[-1].swarm_state == "running"
        assert first[-1].node == swarm1.manager.name and first[-1].slot == 1
        schema = jsonschema.Draft202012Validator(events.load_schema())
        for message in first:
            schema.validate(message.message(seq=1, time=time.time()))

        # A redeploy of the same file changes nothing; a changed one rolls the service.
        same = await control.deploy(stack_file(tmp_path, stack, replicas=1))
        assert (same.result, same.changed_services) == ("unchanged", ())
        updated = await control.deploy(stack_file(tmp_path, stack, version="2", replicas=1))
        assert (updated.result, updated.changed_services) == ("updated", ("web",))
        await backend.until(lambda: any(m.type == "update.completed" and m.stack == stack for m in backend.messages),
                            "the rolling update to complete")
        assert any(m.type == "update.started" and m.stack == stack for m in backend.messages)
        assert any(m.to_state == "shutdown" for m in backend.task_messages(stack))

        # Rollback: Swarm's own, to VERSION=1.
        await control.rollback(stack, "web")
        await backend.until(lambda: any(m.type == "update.rolled_back" and m.stack == stack for m in backend.messages),
                            "the rollback to complete")
        spec = (await swarm1_docker.services.inspect(f"{stack}_web"))["Spec"]
        assert "VERSION=1" in spec["TaskTemplate"]["ContainerSpec"]["Env"]

        # Scale, with a host-mode port: one task a node, so the second stays pending (Swarm's rule).
        await control.scale(stack, {"web": 2})
        assert any(m.type == "service.scaled" and m.replicas == 2 for m in backend.messages)
        await backend.until(lambda: any(m.swarm_state == "pending" for m in backend.task_messages(stack)),
                            "the second replica pending: no node has the port free")
        await control.scale(stack, {"web": 1})

        # ps: the current task per slot first, its node and Swarm's state kept. Swarm's
        # orchestrator retires the pending slot 2 a moment after the scale, not within it.
        deadline = time.monotonic() + WAIT_LIMIT
        while True:
            tasks = await control.tasks(stack)
            current = [(t.slot, t.state, t.node) for t in tasks if t.current and t.desired_state == "running"]
            if current == [(1, "running", swarm1.manager.name)] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        assert current == [(1, "running", swarm1.manager.name)]
        assert len(tasks) > 1  # the history of the update and the rollback

        lines = [line async for line in control.logs(stack, "web")]
        assert any("hello from" in line.text and line.slot == 1 for line in lines)

        removed = await control.remove(stack)
        assert removed.removed
        await backend.until(lambda: any(m.to_state == "removed" for m in backend.task_messages(stack)),
                            "the tasks told removed")
        assert not await swarm1_docker.services.list(filters={"label": [f"{LABEL_SWARM_NAMESPACE}={stack}"]})
        assert any(m.type == "stack.removed" and m.stack == stack for m in backend.messages)
        assert stack not in [view.name for view in control.stacks()]
        with pytest.raises(UnknownStack):
            await control.services(stack)


async def test_a_restarted_watcher_tells_nothing_twice(swarm1: Cluster, swarm1_stack: str, tmp_path: Path,
                                                        redis_client: aioredis.Redis, redis_prefix: str) -> None:
    stack = swarm1_stack
    spec = stack_file(tmp_path, stack, replicas=1, port=18081)
    async with running_backend(swarm1, redis_client, redis_prefix) as backend:
        await backend.control.deploy(spec)
        await backend.until(lambda: backend.running(stack) == 1, "one replica running")
        before = backend.task_messages(stack)
    # Nothing on this process's disk: the stack file as deployed is found in Swarm (records.py).
    async with running_backend(swarm1, redis_client, f"{redis_prefix}-elsewhere") as elsewhere:
        assert elsewhere.control.stack_spec(stack) == spec
    async with running_backend(swarm1, redis_client, redis_prefix) as again:
        await again.watcher.refresh()
        assert again.task_messages(stack) == []  # nothing changed while it was away
        await again.control.scale(stack, {"web": 0})
        await again.until(lambda: any(m.to_state == "shutdown" for m in again.task_messages(stack)),
                          "the replica shut down")
        ids = {m.task_id for m in before}
        assert {m.task_id for m in again.task_messages(stack)} <= ids


async def test_errors_name_what_is_wrong(swarm1: Cluster, swarm1_stack: str, tmp_path: Path,
                                        redis_client: aioredis.Redis, redis_prefix: str) -> None:
    stack = swarm1_stack
    async with running_backend(swarm1, redis_client, redis_prefix) as backend:
        with pytest.raises(UnknownStack):
            await backend.control.scale(stack, {"web": 2})
        spec = stack_file(tmp_path, stack, replicas=1, port=18082)
        await backend.control.deploy(spec)
        with pytest.raises(Conflict, match="no previous version"):
            await backend.control.rollback(stack, "web")
        with pytest.raises(UserError, match="over the limit"):
            await backend.control.scale(stack, {"web": 101})


async def test_a_worker_is_no_manager(swarm3: Cluster) -> None:
    worker = swarm3.workers[0]
    manager = SwarmManager.connect(worker.docker_host)
    try:
        with pytest.raises(NotAManager, match="worker, not a manager"):
            await manager.check_manager()
    finally:
        await manager.close()
