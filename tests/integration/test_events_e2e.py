"""Issue 4's proof with the real daemon process, engine and Redis: what a subscriber receives.

Every message read here is validated against the JSON Schema and its `seq` must follow the
previous one's by exactly one (tests/integration/event_log.py).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import pytest
import redis.asyncio as aioredis

from orchestrator.labels import LABEL_SLOT, LABEL_STACK, container_labels
from orchestrator.model.observed import SlotKey
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
from tests.integration.standbys import wait_standbys

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


async def kill_replica(docker: aiodocker.Docker, stack_name: str, slot: int, replicas: int = 2) -> str:
    """SIGKILL the replica in `slot` once all `replicas` slots have their standby."""
    await wait_standbys(docker, stack_name, replicas)
    container_id = await replica(docker, stack_name, slot)
    await docker.containers.container(container_id).kill(signal="SIGKILL")
    return container_id


def assert_started(lives: dict[str, Lifecycle], slots: list[int]) -> None:
    assert sorted(life.slot for life in lives.values()) == slots
    for life in lives.values():
        assert life.transitions == STARTED, life


def assert_replaced(phase: list[dict], killed: str, slot: int, service_replicas: int) -> None:
    """The messages of one SIGKILLed replica being replaced, exactly and in order: the
    replacement is the slot's standby, a task from its start (docs/standby.md)."""
    assert kinds(phase) == [
        "running→failed", "service.degraded",
        "new→starting", "starting→running", "service.converged",
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
    subscribed = asyncio.Event()
    listener = asyncio.create_task(subscribe(redis_client, f"{redis_keys}:events:{stack_name}", live, subscribed))
    await subscribed.wait()
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


async def subscribe(client: aioredis.Redis, channel: str, into: list[dict], subscribed: asyncio.Event) -> None:
    async with client.pubsub() as pubsub:
        await pubsub.subscribe(channel)
        async for reply in pubsub.listen():
            if reply["type"] == "subscribe":
                subscribed.set()
            elif reply["type"] == "message":
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


async def test_seq_continues_without_gap_across_daemon_restarts(
    daemon: DaemonProcess, log: StreamLog, docker: aiodocker.Docker, stack_name: str
) -> None:
    """SIGTERM: the queue is flushed and the seq file saved. SIGKILL: what was queued and not yet
    sent is lost, but it never had a number; the stream's tail covers a seq file that lags."""
    await daemon.deploy(stack_name, stack(2))
    await log.take_until(is_("service.converged", replicas=2))

    assert await daemon.stop() == 0
    saved = int((daemon.state_dir / "event-seq").read_text())
    assert saved == log.messages[-1]["seq"], "a clean stop saves the last seq"
    await daemon.start()
    # A restarted daemon states where each service stands, then carries on.
    assert kinds(await log.take_until(is_("service.converged"))) == ["service.converged"]
    killed = await kill_replica(docker, stack_name, 1)
    assert_replaced(await log.take_until(is_("service.converged", replicas=2)), killed, 1, 2)

    killed = await kill_replica(docker, stack_name, 2)
    await log.take_until(is_("task.state", container_id=killed, to="failed"), settle=0)
    await daemon.kill()  # within the seq file's write interval of that message, most likely
    last_before = log.messages[-1]["seq"]
    await daemon.start()
    # Whatever the crash cut off, numbering goes on from the stream's tail: no gap, no repeat.
    await log.take_until(lambda m: m["seq"] > last_before and m["type"] == "service.converged")
    assert await wait_for_replicas(docker, stack_name, 2)
    assert [m["seq"] for m in log.messages] == list(range(1, len(log.messages) + 1))


async def wait_for_replicas(docker: aiodocker.Docker, stack_name: str, count: int) -> bool:
    async with asyncio.timeout(30):
        while len(await docker.containers.list(filters={"label": [f"{LABEL_STACK}={stack_name}"]})) != count:
            await asyncio.sleep(0.1)
    return True


async def test_a_redis_outage_delays_messages_but_loses_none(
    tmp_path: Path, docker: aiodocker.Docker, stack_name: str
) -> None:
    """The daemon keeps replacing replicas while its Redis is down; when Redis is back (empty:
    it keeps nothing on disk) the stream holds every message since the outage, in order."""
    server = PrivateRedis(free_port())
    await server.start()
    client = aioredis.Redis.from_url(server.url, decode_responses=True)
    daemon = DaemonProcess(tmp_path / "state", "outage", redis_url=server.url)
    await daemon.start()
    try:
        log = StreamLog(client, "outage")
        await daemon.deploy(stack_name, stack(2))
        await log.take_until(is_("service.converged", replicas=2))
        before = log.messages[-1]["seq"]

        server.stop()
        killed = []
        for slot in (1, 2):
            killed.append(await kill_replica(docker, stack_name, slot))
            await wait_replaced(docker, stack_name, slot, killed[-1])
        await server.start()  # same port, empty

        await client.aclose()
        client = aioredis.Redis.from_url(server.url, decode_responses=True)
        log = StreamLog(client, "outage")
        await log.take_phase(lambda phase: len(service_counts(phase, "web")) == 4, timeout=30)
        assert log.messages[0]["seq"] == before + 1, "numbering went on where it stopped"
        assert_replaced(log.messages[:5], killed[0], 1, 2)
        assert_replaced(log.messages[5:], killed[1], 2, 2)
    finally:
        await daemon.stop()
        await client.aclose()
        server.stop()


async def wait_replaced(docker: aiodocker.Docker, stack_name: str, slot: int, killed: str) -> None:
    """Until another container runs in `slot` (checked with the engine, not with events)."""
    async with asyncio.timeout(30):
        while True:
            try:
                if await replica(docker, stack_name, slot) != killed:
                    return
            except AssertionError:
                pass  # none running yet
            await asyncio.sleep(0.1)


async def test_events_since_catches_up_then_follows_the_daemon_without_gap_or_duplicate(
    daemon: DaemonProcess, log: StreamLog, docker: aiodocker.Docker, stack_name: str
) -> None:
    await daemon.deploy(stack_name, stack(3))
    await log.take_until(is_("service.converged", replicas=3))
    since = 3
    await kill_replica(docker, stack_name, 1, replicas=3)  # the daemon is busy while the command starts
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", "events", "--since", str(since), "--json",
        env=daemon.env, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    printed: list[dict] = []
    reader = asyncio.create_task(read_json_lines(command, printed))
    try:
        for slot in (2, 3):
            await log.take_until(is_("service.converged", replicas=3))
            await kill_replica(docker, stack_name, slot, replicas=3)
        await daemon.request("POST", f"/v1/stacks/{stack_name}/scale", json={"web": 4})
        await log.take_until(is_("service.converged", replicas=4))
        last = log.messages[-1]["seq"]
        async with asyncio.timeout(20):
            while not reader.done() and (not printed or printed[-1]["seq"] < last):
                await asyncio.sleep(0.05)
    finally:
        command.terminate()
        await command.wait()
        await reader
    assert [m["seq"] for m in printed] == list(range(since, last + 1))
    assert printed == log.messages[since - 1 :]


async def read_json_lines(process: asyncio.subprocess.Process, into: list[dict]) -> None:
    assert process.stdout is not None
    while line := await process.stdout.readline():
        into.append(json.loads(line))
