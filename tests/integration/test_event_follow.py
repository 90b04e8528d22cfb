"""`orchestrator events` as a user runs it (a subprocess), against a real Redis and publisher."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import jsonschema
import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from orchestrator import labels
from orchestrator.publishing import events
from orchestrator.cli.event_follow import Follower
from orchestrator.model.observed import SlotKey, TaskState
from orchestrator.publishing.publisher import Publisher
from orchestrator.publishing.seq_store import SeqStore
from tests.integration.conftest import REDIS_URL
from tests.integration.private_redis import PrivateRedis, free_port

pytestmark = pytest.mark.integration

VALIDATOR = jsonschema.Draft202012Validator(events.load_schema())


def started(stack: str, slot: int) -> events.Event:
    return events.task_state(SlotKey(stack, "web", slot), None, f"t{slot}", TaskState.NEW, TaskState.CREATED)


@pytest.fixture
async def publisher(tmp_path: Path, redis_client: aioredis.Redis, redis_prefix: str) -> AsyncIterator[Publisher]:
    publisher = Publisher(REDIS_URL, redis_prefix, SeqStore(tmp_path / "seq"))
    sender = asyncio.create_task(publisher.run())
    try:
        yield publisher
    finally:
        await publisher.close(timeout=2.0)
        await sender
        await redis_client.delete(labels.events_stream(redis_prefix))


async def wait_sent(publisher: Publisher, seq: int) -> None:
    async with asyncio.timeout(10):
        while publisher.last_seq < seq:
            await asyncio.sleep(0.01)


async def run_events_command(prefix: str, *arguments: str) -> asyncio.subprocess.Process:
    env = os.environ | {"ORCHESTRATOR_REDIS_URL": REDIS_URL, "ORCHESTRATOR_PREFIX": prefix}
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", "events", *arguments,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def read_lines_until(process: asyncio.subprocess.Process, done: str, timeout: float = 30.0) -> list[str]:
    assert process.stdout is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(timeout):
            while not lines or done not in lines[-1]:
                line = await process.stdout.readline()
                assert line, f"the command ended: {(await process.stderr.read()).decode()}"  # type: ignore[union-attr]
                lines.append(line.decode().rstrip("\n"))
    finally:
        process.terminate()
        await process.wait()
    return lines


async def test_since_replays_then_follows_without_gap_or_duplicate(publisher: Publisher, redis_prefix: str) -> None:
    for slot in range(1, 31):
        publisher.publish(started("shop", slot))
    await wait_sent(publisher, 30)

    process = await run_events_command(redis_prefix, "--since", "10", "--json")

    async def keep_publishing() -> None:
        # Spread over the command's start-up, so replay and live overlap at some point.
        for slot in range(31, 201):
            publisher.publish(started("shop", slot))
            await asyncio.sleep(0.01)

    producer = asyncio.create_task(keep_publishing())
    lines = await read_lines_until(process, done='"seq":200,')
    await producer
    messages = [json.loads(line) for line in lines]
    for message in messages:
        VALIDATOR.validate(message)
    assert [m["seq"] for m in messages] == list(range(10, 201))
    assert [m["slot"] for m in messages] == list(range(10, 201))


async def test_stack_filter_and_readable_lines(publisher: Publisher, redis_prefix: str) -> None:
    publisher.publish(events.stack_deployed("shop"))
    publisher.publish(started("blog", 1))
    publisher.publish(started("shop", 1))
    await wait_sent(publisher, 3)
    process = await run_events_command(redis_prefix, "--stack", "shop", "--since", "0")
    await asyncio.sleep(0.5)  # now live only
    publisher.publish(started("blog", 2))
    publisher.publish(events.service_scaled("shop", "web", replicas=2))
    lines = await read_lines_until(process, done="service.scaled")
    fields = [line.split(" ", 3) for line in lines]
    assert [(seq, kind, rest) for seq, _time, kind, rest in fields] == [
        ("1", "stack.deployed", "shop"),
        ("3", "task.state", "shop/web.1 new→created"),
        ("5", "service.scaled", "shop/web replicas=2"),
    ]


async def test_the_follower_resumes_after_redis_restarts(tmp_path: Path, redis_prefix: str) -> None:
    server = PrivateRedis(free_port())
    await server.start()
    publisher = Publisher(server.url, redis_prefix, SeqStore(tmp_path / "seq"), reconnect_max_delay=0.2)
    sender = asyncio.create_task(publisher.run())
    client = aioredis.Redis.from_url(server.url, decode_responses=True, retry=Retry(NoBackoff(), 0))
    seen: list[int] = []
    follower = asyncio.create_task(Follower(client, redis_prefix, lambda m: seen.append(m["seq"]), since=1).run())
    try:
        for slot in range(1, 6):
            publisher.publish(started("shop", slot))
        await wait_until(lambda: len(seen) == 5)
        server.stop()
        for slot in range(6, 11):
            publisher.publish(started("shop", slot))
        await asyncio.sleep(0.5)
        await server.start()
        await wait_until(lambda: len(seen) >= 10)
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
        await client.aclose()
        await publisher.close(timeout=1.0)
        await sender
        server.stop()
    assert seen == list(range(1, 11))


async def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)
