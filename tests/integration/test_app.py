"""The demo app in-process on 127.0.0.1, against the real Redis and against an absent one."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from app.demo_app import DISABLED, Config, make_app

pytestmark = pytest.mark.integration

# The page must come back within about 2 s when Redis is gone; a request slower than this fails.
PAGE_DEADLINE = aiohttp.ClientTimeout(total=2.5)


async def _client(config: Config) -> TestClient:
    client = TestClient(TestServer(make_app(config), host="127.0.0.1"))
    await client.start_server()
    return client


@pytest.fixture(name="live_app")
async def _live_app(redis_client: aioredis.Redis, redis_prefix: str) -> AsyncIterator[TestClient]:
    conn = redis_client.connection_pool.connection_kwargs
    key = f"{redis_prefix}:counter"
    config = Config(redis_host=conn["host"], redis_port=conn["port"], redis_db=conn.get("db", 0),
                    counter_key=key, name="Tester")
    client = await _client(config)
    try:
        yield client
    finally:
        await client.close()
        await redis_client.delete(key)


@pytest.fixture(name="closed_port")
def _closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound once, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(name="silent_port")
def _silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) but never answers: a hung Redis."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])


async def test_page_greets_shows_hostname_and_counts(live_app: TestClient, redis_client: aioredis.Redis,
                                                    redis_prefix: str) -> None:
    first = await (await live_app.get("/")).text()
    second = await (await live_app.get("/")).text()

    assert "<h3>Hello Tester!</h3>" in first
    assert f"<b>Hostname:</b> {socket.gethostname()}" in first
    assert "<b>Visits:</b> 1" in first
    assert "<b>Visits:</b> 2" in second
    assert await redis_client.get(f"{redis_prefix}:counter") == "2"


async def test_healthz_answers(live_app: TestClient) -> None:
    response = await live_app.get("/healthz")
    assert response.status == 200
    assert await response.text() == "ok\n"


@pytest.mark.parametrize("port_fixture", ["closed_port", "silent_port"], ids=["refused", "hung"])
async def test_page_says_counter_disabled_without_redis(port_fixture: str,
                                                        request: pytest.FixtureRequest) -> None:
    port = request.getfixturevalue(port_fixture)
    client = await _client(Config(redis_host="127.0.0.1", redis_port=port))
    try:
        for _ in range(2):  # the second request must not be stuck on a dead connection either
            response = await client.get("/", timeout=PAGE_DEADLINE)
            assert response.status == 200
            page = await response.text()
            assert DISABLED in page
            assert "<h3>Hello World!</h3>" in page
        assert (await client.get("/healthz", timeout=PAGE_DEADLINE)).status == 200
    finally:
        await client.close()
