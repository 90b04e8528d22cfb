"""The daemon on the cluster (stacks/orchestrator-on-swarm.yml): losing the daemon's node loses
nothing.

Three managers. The daemon's image (this tree's code, tests/swarm/daemon_image.py) is loaded into
them and the stack file deployed with `docker stack deploy`, with a Redis outside the Swarm (a
container on the cluster's network, as a Redis of its own machine would be). A user stack is
deployed through the daemon's API; then the node that runs the daemon is killed. Swarm starts the
daemon on another manager, which adopts the stacks: its API answers there, `inspect` gives the
stack file as deployed (kept in Swarm), and it goes on telling the tasks' changes, among them
the lost node's replicas moving, with no message twice and `seq` without a gap.

Marked `swarm_multinode` (a cluster of its own, 2-4 minutes here).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import pytest
import redis.asyncio as aioredis

from orchestrator.publishing import events
from tests.integration.conftest import BUSYBOX, IN_CI
from tests.swarm.cluster import Cluster, Node
from tests.swarm.daemon_image import base_image_present, build_tree_image, remove_image
from tests.swarm.docker_cli import LABEL_CLUSTER, ClusterError, docker
from tests.swarm.test_multinode import Stream, no_duplicates_and_gapless

pytestmark = [pytest.mark.integration, pytest.mark.swarm, pytest.mark.swarm_multinode, pytest.mark.timeout(900)]

STACK_FILE = Path(__file__).parents[2] / "stacks" / "orchestrator-on-swarm.yml"
REDIS_IMAGE = "orchestrator/redis:7"
PREFIX = "orchestrator"  # the daemon's default: the Redis is the test's own
#: Up to this long for Swarm to see the node gone and start the daemon elsewhere.
MOVE_LIMIT = 240.0

USER_STACK = """
services:
  web:
    image: {image}
    command: [sleep, "3600"]
    init: true
    stop_grace_period: 1s
    deploy:
      replicas: 3
      restart_policy: {{condition: any, delay: 1s}}
