"""Issue 4's proof with the real daemon process, engine and Redis: what a subscriber receives.

Every message read here is validated against the JSON Schema and its `seq` must follow the
previous one's by exactly one (tests/integration/event_log.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import pytest
import redis.asyncio as aioredis

from orchestrator.labels import LABEL_SLOT, LABEL_STACK, container_labels
from orchestrator.model import SlotKey
from tests.integration.conftest import BUSYBOX, REDIS_URL, remove_stack_objects
from tests.integration.daemon_process import DaemonProcess
from tests.integration.event_log import (
    STARTED,
    STOPPED,
    Lifecycle,
    StreamLog,
    is_,
    kinds,
    lifecycles,
    service_counts,
)
from tests.integration.private_redis import PrivateRedis, free_port

pytestmark = pytest.mark.integration


def stack(replicas: int) -> str:
    # `trap` makes the stop quick (sleep as PID 1 would ignore SIGTERM until the grace period).
    return (
        "services:\n"
        "  web:\n"
        f"    image: {BUSYBOX}\n"
        "    command: [\"sh\", \"-c\", \"trap 'exit 0' TERM; sleep 600 & wait\"]\n"
        "    stop_grace_period: 2s\n"
        f"    deploy:\n      replicas: {replicas}\n"
    )


@pytest.fixture
async def redis_keys(redis_client: aioredis.Redis, redis_prefix: str) -> AsyncIterator[str]:
    """The test's prefix; its keys on the shared Redis are deleted afterwards."""
    yield redis_prefix
    keys = [key async for key in redis_client.scan_iter(f"{redis_prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


@pytest.fixture
async def daemon(tmp_path: Path, redis_keys: str, stack_name: str) -> AsyncIterator[DaemonProcess]:
    # Depends on stack_name so that the daemon stops before the stack's objects are cleaned up.
    process = DaemonProcess(tmp_path / "state", redis_keys, redis_url=REDIS_URL)
    await process.start()
    try:
        yield process
    finally:
        await process.stop()


@pytest.fixture
def log(redis_client: aioredis.Redis, redis_keys: str) -> StreamLog:
    return StreamLog(redis_client, redis_keys)


async def replica(docker: aiodocker.Docker, stack_name: str, slot: int) -> str:
    """The id of the running container in `slot`."""
    found = await docker.containers.list(
        filters={"label": [f"{LABEL_STACK}={stack_name}", f"{LABEL_SLOT}={slot}"], "status": ["running"]}
    )
    assert len(found) == 1, found
    return str(found[0]["Id"])


async def kill_replica(docker: aiodocker.Docker, stack_name: str, slot: int) -> str:
    container_id = await replica(docker, stack_name, slot)
    await docker.containers.container(container_id).kill(signal="SIGKILL")
    return container_id


def assert_started(lives: dict[str, Lifecycle], slots: list[int]) -> None:
    assert sorted(life.slot for life in lives.values()) == slots
    for life in lives.values():
        assert life.transitions == STARTED, life


def assert_replaced(phase: list[dict], killed: str, slot: int, service_replicas: int) -> None:
    """The messages of one SIGKILLed replica being replaced, exactly and in order."""
    assert kinds(phase) == [
        "running→failed", "service.degraded",
        "new→created", "created→starting", "starting→running", "service.converged",
    ]  # fmt: skip
    died, *_ = phase
    assert (died["slot"], died["container_id"], died["exit_code"]) == (slot, killed, 137)
    assert service_counts(phase, "web") == [
        ("service.degraded", service_replicas - 1, service_replicas),
        ("service.converged", service_replicas, service_replicas),
    ]
    (replacement,) = [life for life in lifecycles(phase).values() if life.task_id != died["task_id"]]
    assert replacement.slot == slot and killed not in replacement.container_ids


def assert_service_came_up(phase: list[dict], replicas: int, first_running: int) -> None:
    """degraded (with a rising running count) until converged at `replicas`."""
    counts = service_counts(phase, "web")
    assert counts[-1] == ("service.converged", replicas, replicas)
    assert all(kind == "service.degraded" for kind, _, _ in counts[:-1])
    running = [r for _, r, _ in counts]
    assert running[0] == first_running and running == sorted(running) and len(set(running)) == len(running)


async def test_deploy_kill_scale_remove_publish_each_transition_in_order(
    daemon: DaemonProcess, log: StreamLog, docker: aiodocker.Docker, stack_name: str,
    redis_client: aioredis.Redis, redis_keys: str,
) -> None:  # fmt: skip
    live: list[dict] = []
    listener = asyncio.create_task(subscribe(redis_client, f"{redis_keys}:events:{stack_name}", live))
    await asyncio.sleep(0.2)
    try:
        await daemon.deploy(stack_name, stack(2))
        deploy = await log.take_until(is_("service.converged", replicas=2))
        assert deploy[0] == deploy[0] | {"type": "stack.deployed", "stack": stack_name, "reason": "created"}
        assert_started(lifecycles(deploy), [1, 2])
        assert_service_came_up(deploy, 2, first_running=0)

        killed = await kill_replica(docker, stack_name, 1)
        assert_replaced(await log.take_until(is_("service.converged", replicas=2)), killed, 1, 2)

        await daemon.request("POST", f"/v1/stacks/{stack_name}/scale", json={"web": 4})
        up = await log.take_until(is_("service.converged", replicas=4))
        assert up[0] == up[0] | {"type": "service.scaled", "service": "web", "replicas": 4}
        assert_started(lifecycles(up), [3, 4])
        assert_service_came_up(up, 4, first_running=2)

        await daemon.request("POST", f"/v1/stacks/{stack_name}/scale", json={"web": 1})
        down = await log.take_phase(
            lambda phase: [life.transitions for life in lifecycles(phase).values()] == [STOPPED] * 3
        )
        assert kinds(down[:2]) == ["service.scaled", "service.converged"]
        assert service_counts(down, "web") == [("service.converged", 1, 1)]
        assert sorted((life.slot, life.exit_codes) for life in lifecycles(down).values()) == [
            (2, [0, None]), (3, [0, None]), (4, [0, None])
        ], "the highest slots go, each stopped cleanly (exit 0 from its TERM trap)"

        status, body = await daemon.request("DELETE", f"/v1/stacks/{stack_name}")
        assert status == 200, body
        removed = await log.take_until(is_("stack.removed", stack=stack_name))
        assert kinds(removed)[-1] == "stack.removed"
        by_slot = sorted((life.slot, life.transitions, life.exit_codes) for life in lifecycles(removed).values())
        assert by_slot == [(1, [("failed", "removed")], [None]), (1, STOPPED, [0, None])], "the killed one, its replacement"
        assert len(removed) == 4

        await asyncio.sleep(1.0)
        assert not await log.poll(), "nothing after stack.removed"
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
    assert [m["seq"] for m in log.messages] == list(range(1, len(log.messages) + 1))
    assert live == log.messages, "the stack's channel carries what the stream holds, in order"


async def subscribe(client: aioredis.Redis, channel: str, into: list[dict]) -> None:
    async with client.pubsub() as pubsub:
        await pubsub.subscribe(channel)
        async for reply in pubsub.listen():
            if reply["type"] == "message":
                into.append(json.loads(reply["data"]))


async def test_a_stack_of_another_daemon_on_the_engine_is_not_reported(
    daemon: DaemonProcess, log: StreamLog, docker: aiodocker.Docker, stack_name: str
) -> None:
    """Events of every labelled container reach the daemon; only its own stacks are its news."""
    other = f"{stack_name}-other"
    labels = container_labels(SlotKey(other, "web", 1), "h", "foreign", time.time_ns())
    try:
        foreign = await docker.containers.create(
            {"Image": BUSYBOX, "Cmd": ["sleep", "600"], "Labels": labels}, name=f"{other}_web.1.foreign"
        )
        await foreign.start()
        await foreign.kill(signal="SIGKILL")
        await foreign.delete(force=True)
        await daemon.deploy(stack_name, stack(1))
        await log.take_until(is_("service.converged", replicas=1))
        assert {m.get("stack") for m in log.messages} == {stack_name}
    finally:
        await remove_stack_objects(docker, other)
