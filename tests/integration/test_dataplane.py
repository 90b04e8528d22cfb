"""A published port keeps answering through the daemon's SIGKILL, its restart, and a rolling
update of a service without a healthcheck (issue 16): counted, not timed.

The stack is stacks/getting-started.yml (the demo app and its Redis) with a free published port,
2 replicas, no healthcheck (so nothing but the daemon's TCP readiness probe says when a new
replica's server listens: the Python app takes a moment) and no CPU cap.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import aiodocker
import aiohttp
import pytest
import yaml

from orchestrator.labels import LABEL_STACK
from tests.integration.daemon_process import DaemonProcess, free_port
from tests.integration.engine_restart import restart_engine, restarts_engine

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
IMAGES = {"WEB_IMAGE": "orchestrator/demo-web:latest", "REDIS_IMAGE": "orchestrator/redis:7"}
#: Requests that must succeed in each phase (before, while down, after).
PER_PHASE = 40


def getting_started(port: int, name: str) -> dict[str, object]:
    stack = yaml.safe_load((REPO / "stacks" / "getting-started.yml").read_text())
    web = stack["services"]["web"]
    web["ports"] = [f"{port}:80"]
    web["environment"]["NAME"] = name
    web["healthcheck"] = {"disable": True}
    web["stop_grace_period"] = "5s"
    web["deploy"]["replicas"] = 2
    del web["deploy"]["resources"]["limits"]["cpus"]
    web["deploy"]["update_config"] = {"parallelism": 1, "monitor": "1s"}  # stop-first, as Swarm
    return {"files": [{"name": "stack.yml", "content": yaml.safe_dump(stack)}], "env": IMAGES,
            "base_dir": str(REPO / "stacks")}


class Load:
    """One request after another through the published port, a new connection each."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.pages: list[str] = []
        self.failures: list[str] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=10)
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            while not self._stop.is_set():
                try:
                    async with session.get(self.url) as response:
                        body = await response.text()
                        if response.status == 200:
                            self.pages.append(body)
                        else:
                            self.failures.append(f"HTTP {response.status}")
                except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                    self.failures.append(repr(exc))
                await asyncio.sleep(0.01)

    async def answered(self, more: int, check: Callable[[str], bool] = lambda _: True, timeout: float = 120) -> None:
        """Waits until `more` further requests got a page passing `check`."""
        start = len(self.pages)
        async with asyncio.timeout(timeout):
            while sum(map(check, self.pages[start:])) < more:
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """Ends the load; a second call is a no-op."""
        self._stop.set()
        assert self._task is not None
        await self._task


async def deployed(daemon: DaemonProcess, stack: str, port: int, name: str) -> Load:
    status, body = await daemon.request("PUT", f"/v1/stacks/{stack}", json=getting_started(port, name))
    assert status in (200, 201), body
    await daemon.poll(f"/v1/stacks/{stack}/services",
                      lambda views: all(v["replicas_running"] == v["replicas_desired"] for v in views), 120)
    load = Load(f"http://127.0.0.1:{port}/")
    load.start()
    return load


async def test_sigkill_and_restart_of_the_daemon_fail_no_request(daemon: DaemonProcess, stack_name: str) -> None:
    port = free_port()
    load = await deployed(daemon, stack_name, port, "Old")
    try:
        await load.answered(PER_PHASE)
        ingress = daemon.ingress_pid
        assert ingress is not None, "the daemon runs no ingress process"

        await daemon.kill()
        await load.answered(PER_PHASE)  # served while no daemon runs
        await daemon.start()
        await load.answered(PER_PHASE)
        assert daemon.ingress_pid == ingress, "the restarted daemon started a second ingress"

        await daemon.stop_daemon()  # SIGTERM, as an upgrade stops it: the ingress stays
        await load.answered(PER_PHASE)
        await daemon.start()
        await load.answered(PER_PHASE)
        assert daemon.ingress_pid == ingress
    finally:
        await load.stop()

    assert load.failures == [], f"{len(load.failures)} of {len(load.pages) + len(load.failures)} failed: {load.failures[:5]}"
    adopted = [json.loads(line) for line in daemon.log_tail(10_000).splitlines() if '"ingress_adopted"' in line]
    assert len(adopted) == 3 and adopted[-1]["ports"] == 1, adopted  # each start found it serving


async def test_rolling_update_without_healthcheck_fails_no_request(daemon: DaemonProcess, stack_name: str) -> None:
    port = free_port()
    load = await deployed(daemon, stack_name, port, "Old")
    try:
        await load.answered(PER_PHASE)
        status, body = await daemon.request("PUT", f"/v1/stacks/{stack_name}", json=getting_started(port, "New"))
        assert status == 200, body
        await daemon.poll(f"/v1/stacks/{stack_name}/services",
                          lambda views: all(v["update_state"] == "completed" for v in views if v["name"] == "web"), 180)
        await load.answered(PER_PHASE, lambda page: "Hello New!" in page)
    finally:
        await load.stop()

    assert load.failures == [], f"{len(load.failures)} of {len(load.pages) + len(load.failures)} failed: {load.failures[:5]}"
    assert any("Hello Old!" in page for page in load.pages), "the load ran before the update"


async def test_health_says_whether_the_engine_has_live_restore(daemon: DaemonProcess, docker: aiodocker.Docker) -> None:
    info = await docker.system.info()
    status, body = await daemon.request("GET", "/v1/health")
    assert status == 200 and body["live_restore"] is bool(info["LiveRestoreEnabled"]), body
    status, body = await daemon.request("GET", "/v1/health", auth=False)
    assert "live_restore" not in body  # only the booleans for anonymous probes


async def running_ids(docker: aiodocker.Docker, stack: str) -> set[str]:
    found = await docker.containers.list(filters={"label": [f"{LABEL_STACK}={stack}"], "status": ["running"]})
    return {c["Id"] for c in found}


@pytest.mark.engine_restart
@restarts_engine
async def test_a_dockerd_restart_with_live_restore_fails_no_request_and_restarts_nothing(
    daemon: DaemonProcess, docker: aiodocker.Docker, stack_name: str
) -> None:
    if not (await docker.system.info())["LiveRestoreEnabled"]:
        pytest.skip("the engine runs without live-restore (scripts/setup starts it with it)")
    port = free_port()
    load = await deployed(daemon, stack_name, port, "Old")
    try:
        await load.answered(PER_PHASE)
        before = await running_ids(docker, stack_name)
        await asyncio.to_thread(restart_engine)
        await load.answered(PER_PHASE)
        await daemon.poll("/v1/health", lambda body: body["engine"], 60)
        await load.answered(PER_PHASE)
    finally:
        await load.stop()
    assert load.failures == [], f"{len(load.failures)} of {len(load.pages) + len(load.failures)} failed: {load.failures[:5]}"
    assert await running_ids(docker, stack_name) == before, "the daemon replaced replicas the engine kept"
