"""The demo app's image (scripts/build-images) on the engine, beside the local Redis image."""

from __future__ import annotations

import asyncio

import aiodocker
import aiohttp
import pytest

from orchestrator.labels import LABEL_STACK
from tests.integration.conftest import require_images

pytestmark = pytest.mark.integration

WEB_IMAGE = "orchestrator/demo-web:latest"
REDIS_IMAGE = "orchestrator/redis:7"


async def _published_port(container: aiodocker.containers.DockerContainer) -> int:
    info = await container.show()
    return int(info["NetworkSettings"]["Ports"]["80/tcp"][0]["HostPort"])


async def _counted_page(url: str) -> str:
    """The page once the app answers and reaches Redis (both start within a few seconds)."""
    page = ""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=3)) as session:
        for _ in range(100):
            try:
                async with session.get(url) as response:
                    page = await response.text()
            except aiohttp.ClientError:
                pass
            if "<b>Visits:</b> " in page and "counter disabled" not in page:
                return page
            await asyncio.sleep(0.1)
    raise AssertionError(f"{url} never showed a count; last page: {page!r}")


async def test_image_serves_hostname_and_rising_count(docker: aiodocker.Docker, stack_name: str) -> None:
    await require_images(docker, WEB_IMAGE, REDIS_IMAGE)
    labels = {LABEL_STACK: stack_name}
    network = f"{stack_name}_webnet"
    await docker.networks.create({"Name": network, "Labels": labels})
    await docker.containers.run(
        {"Image": REDIS_IMAGE, "Labels": labels,
         "HostConfig": {"NetworkMode": network},
         "NetworkingConfig": {"EndpointsConfig": {network: {"Aliases": ["redis"]}}}},
        name=f"{stack_name}_redis",
    )
    web = await docker.containers.run(
        {"Image": WEB_IMAGE, "Labels": labels, "Env": ["NAME=Stack"],
         "HostConfig": {"NetworkMode": network,
                        "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]}}},
        name=f"{stack_name}_web",
    )
    url = f"http://127.0.0.1:{await _published_port(web)}/"
    hostname = (await web.show())["Config"]["Hostname"]

    pages = [await _counted_page(url) for _ in range(3)]

    assert all(f"<h3>Hello Stack!</h3><b>Hostname:</b> {hostname}<br/>" in page for page in pages)
    visits = [int(page.rsplit("</b> ", 1)[1]) for page in pages]
    assert visits == [visits[0], visits[0] + 1, visits[0] + 2], pages
    assert (await web.show())["Config"]["User"] == "10001"
