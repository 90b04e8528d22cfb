"""Fixtures for the API's unit tests: the real app over a fake Control, on a test server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestClient, TestServer

from orchestrator.api import make_app
from orchestrator.settings import Settings
from tests.unit.fake_control import FakeControl

#: The TCP listener always wants a token: the test apps use this one.
TOKEN = "unit-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

STACK_YAML = """\
services:
  web:
    image: busybox
    deploy:
      replicas: 2
  worker:
    image: busybox
"""


@pytest.fixture(name="control")
def _control() -> FakeControl:
    return FakeControl()


@pytest.fixture(name="settings")
def _settings() -> Settings:
    return Settings(token=TOKEN)


@pytest.fixture(name="client")
async def _client(control: FakeControl, settings: Settings) -> AsyncIterator[TestClient]:
    app = make_app(control, settings, body_limit=64 * 1024)
    async with TestClient(TestServer(app), headers=AUTH) as client:
        yield client
