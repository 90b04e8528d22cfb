"""Deploys load their stack files in a worker (api/loading.py): the loop answers meanwhile, and
the worker's budget becomes 4xx/503 answers that name the limit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api import make_app
from orchestrator.api.errors import RequestError
from orchestrator.api.loading import MAX_WAITING, WORKER_MEMORY, StackLoader, worker_memory
from orchestrator.settings import Settings
from tests.hostile import alias_bombs
from tests.unit.conftest import AUTH, TOKEN
from tests.unit.fake_control import FakeControl

#: Takes the loader longer than the budgets here (~8 s on these machines).
HOSTILE = alias_bombs(4)
JSON = "application/json"


@pytest.fixture(name="loader")
async def _loader() -> AsyncIterator[StackLoader]:
    loader = StackLoader(Settings(parse_timeout=0.5))
    await loader.start()
    try:
        yield loader
    finally:
        await loader.close()


async def test_a_load_past_parse_timeout_is_a_400_naming_the_setting(loader: StackLoader) -> None:
    with pytest.raises(RequestError) as caught:
        await loader.load("shop", JSON, HOSTILE)
    assert (caught.value.status, caught.value.code) == (400, "parse_timeout")
    assert "0.5 s" in str(caught.value) and "ORCHESTRATOR_PARSE_TIMEOUT" in str(caught.value)
    spec = await loader.load("shop", "application/yaml", b"services:\n  web: {image: busybox}\n")
    assert list(spec.services) == ["web"]  # the next load gets a fresh worker


async def test_beyond_the_waiting_loads_a_deploy_gets_503(loader: StackLoader) -> None:
    accepted = [asyncio.create_task(loader.load("shop", JSON, HOSTILE)) for _ in range(1 + MAX_WAITING)]
    await asyncio.sleep(0)  # one at work, MAX_WAITING waiting
    with pytest.raises(RequestError) as caught:
        await loader.load("shop", "application/yaml", b"services: {}\n")
    assert (caught.value.status, caught.value.code) == (503, "loader_busy")
    for task in accepted:
        task.cancel()
    await asyncio.gather(*accepted, return_exceptions=True)


async def test_the_api_answers_while_a_hostile_deploy_is_parsed() -> None:
    control = FakeControl()
    app = make_app(control, Settings(parse_timeout=3, token=TOKEN))
    async with TestClient(TestServer(app), headers=AUTH) as client:
        deploy = asyncio.create_task(
            client.put("/v1/stacks/shop", data=HOSTILE, headers={"Content-Type": JSON}))
        answered = 0
        while not deploy.done():
            response = await client.get("/v1/health")
            assert response.status == 200
            answered += 1
        response = deploy.result()
        assert response.status == 400
        assert (await response.json())["error"]["code"] == "parse_timeout"
        # On the loop, the parse held every request until it ended: none answered meanwhile.
        assert answered >= 3
        assert control.specs == {}


def test_worker_memory_grows_with_a_raised_body_limit() -> None:
    assert worker_memory(Settings()) == WORKER_MEMORY == 1 << 30
    assert worker_memory(Settings(max_body_bytes=64 << 20)) == 4 << 30