"""


@pytest.fixture
def managers3(node_image: None) -> Iterator[tuple[Cluster, str, str]]:
    """Three managers with this tree's daemon image and busybox loaded, and a Redis on their
    network: (cluster, image, Redis address)."""
    if not base_image_present():
        if IN_CI:
            pytest.fail("orchestrator/daemon:latest is missing: run scripts/setup")
        pytest.skip("orchestrator/daemon:latest is missing: run scripts/setup")
    image = build_tree_image()
    cluster = Cluster.start(managers=3)
    try:
        cluster.load_images([image, BUSYBOX])
        # Labelled as the cluster: its removal removes this container too.
        docker("run", "--detach", "--name", f"{cluster.name}-redis", "--network", cluster.name,
               "--label", f"{LABEL_CLUSTER}={cluster.name}", REDIS_IMAGE,
               "redis-server", "--save", "", "--appendonly", "no", "--protected-mode", "no")
        address = docker("inspect", "--format", f'{{{{ (index .NetworkSettings.Networks "{cluster.name}").IPAddress }}}}',
                         f"{cluster.name}-redis")
        yield cluster, image, address
    finally:
        cluster.remove()
        remove_image(image)


class Daemon:
    """The daemon service's API, on whichever node runs it."""

    def __init__(self, cluster: Cluster, token: str) -> None:
        self.cluster = cluster
        self.token = token
        self.lost: set[str] = set()

    def alive(self) -> Node:
        return next(node for node in self.cluster.nodes if node.name not in self.lost)

    def running_on(self) -> Node | None:
        """The node of the daemon's task that runs (and is meant to), if any."""
        lines = self.cluster.docker("service", "ps", "orchestrator_daemon", "--filter", "desired-state=running",
                                    "--format", "{{.Node}} {{.CurrentState}}", node=self.alive())
        for line in lines.splitlines():
            node, _, state = line.partition(" ")
            if state.startswith("Running") and node not in self.lost:
                return next(n for n in self.cluster.nodes if n.name == node)
        return None

    async def request(self, node: Node, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
            async with session.request(method, f"http://{node.address}:7420{path}", headers=headers,
                                       **kwargs) as response:
                return response.status, await response.json(content_type=None)

    async def answering(self, limit: float) -> Node:
        """The node whose daemon answers /v1/stacks, once one does."""
        deadline = time.monotonic() + limit
        last: object = None
        while time.monotonic() < deadline:
            try:
                node = await asyncio.to_thread(self.running_on)
            except ClusterError as exc:  # the managers electing a new leader after a loss
                node, last = None, exc
            if node is not None:
                try:
                    status, body = await self.request(node, "GET", "/v1/stacks")
                    if status == 200:
                        return node
                    last = (status, body)
                except (aiohttp.ClientError, TimeoutError) as exc:
                    last = exc
            await asyncio.sleep(1)
        raise AssertionError(f"no daemon answered within {limit:.0f} s; last: {last}")


def last_states(messages: list[dict[str, Any]], stack: str, service: str) -> dict[str, dict[str, Any]]:
    """task id → its last task.state message."""
    last: dict[str, dict[str, Any]] = {}
    for message in messages:
        if message["type"] == "task.state" and message["stack"] == stack and message["service"] == service:
            last[message["task_id"]] = message
    return last


def running_nodes(messages: list[dict[str, Any]], stack: str, service: str, lost: set[str]) -> list[str]:
    """Nodes of the service's tasks last told running, leaving out the lost nodes (Swarm keeps
    their tasks' last reported state while it cannot hear from them)."""
    return sorted(m["node"] for m in last_states(messages, stack, service).values()
                  if m["swarm_state"] == "running" and m["node"] not in lost)


async def test_losing_the_daemons_node_loses_nothing(managers3: tuple[Cluster, str, str]) -> None:
    cluster, image, redis_address = managers3
    token = secrets.token_hex(16)
    env = {**os.environ, "ORCHESTRATOR_IMAGE": image, "ORCHESTRATOR_TOKEN": token, "REDIS_REPLICAS": "0",
           "REDIS_URL": f"redis://{redis_address}:6379/0"}
    await asyncio.to_thread(_stack_deploy, cluster, env)
    daemon = Daemon(cluster, token)
    client = aioredis.Redis.from_url(f"redis://{redis_address}:6379/0", decode_responses=True)
    stream = Stream(client, PREFIX)
    try:
        first = await daemon.answering(MOVE_LIMIT)
        stack = f"u{secrets.token_hex(3)}"
        status, body = await daemon.request(first, "PUT", f"/v1/stacks/{stack}", data=USER_STACK.format(image=BUSYBOX),
                                             headers={"Content-Type": "application/yaml"})
        assert status in (200, 201), body
        await stream.until(lambda m: len(running_nodes(m, stack, "web", set())) == 3, "3 replicas running")
        status, deployed = await daemon.request(first, "GET", f"/v1/stacks/{stack}")
        assert status == 200, deployed

        # The daemon's node is lost (killed: no chance to say goodbye).
        daemon.lost.add(first.name)
        await asyncio.to_thread(docker, "kill", first.name)
        second = await daemon.answering(MOVE_LIMIT)
        assert second.name != first.name

        # The new daemon adopts the stack: the stack file as deployed, from Swarm.
        status, adopted = await daemon.request(second, "GET", f"/v1/stacks/{stack}")
        assert status == 200 and adopted["spec"] == deployed["spec"]  # the summary's counts move

        # It tells what happens from now on: the lost node down, its replicas moved to the
        # others, and a scale through its API.
        messages = await stream.until(
            lambda m: any(x["type"] == "node.state" and x["node"] == first.name and x["node_state"] == "down"
                          for x in m) and len(running_nodes(m, stack, "web", daemon.lost)) == 3,
            "the lost node told down and its replicas running elsewhere", MOVE_LIMIT)
        status, body = await daemon.request(second, "POST", f"/v1/stacks/{stack}/scale", json={"web": 4})
        assert status in (200, 202), body
        messages = await stream.until(lambda m: len(running_nodes(m, stack, "web", daemon.lost)) == 4,
                                      "4 replicas running after the scale")
        assert set(running_nodes(messages, stack, "web", daemon.lost)) <= {n.name for n in cluster.nodes} - daemon.lost

        # Nothing told twice, no gap in seq, across the two daemons.
        assert messages[0]["seq"] == 1
        no_duplicates_and_gapless(messages)
        # The daemon's own tasks are told too (its stack is a stack): the lost one and the new one.
        daemons = last_states(messages, "orchestrator", "daemon")
        assert {m["node"] for m in daemons.values() if m["swarm_state"] == "running"} >= {second.name}
        validator = jsonschema.Draft202012Validator(events.load_schema())
        for message in messages:
            validator.validate(message)
    finally:
        await client.aclose()


def _stack_deploy(cluster: Cluster, env: dict[str, str]) -> None:
    done = subprocess.run(["docker", "-H", cluster.manager.docker_host, "stack", "deploy", "--resolve-image", "never",
                           "-c", str(STACK_FILE), "orchestrator"], env=env, capture_output=True, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
