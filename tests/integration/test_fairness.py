"""No stack waits on another's bulk work (issue 18), against the real engine and daemon.

The daemon runs with a creation bound of 2, so a 30-replica deploy queues 28 creates. Order
only, read from the daemon's own stream of task.state messages (no timings): a 1-replica stack
deployed right after it is created after a few of the big stack's creates, not after all of
them; a replica of a third stack killed meanwhile is started again (its standby) before the big
stack's queue, not after it.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import pytest
import redis.asyncio as aioredis

from tests.integration.conftest import delete_prefixed, remove_stack_objects
from tests.integration.daemon_process import DaemonProcess
from tests.integration.event_log import Message, StreamLog
from tests.integration.standbys import wait_standbys

pytestmark = pytest.mark.integration

BOUND = 2
BIG = 30


def busybox(replicas: int) -> str:
    return (
        "services:\n  s:\n    image: orchestrator-test/busybox:latest\n"
        "    command: [\"sleep\", \"3600\"]\n    stop_signal: SIGKILL\n"
        f"    deploy:\n      replicas: {replicas}\n"
    )


@pytest.fixture
async def stacks(docker: aiodocker.Docker) -> AsyncIterator[tuple[str, str, str]]:
    base = f"t{secrets.token_hex(3)}"
    names = (f"{base}big", f"{base}small", f"{base}other")
    try:
        yield names
    finally:
        for name in names:
            await remove_stack_objects(docker, name)


@pytest.fixture
async def bounded_daemon(
    tmp_path: Path, redis_prefix: str, redis_client: aioredis.Redis, stacks: tuple[str, str, str]
) -> AsyncIterator[DaemonProcess]:
    process = DaemonProcess(tmp_path / "state", redis_prefix, extra_env={"ORCHESTRATOR_CONCURRENCY": str(BOUND)})
    await process.start()
    try:
        yield process
    finally:
        await process.stop()
        await delete_prefixed(redis_client, redis_prefix)


def transitions(messages: list[Message], stack: str, to: str) -> list[int]:
    """Positions of the stack's task.state messages into state `to`."""
    return [i for i, m in enumerate(messages) if m["type"] == "task.state" and m["stack"] == stack and m["to"] == to]


async def test_a_small_stack_and_a_restart_do_not_wait_for_a_big_deploy(
    bounded_daemon: DaemonProcess, docker: aiodocker.Docker, redis_client: aioredis.Redis,
    redis_prefix: str, stacks: tuple[str, str, str],
) -> None:  # fmt: skip
    big, small, other = stacks
    log = StreamLog(redis_client, redis_prefix)
    await bounded_daemon.deploy(other, busybox(2))
    await wait_standbys(docker, other, 2)
    victim = (await docker.containers.list(filters={"label": [f"orchestrator.stack={other}"], "status": ["running"]}))[0]

    await bounded_daemon.deploy(big, busybox(BIG))
    await bounded_daemon.deploy(small, busybox(1))
    await log.take_until(lambda m: m["type"] == "task.state" and m["stack"] == big and m["to"] == "created")
    await victim.kill(signal="SIGKILL")

    def all_done(_: Message) -> bool:
        return (len(transitions(log.messages, big, "created")) >= BIG
                and bool(transitions(log.messages, small, "running"))
                and len(transitions(log.messages, other, "starting")) >= 1)

    await log.take_until(all_done, timeout=240)
    messages = log.messages

    small_created = transitions(messages, small, "created")[0]
    big_before_small = sum(1 for i in transitions(messages, big, "created") if i < small_created)
    # A FIFO bound serves all 30 of the big stack's creates first; a fair one the few made
    # while the small stack's PUT was answered, and those in flight.
    assert big_before_small <= BIG // 3, big_before_small

    died = next(i for i in transitions(messages, other, "failed"))
    restarted = next(i for i in transitions(messages, other, "starting") if i > died)
    big_between = sum(1 for i in transitions(messages, big, "created") if died < i < restarted)
    # a restart waits for the creates in flight at most, never for the queue behind them
    assert big_between <= BOUND, big_between
