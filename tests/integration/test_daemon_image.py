"""The daemon's own image (the top-level Dockerfile, built by scripts/setup): run as its README
line says (engine socket mounted, host network, a state volume), it deploys a stack through its
API, the replicas answer through its ingress, and `rm` removes them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiodocker
import aiohttp
import pytest

from orchestrator.labels import LABEL_STACK
from tests.integration.conftest import BUSYBOX, REDIS_URL, require_images
from tests.integration.daemon_process import free_port

pytestmark = pytest.mark.integration

DAEMON_IMAGE = "orchestrator/daemon:latest"
#: The API's token, given to the daemon: its TCP listener always wants one.
TOKEN = "daemon-image-test-token"


def busybox_stack(web_port: int) -> str:
    return (
        "services:\n"
        "  web:\n"
        f"    image: {BUSYBOX}\n"
        "    command: [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n"
        "    stop_grace_period: 1s\n"
        "    deploy:\n      replicas: 2\n"
        f"    ports: [\"{web_port}:80\"]\n"
    )


@pytest.fixture
async def daemon_url(
    docker: aiodocker.Docker, redis_client: object, redis_prefix: str, stack_name: str
) -> AsyncIterator[str]:
    """The daemon in its container; the container and its state volume carry the test's stack
    label, so the stack_name fixture removes them even when this one could not."""
    await require_images(docker, DAEMON_IMAGE, BUSYBOX)
    port = free_port()
    labels = {LABEL_STACK: stack_name}
    volume = await docker.volumes.create({"Name": f"{stack_name}-daemon-state", "Labels": labels})
    container = await docker.containers.run(
        {
            "Image": DAEMON_IMAGE,
            "Labels": labels,
            "Env": [
                f"ORCHESTRATOR_LISTEN=127.0.0.1:{port}",
                f"ORCHESTRATOR_TOKEN={TOKEN}",
                f"ORCHESTRATOR_PREFIX={redis_prefix}",
                f"ORCHESTRATOR_REDIS_URL={REDIS_URL}",
                "ORCHESTRATOR_INGRESS_HOST=127.0.0.1",
            ],
            "HostConfig": {
                "NetworkMode": "host",
                "Binds": ["/var/run/docker.sock:/var/run/docker.sock",
                          f"{volume.name}:/var/lib/orchestrator"],
            },
        },
        name=f"{stack_name}-daemon",
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await container.stop(t=10)  # SIGTERM: a clean stop, before the stack's objects go


async def wait_answer(http: aiohttp.ClientSession, url: str, timeout: float = 30) -> str:
    async with asyncio.timeout(timeout):
        while True:
            try:
                async with http.get(url) as response:
                    if response.status == 200:
                        return await response.text()
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2)


async def test_daemon_image_deploys_and_removes_a_stack(
    daemon_url: str, docker: aiodocker.Docker, stack_name: str
) -> None:
    web_port = free_port()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60),
                                     headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        await wait_answer(http, f"{daemon_url}/v1/health")
        headers = {"Content-Type": "application/yaml"}
        async with http.put(f"{daemon_url}/v1/stacks/{stack_name}", data=busybox_stack(web_port),
                            headers=headers) as response:
            assert response.status == 201, await response.text()

        async with asyncio.timeout(30):
            while True:
                async with http.get(f"{daemon_url}/v1/stacks/{stack_name}/services") as response:
                    (web,) = await response.json()
                if web["replicas_running"] == 2:
                    break
                await asyncio.sleep(0.2)
        # The ingress in the daemon's container serves the published port on the host.
        assert await wait_answer(http, f"http://127.0.0.1:{web_port}/") == "ok\n"

        async with http.delete(f"{daemon_url}/v1/stacks/{stack_name}") as response:
            assert response.status == 200, await response.text()
    label = {"label": [f"{LABEL_STACK}={stack_name}"]}
    left = await docker.containers.list(all=True, filters=label)
    assert [c["Names"] for c in left] == [[f"/{stack_name}-daemon"]], "only the daemon itself"
    assert await docker.networks.list(filters=label) == []
