"""Fixtures for the tests of the engine gateway and the event intake."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiodocker
import pytest

from orchestrator.engine import Engine
from orchestrator.model.spec import NetworkSpec, StackSpec


@pytest.fixture
async def engine(docker: aiodocker.Docker) -> AsyncIterator[Engine]:
    """An Engine on the test engine (the `docker` fixture skips when there is none)."""
    client = await Engine.connect()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def default_stack(engine: Engine, stack_name: str) -> StackSpec:
    """An empty stack whose `<stack>_default` network exists."""
    stack = StackSpec(name=stack_name, services={}, networks={"default": NetworkSpec("default", f"{stack_name}_default")})
    await engine.ensure_network(stack_name, stack.networks["default"])
    return stack
