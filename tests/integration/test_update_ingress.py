"""The getting-started stack updated with a new NAME while a client loop runs through the
ingress (issue 7): no request fails, and every page after the update greets the new name.

The stack is stacks/getting-started.yml with what a test needs changed: a free published port,
2 replicas replaced at once (parallelism 0: every old replica leaves in the same handover, so
the service is never without a ready backend only if start-first holds), a 1 s healthcheck
interval (the image's 10 s would make the test slow), no CPU cap (0.1 CPU makes Python start in
seconds) and update_config start-first.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from orchestrator.ingress.proxy import Ingress
from orchestrator.ingress.routes import IngressRoutes
from tests.integration.daemon_process import free_port
from tests.integration.orchestrator_harness import running_orchestrator

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
REPLICAS = 2
IMAGES = {"WEB_IMAGE": "orchestrator/demo-web:latest", "REDIS_IMAGE": "orchestrator/redis:7"}


def getting_started(port: int, name: str) -> str:
    stack = yaml.safe_load((REPO / "stacks" / "getting-started.yml").read_text())
    web = stack["services"]["web"]
    web["ports"] = [f"{port}:80"]
    web["environment"]["NAME"] = name
    web["healthcheck"] = {"interval": "1s", "timeout": "2s", "retries": 3}
    web["stop_grace_period"] = "5s"
    web["deploy"]["replicas"] = REPLICAS
    del web["deploy"]["resources"]["limits"]["cpus"]
    web["deploy"]["update_config"] = {"order": "start-first", "parallelism": 0, "monitor": "1s"}
    return yaml.safe_dump(stack)


async def client_loop(url: str, stop: asyncio.Event, pages: list[tuple[float, str]], failures: list[str]) -> None:
    """One request after another, a new connection each, until told to stop."""
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), timeout=timeout) as session:
        while not stop.is_set():
            try:
                async with session.get(url) as response:
                    body = await response.text()
                    if response.status != 200:
                        failures.append(f"HTTP {response.status}")
                    pages.append((time.time(), body))
            except (aiohttp.ClientError, TimeoutError) as exc:
                failures.append(repr(exc))
            await asyncio.sleep(0.02)


async def test_update_through_the_ingress_fails_no_request(tmp_path: Path, stack_name: str, docker: object) -> None:
    port = free_port()
    routes = IngressRoutes(Ingress("127.0.0.1"))
    async with running_orchestrator(tmp_path / "state", routes=routes) as orch:
        await orch.deploy(stack_name, getting_started(port, "Old"), tmp_path, env=IMAGES)

        async def all_ready() -> bool:
            ready = [c for c in await orch.running(stack_name, "web") if c.health == "healthy"]
            return len(ready) == REPLICAS and len(routes.ingress.ports[(port, "tcp")].backends) == REPLICAS

        await orch.wait_for(all_ready, 120, "the old replicas in rotation")
        pages: list[tuple[float, str]] = []
        failures: list[str] = []
        stop = asyncio.Event()
        loop = asyncio.create_task(client_loop(f"http://127.0.0.1:{port}/", stop, pages, failures))
        await asyncio.sleep(1)
        await orch.deploy(stack_name, getting_started(port, "New"), tmp_path, env=IMAGES)

        async def completed() -> bool:
            (web,) = [v for v in await orch.controller.services(stack_name) if v.name == "web"]
            return web.update_state == "completed"

        await orch.wait_for(completed, 180, "the update completed")
        done = time.time()
        await asyncio.sleep(1)
        stop.set()
        await loop

    assert failures == [], f"{len(failures)} of {len(pages) + len(failures)} requests failed: {failures[:5]}"
    assert any("Hello Old!" in body for _, body in pages), "the loop ran before the update"
    after = [body for at, body in pages if at > done]
    assert after and all("Hello New!" in body for body in after)
