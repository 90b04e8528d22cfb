"""Issue 6's proof: stacks/getting-started.yml through the real daemon process, as a user runs it.

One deployment goes through the whole story, because each replica takes a healthcheck interval
(10 s) to join the ingress: five replicas behind one published port answer in turn with a rising
count; two SIGKILLed replicas cost at most the requests in flight on them and are replaced; a
stopped Redis turns the counter off until the daemon has started it again; `rm --volumes`
leaves nothing. Traffic goes to 127.0.0.1 only (the daemon's ingress listens there in tests;
the `daemon` fixture is conftest's).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiodocker
import aiohttp
import pytest

from orchestrator.labels import LABEL_SERVICE, LABEL_STACK
from tests.integration.conftest import require_images
from tests.integration.daemon_process import DaemonProcess, free_port

pytestmark = pytest.mark.integration

STACK_FILE = Path(__file__).parents[2] / "stacks" / "getting-started.yml"
WEB_IMAGE = "orchestrator/demo-web:latest"
REDIS_IMAGE = "orchestrator/redis:7"
PAGE = re.compile(r"<b>Hostname:</b> (\S+)<br/><b>Visits:</b> (.+)$")


@dataclass(frozen=True)
class Visit:
    started: float  # time.monotonic()
    ended: float
    hostname: str | None = None  # None: the request failed
    visits: int | None = None  # None: the page said the counter is disabled
    error: str = ""


async def visit(session: aiohttp.ClientSession, url: str) -> Visit:
    started = time.monotonic()
    try:
        async with session.get(url) as response:
            text = await response.text()
            response.raise_for_status()
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Visit(started, time.monotonic(), error=repr(exc))
    match = PAGE.search(text)
    if match is None:
        return Visit(started, time.monotonic(), error=f"unexpected page {text!r}")
    count = match.group(2)
    return Visit(started, time.monotonic(), match.group(1), int(count) if count.isdigit() else None)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    # A new connection per request, as curl makes: a kept-alive connection to a replica that
    # was killed would fail a request the ingress never saw.
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def stack_objects(docker: aiodocker.Docker, stack: str, service: str | None = None) -> list[dict]:
    labels = [f"{LABEL_STACK}={stack}"] + ([f"{LABEL_SERVICE}={service}"] if service else [])
    return await docker.containers.list(all=True, filters={"label": labels})


async def running_ids(docker: aiodocker.Docker, stack: str, service: str) -> set[str]:
    return {c["Id"] for c in await stack_objects(docker, stack, service) if c["State"] == "running"}


async def wait_served(http: aiohttp.ClientSession, url: str, hostnames: set[str], timeout: float = 40) -> None:
    """Until every one of `hostnames` (and no other) has answered among the last 10 requests."""
    recent: list[str | None] = []
    async with asyncio.timeout(timeout):
        while set(recent[-10:]) != hostnames:
            recent.append((await visit(http, url)).hostname)
            await asyncio.sleep(0.05)


async def wait_web_replaced(docker: aiodocker.Docker, stack: str, killed: set[str]) -> set[str]:
    async with asyncio.timeout(30):
        while True:
            ids = await running_ids(docker, stack, "web")
            if len(ids) == 5 and not ids & killed:
                return {i[:12] for i in ids}
            await asyncio.sleep(0.2)


class Traffic:
    """Client loops, each a request after the other, recording every visit until stopped."""

    def __init__(self, http: aiohttp.ClientSession, url: str, loops: int) -> None:
        self.visits: list[Visit] = []
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self._loop(http, url)) for _ in range(loops)]

    async def _loop(self, http: aiohttp.ClientSession, url: str) -> None:
        while not self._stop.is_set():
            self.visits.append(await visit(http, url))

    async def stop(self) -> list[Visit]:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        return sorted(self.visits, key=lambda v: v.started)


async def test_getting_started_stack(
    daemon: DaemonProcess, docker: aiodocker.Docker, http: aiohttp.ClientSession, stack_name: str
) -> None:
    await require_images(docker, WEB_IMAGE, REDIS_IMAGE)
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    env = {"WEB_IMAGE": WEB_IMAGE, "REDIS_IMAGE": REDIS_IMAGE, "WEB_PORT": str(port)}
    await daemon.deploy_file(stack_name, STACK_FILE, env)

    # Five replicas behind one port, in turn; one Redis counting every visit.
    async with asyncio.timeout(40):
        while len(web := await running_ids(docker, stack_name, "web")) < 5:
            await asyncio.sleep(0.2)
    await wait_served(http, url, {i[:12] for i in web})
    pages = [await visit(http, url) for _ in range(50)]
    assert all(p.hostname for p in pages), [p.error for p in pages if p.error]
    assert {p.hostname for p in pages} == {i[:12] for i in web}
    counts = [p.visits for p in pages]
    assert all(c is not None for c in counts) and counts == sorted(set(counts)), counts  # type: ignore[type-var]

    # SIGKILL two replicas under load: only requests already in flight on them may fail.
    traffic = Traffic(http, url, loops=3)
    await asyncio.sleep(0.5)
    killed = set(sorted(web)[:2])
    await asyncio.gather(*(docker.containers.container(i).kill(signal="SIGKILL") for i in killed))
    killed_at = time.monotonic()  # the engine answers a SIGKILL once the container has exited
    replacements = await wait_web_replaced(docker, stack_name, killed)
    await wait_served(http, url, replacements)
    visits = await traffic.stop()
    late_failures = [v for v in visits if v.hostname is None and v.started >= killed_at]
    assert not late_failures, late_failures
    assert sum(v.started >= killed_at for v in visits) > 20, "the client loop kept going"
    assert {v.hostname for v in visits if v.started > killed_at} >= replacements - {i[:12] for i in web}

    # Redis stopped: pages still answer and say the counter is disabled, until the daemon has
    # started Redis again. (It restarts Redis at once, possibly before the engine's answer to
    # our stop has reached us: the outage is looked for from the moment the stop is asked.)
    (redis,) = await running_ids(docker, stack_name, "redis")
    traffic = Traffic(http, url, loops=1)
    stop_asked = time.monotonic()
    await docker.containers.container(redis).stop(t=5)

    def outage_then_recovery() -> bool:
        after = [v for v in traffic.visits if v.started > stop_asked]
        first_off = next((i for i, v in enumerate(after) if v.hostname and v.visits is None), None)
        return first_off is not None and any(v.visits for v in after[first_off:])

    async with asyncio.timeout(30):
        while not outage_then_recovery():
            await asyncio.sleep(0.1)
    visits = [v for v in await traffic.stop() if v.started > stop_asked]
    assert all(v.hostname for v in visits), [v.error for v in visits if v.error]
    assert visits[-1].visits is not None
    assert await running_ids(docker, stack_name, "redis") - {redis}, "the daemon started a new Redis"

    # rm --volumes: nothing of the stack is left on the engine.
    status, body = await daemon.request("DELETE", f"/v1/stacks/{stack_name}", params={"volumes": "true"})
    assert status == 200, body
    label = {"label": [f"{LABEL_STACK}={stack_name}"]}
    assert await stack_objects(docker, stack_name) == []
    assert await docker.networks.list(filters=label) == []
    assert (await docker.volumes.list(filters=label)).get("Volumes") in (None, [])
    assert f"{stack_name}_redis-data" not in {
        v["Name"] for v in (await docker.volumes.list()).get("Volumes") or []
    }
