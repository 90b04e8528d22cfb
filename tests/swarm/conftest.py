"""Fixtures for tests on a real Docker Swarm whose nodes are Docker engines in containers
(tests/swarm/cluster.py): the host's engine never enters swarm mode.

Session-scoped: `swarm1`, one node, for the fast tests, and `swarm3`, a manager and two workers,
for the multi-node ones; each starts at its first use (1-node about 2 s, 3-node about 4 s) with
the test image loaded, and is removed at the end of the session. A session starts by removing
what killed runs left behind (`cleanup_stale`). Without the node image (scripts/setup builds it)
the tests skip, and fail with CI=true, as tests/integration does for the engine.
"""

from __future__ import annotations

import secrets
import shutil
from collections.abc import AsyncIterator, Iterator

import aiodocker
import pytest

from tests.integration.conftest import BUSYBOX, IN_CI, redis_client, redis_prefix  # noqa: F401 (fixtures)
from tests.swarm.cleanup import cleanup_stale
from tests.swarm.cluster import Cluster, node_image_present
from tests.swarm.docker_cli import ClusterError
from tests.swarm.stack_objects import remove_stack


@pytest.fixture(scope="session")
def node_image() -> None:
    """Skip (fail in CI) without the node image; remove what killed runs left behind."""
    _require_node_image()
    cleanup_stale()


def _require_node_image() -> None:
    problem = None
    if shutil.which("docker") is None:
        problem = "the docker CLI is missing"
    else:
        try:
            present = node_image_present()
        except ClusterError as exc:
            problem = str(exc)
        else:
            problem = None if present else "image orchestrator/swarm-node:bookworm is missing: run scripts/setup"
    if problem:
        if IN_CI:
            pytest.fail(problem)
        pytest.skip(problem)


def _cluster(workers: int) -> Iterator[Cluster]:
    cluster = Cluster.start(workers=workers)
    try:
        cluster.load_images([BUSYBOX])
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def swarm1(node_image: None) -> Iterator[Cluster]:
    yield from _cluster(workers=0)


@pytest.fixture(scope="session")
def swarm3(node_image: None) -> Iterator[Cluster]:
    yield from _cluster(workers=2)


@pytest.fixture
async def swarm1_docker(swarm1: Cluster) -> AsyncIterator[aiodocker.Docker]:
    async with aiodocker.Docker(url=swarm1.manager.docker_host) as client:
        yield client


@pytest.fixture
async def swarm3_docker(swarm3: Cluster) -> AsyncIterator[aiodocker.Docker]:
    async with aiodocker.Docker(url=swarm3.manager.docker_host) as client:
        yield client


def _stack_name() -> str:
    return f"s{secrets.token_hex(4)}"


@pytest.fixture
async def swarm1_stack(swarm1_docker: aiodocker.Docker) -> AsyncIterator[str]:
    """A unique stack namespace on `swarm1`; its services, networks, secrets and configs are
    removed after the test."""
    name = _stack_name()
    try:
        yield name
    finally:
        await remove_stack(swarm1_docker, name)


@pytest.fixture
async def swarm3_stack(swarm3_docker: aiodocker.Docker) -> AsyncIterator[str]:
    name = _stack_name()
    try:
        yield name
    finally:
        await remove_stack(swarm3_docker, name)
