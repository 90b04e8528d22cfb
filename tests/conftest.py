"""Shared fixtures. Integration fixtures (real engine, real Redis) live in
tests/integration/conftest.py; unit tests must not need them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest


@pytest.fixture(autouse=True)
async def _no_leaked_tasks() -> AsyncIterator[None]:
    """Fail a test that leaves asyncio tasks running behind it."""
    before = asyncio.all_tasks()
    yield
    await asyncio.sleep(0)
    leaked = [t for t in asyncio.all_tasks() - before if not t.done() and t is not asyncio.current_task()]
    for task in leaked:
        task.cancel()
    assert not leaked, f"test left tasks running: {leaked}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """scripts/test runs the suite in parallel workers, then the `serial` tests alone: a test
    that restarts the shared dockerd (engine_restart) would break every test beside it. The
    Swarm tests share one session cluster, so they go to one worker (xdist_group)."""
    for item in items:
        if item.get_closest_marker("engine_restart"):
            item.add_marker(pytest.mark.serial)
        if item.get_closest_marker("swarm"):
            item.add_marker(pytest.mark.xdist_group("swarm"))
