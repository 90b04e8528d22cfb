"""Fixtures for tests against a real Docker engine and a real Redis.

Outside CI a missing engine or Redis skips these tests; with CI=true it fails them, because
scripts/test is supposed to have provided both. Everything a test creates carries the label
`orchestrator.stack=<unique stack name>` and is removed by that label afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import aiodocker
import pytest
import redis.asyncio as aioredis

from orchestrator.labels import LABEL_STACK
from tests.integration.daemon_process import DaemonProcess

BUSYBOX = "orchestrator-test/busybox:latest"
REDIS_URL = os.environ.get("ORCHESTRATOR_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI") == "true"


def _unavailable(what: str, exc: BaseException) -> None:
    message = f"{what} is not reachable ({exc}); run scripts/setup"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


async def require_images(docker: aiodocker.Docker, *images: str) -> None:
    """Skip (fail in CI) unless the locally built images exist: scripts/setup builds them."""
    for image in images:
        try:
            await docker.images.inspect(image)
        except aiodocker.DockerError:
            message = f"image {image} is missing: run scripts/build-images"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)


@pytest.fixture
async def docker() -> AsyncIterator[aiodocker.Docker]:
    client = aiodocker.Docker()
    try:
        await client.version()
        await client.images.inspect(BUSYBOX)
    except Exception as exc:  # noqa: BLE001 - any failure means "no usable engine"
        await client.close()
        _unavailable(f"Docker engine with image {BUSYBOX}", exc)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await client.ping()
    except Exception as exc:  # noqa: BLE001
        await client.aclose()
        _unavailable(f"Redis at {REDIS_URL}", exc)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def redis_prefix() -> str:
    """A Redis key/channel prefix of this test's own, so tests never disturb each other."""
    return f"orchestrator-test-{secrets.token_hex(4)}"


@pytest.fixture
async def stack_name(docker: aiodocker.Docker) -> AsyncIterator[str]:
    """A unique stack name; everything labelled with it is removed after the test."""
    name = f"t{secrets.token_hex(4)}"
    try:
        yield name
    finally:
        await remove_stack_objects(docker, name)


async def remove_stack_objects(docker: aiodocker.Docker, stack: str) -> None:
    label = {"label": [f"{LABEL_STACK}={stack}"]}
    for container in await docker.containers.list(all=True, filters=label):
        await _ignore_missing(container.delete(force=True, v=True))
    for network in await docker.networks.list(filters=label):
        await _ignore_missing(aiodocker.networks.DockerNetwork(docker, network["Id"]).delete())
    volumes = await docker.volumes.list(filters=label)
    for volume in volumes.get("Volumes") or []:
        await _ignore_missing(aiodocker.volumes.DockerVolume(docker, volume["Name"]).delete())


async def _ignore_missing(removal: Awaitable[object]) -> None:
    try:
        await removal
    except aiodocker.DockerError as exc:
        if exc.status != 404:
            raise


@pytest.fixture
async def daemon(
    tmp_path: Path, redis_prefix: str, redis_client: aioredis.Redis, stack_name: str
) -> AsyncIterator[DaemonProcess]:
    """The real daemon in its own process, with its own state dir, port and Redis prefix.
    Depends on stack_name so that the daemon stops before the stack's objects are cleaned up."""
    process = DaemonProcess(tmp_path / "state", redis_prefix)
    await process.start()
    try:
        yield process
    finally:
        code = await process.stop()
        await delete_prefixed(redis_client, redis_prefix)
    assert code == 0, f"the daemon did not stop cleanly on SIGTERM ({code}):\n{process.log_tail()}"


async def delete_prefixed(client: aioredis.Redis, prefix: str) -> None:
    keys = [key async for key in client.scan_iter(f"{prefix}:*")]
    if keys:
        await client.delete(*keys)
