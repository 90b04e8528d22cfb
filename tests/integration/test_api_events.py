"""`GET /v1/events` against the real Redis: messages written by the real Publisher are
replayed from `since`/`Last-Event-ID`, then followed live; gaps and the stack filter."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.publishing import events
from orchestrator.api import make_app, sse
from orchestrator.labels import events_stream
from orchestrator.publishing.publisher import Publisher
from orchestrator.publishing.seq_store import SeqStore
from orchestrator.settings import Settings
from tests.integration.conftest import REDIS_URL
from tests.unit.conftest import AUTH, TOKEN
from tests.unit.fake_control import FakeControl

pytestmark = pytest.mark.integration


@pytest.fixture(name="prefix")
async def _prefix(redis_client: aioredis.Redis, redis_prefix: str) -> AsyncIterator[str]:
    yield redis_prefix
    keys = [k async for k in redis_client.scan_iter(f"{redis_prefix}:*")]
    if keys:
        await redis_client.delete(*keys)


async def publish(prefix: str, tmp_path: Path, *evs: events.Event) -> None:
    publisher = Publisher(REDIS_URL, prefix, SeqStore(tmp_path / "seq"))
    sender = asyncio.create_task(publisher.run())
    for event in evs:
        publisher.publish(event)
    await publisher.close()
    await sender


@pytest.fixture(name="client")
async def _client(redis_client: aioredis.Redis, prefix: str) -> AsyncIterator[TestClient]:
    app = make_app(FakeControl(), Settings(prefix=prefix, token=TOKEN), redis_client)
    async with TestClient(TestServer(app), headers=AUTH) as client:
        yield client


async def read_events(response: ClientResponse, count: int) -> list[tuple[str | None, str, Any]]:
    """The next `count` events as (id, event, data), skipping comments."""
    found: list[tuple[str | None, str, Any]] = []
    fields: dict[str, str] = {}
    async with asyncio.timeout(10):
        while len(found) < count:
            line = (await response.content.readline()).decode().rstrip("\n")
            if line == "" and fields:
                found.append((fields.get("id"), fields.get("event", ""), json.loads(fields["data"])))
                fields = {}
            elif line and not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value
    return found


async def test_a_quiet_stream_outlives_the_redis_socket_timeout(
        redis_client: aioredis.Redis, prefix: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse, "KEEPALIVE_S", 1.0)  # past two socket timeouts
    quick = aioredis.Redis.from_url(REDIS_URL, socket_timeout=0.5)
    app = make_app(FakeControl(), Settings(prefix=prefix, token=TOKEN), quick)
    try:
        async with TestClient(TestServer(app), headers=AUTH) as client, client.get("/v1/events") as response:
            keepalive = await asyncio.wait_for(response.content.readline(), 5)
            assert keepalive == b": keepalive\n"
            await publish(prefix, tmp_path, events.stack_deployed("late"))
            [(event_id, _, _)] = await read_events(response, 1)
            assert event_id == "1"
            response.close()
    finally:
        await quick.aclose()


async def test_resume_replays_then_follows_live(client: TestClient, prefix: str, tmp_path: Path) -> None:
    await publish(prefix, tmp_path, *(events.stack_deployed(f"s{i}") for i in range(1, 5)))
    async with client.get("/v1/events?since=2") as response:
        assert response.content_type == "text/event-stream"
        replayed = await read_events(response, 2)
        assert [(i, e, d["stack"]) for i, e, d in replayed] == [
            ("3", "stack.deployed", "s3"), ("4", "stack.deployed", "s4")]
        await publish(prefix, tmp_path, events.stack_removed("s1"))
        [(event_id, kind, data)] = await read_events(response, 1)
        response.close()
    assert (event_id, kind, data["seq"]) == ("5", "stack.removed", 5)


async def test_last_event_id_header_and_stack_filter(client: TestClient, prefix: str,
                                                     tmp_path: Path) -> None:
    await publish(prefix, tmp_path, events.stack_deployed("a"), events.stack_deployed("b"),
                  events.stack_removed("a"))
    async with client.get("/v1/events?stack=a&since=0", headers={"Last-Event-ID": "1"}) as response:
        [(event_id, kind, _)] = await read_events(response, 1)
        response.close()
    assert (event_id, kind) == ("3", "stack.removed")


async def test_trimmed_history_is_reported_as_a_gap(client: TestClient, prefix: str,
                                                    redis_client: aioredis.Redis, tmp_path: Path) -> None:
    await publish(prefix, tmp_path, *(events.stack_deployed(f"s{i}") for i in range(1, 5)))
    await redis_client.xtrim(events_stream(prefix), minid="3-0", approximate=False)
    async with client.get("/v1/events?since=0") as response:
        found = await read_events(response, 3)
        response.close()
    assert found[0] == (None, "gap", {"from": 1, "to": 2})
    assert [i for i, _, _ in found[1:]] == ["3", "4"]


async def test_without_since_only_new_events_arrive(client: TestClient, prefix: str,
                                                    tmp_path: Path) -> None:
    await publish(prefix, tmp_path, events.stack_deployed("old"))
    async with client.get("/v1/events") as response:
        await asyncio.sleep(0.2)  # let the handler note the stream's tail before we publish
        await publish(prefix, tmp_path, events.stack_deployed("new"))
        [(event_id, _, data)] = await read_events(response, 1)
        response.close()
    assert (event_id, data["stack"]) == ("2", "new")


async def test_a_seq_newer_than_the_newest_message_is_a_400_naming_the_newest(
        client: TestClient, prefix: str, tmp_path: Path) -> None:
    """Before, an empty 200 that waited forever for a message that would never come."""
    async with client.get("/v1/events?since=0") as response:  # an empty stream: 0 is the newest
        assert response.status == 200
        response.close()
    await publish(prefix, tmp_path, events.stack_deployed("a"), events.stack_deployed("b"))
    for query, headers, path in (("?since=3", {}, "since"), ("", {"Last-Event-ID": "99"}, "Last-Event-ID"),
                                 (f"?since={2**63 - 1}", {}, "since")):
        response = await client.get(f"/v1/events{query}", headers=headers)
        assert response.status == 400
        error = (await response.json())["error"]
        assert error["path"] == path and "newest message (seq 2)" in error["message"]
    async with client.get("/v1/events?since=2") as response:  # the newest itself: follow from there
        assert response.status == 200
        response.close()
