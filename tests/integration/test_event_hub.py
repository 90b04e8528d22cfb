"""The one Redis subscription behind every `GET /v1/events` (orchestrator/api/event_hub.py),
against real Redis: shared by all streams and dropped with the last; a follower that falls
behind is ended instead of growing without bound; a Redis that goes away ends the streams
(the clients resume from their last seq) and a new stream subscribes again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.publishing import events
from orchestrator.api import make_app
from orchestrator.api.event_hub import EventHub, StreamEnded
from orchestrator.labels import events_channel
from orchestrator.publishing.publisher import Publisher
from orchestrator.publishing.seq_store import SeqStore
from orchestrator.settings import Settings
from tests.integration.private_redis import PrivateRedis, free_port
from tests.integration.test_api_events import publish, read_events
from tests.unit.conftest import AUTH, TOKEN
from tests.unit.fake_control import FakeControl

pytestmark = pytest.mark.integration


async def subscribers(client: aioredis.Redis, channel: str) -> int:
    [(_, count)] = await client.pubsub_numsub(channel)
    return int(count)


async def wait_subscribers(client: aioredis.Redis, channel: str, count: int) -> None:
    async with asyncio.timeout(10):
        while await subscribers(client, channel) != count:
            await asyncio.sleep(0.05)


@pytest.fixture(name="client")
async def _client(redis_client: aioredis.Redis, redis_prefix: str) -> AsyncIterator[TestClient]:
    app = make_app(FakeControl(), Settings(prefix=redis_prefix, token=TOKEN), redis_client)
    async with TestClient(TestServer(app), headers=AUTH) as client:
        yield client
    keys = [k async for k in redis_client.scan_iter(f"{redis_prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


async def test_every_stream_shares_one_subscription_that_ends_with_the_last(
        client: TestClient, redis_client: aioredis.Redis, redis_prefix: str, tmp_path: Path) -> None:
    channel = events_channel(redis_prefix)
    streams = [await client.get("/v1/events?since=0") for _ in range(3)]
    assert [s.status for s in streams] == [200] * 3
    assert await subscribers(redis_client, channel) == 1
    await publish(redis_prefix, tmp_path, events.stack_deployed("a"))
    for stream in streams:  # each gets the message once
        [(event_id, _, data)] = await read_events(stream, 1)
        assert (event_id, data["stack"]) == ("1", "a")
    for stream in streams:
        stream.close()
    await wait_subscribers(redis_client, channel, 0)


async def test_a_follower_that_falls_behind_is_ended_not_buffered(
        redis_client: aioredis.Redis, redis_prefix: str, tmp_path: Path) -> None:
    hub = EventHub(redis_client, events_channel(redis_prefix), queue_limit=2)
    async with hub.follow() as slow:
        await publish(redis_prefix, tmp_path, *(events.stack_deployed(f"s{i}") for i in range(4)))
        first = [await slow.next(timeout=5) for _ in range(2)]  # what it held is still handed out
        assert [live[0]["seq"] for live in first if live is not None] == [1, 2]
        with pytest.raises(StreamEnded, match="fell more than 2 messages behind"):
            await slow.next(timeout=5)
    await wait_subscribers(redis_client, events_channel(redis_prefix), 0)


async def test_redis_going_away_ends_the_streams_and_a_new_one_subscribes_again(
        redis_prefix: str, tmp_path: Path) -> None:
    server = PrivateRedis(free_port())
    await server.start()
    client = aioredis.Redis.from_url(server.url)
    app = make_app(FakeControl(), Settings(prefix=redis_prefix, token=TOKEN), client)
    try:
        async with TestClient(TestServer(app), headers=AUTH) as http:
            stream = await http.get("/v1/events")
            assert stream.status == 200
            server.stop()
            async with asyncio.timeout(10):  # the answer ends instead of hanging
                assert await stream.content.read() == b""
            refused = await http.get("/v1/events")
            assert refused.status == 503
            assert (await refused.json())["error"]["code"] == "events_unavailable"
            await server.start()
            async with asyncio.timeout(10):  # a pooled connection may still be the dead one
                while (again := await http.get("/v1/events")).status != 200:
                    assert again.status == 503
                    await asyncio.sleep(0.1)
            async with again:
                await publish_to(server.url, redis_prefix, tmp_path)
                [(event_id, _, _)] = await read_events(again, 1)
                assert event_id == "1"
                again.close()
    finally:
        server.stop()
        await client.aclose()


async def publish_to(url: str, prefix: str, tmp_path: Path) -> None:
    """One message through the real Publisher into the Redis at `url`."""
    publisher = Publisher(url, prefix, SeqStore(tmp_path / "seq-private"))
    sender = asyncio.create_task(publisher.run())
    publisher.publish(events.stack_deployed("back"))
    await publisher.close()
    await sender
