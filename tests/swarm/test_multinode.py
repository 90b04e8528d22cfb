"""The daemon with ORCHESTRATOR_BACKEND=swarm on a Swarm of three nodes (a manager and two
workers), in its own process, publishing on Redis: a placement constraint pins a service to a
worker; a replica killed on a worker is told (its node kept) and replaced; `docker stack ps`
agrees with the daemon's `ps`; the daemon killed and started again sends nothing twice and its
`seq` goes on without a gap; a worker stopped is told down and its tasks run on the others.

This test starts a cluster of its own (it stops one of its nodes), about 6 s, and takes 1-3
minutes here: marked `swarm_multinode` (`pytest -m "not swarm_multinode"` leaves it out).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import redis.asyncio as aioredis

from orchestrator.publishing import events
from orchestrator.publishing.channels import STREAM_FIELD_EVENT
from tests.integration.conftest import BUSYBOX
from tests.integration.daemon_process import DaemonProcess
from tests.swarm.cluster import Cluster
from tests.swarm.docker_cli import docker
from tests.swarm.stack_objects import WAIT_LIMIT

pytestmark = [pytest.mark.integration, pytest.mark.swarm, pytest.mark.swarm_multinode]

STACK = """
services:
  pinned:
    image: {image}
    command: [sleep, "3600"]
    init: true
    stop_grace_period: 1s
    deploy:
      placement:
        constraints: [node.hostname == {pin}]
  web:
    image: {image}
    command: [sleep, "3600"]
    init: true
    stop_grace_period: 1s
    deploy:
      replicas: 4
      restart_policy: {{condition: any, delay: 1s}}
      placement:
        constraints: [node.role == worker]
"""


@pytest.fixture
def swarm3_own(node_image: None) -> Iterator[Cluster]:
    cluster = Cluster.start(workers=2)
    try:
        cluster.load_images([BUSYBOX])
        yield cluster
    finally:
        cluster.remove()


class Stream:
    """The daemon's messages as they reach the Redis stream (its replay store)."""

    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._client = client
        self._key = f"{prefix}:stream"

    async def read(self) -> list[dict[str, Any]]:
        entries = await self._client.xrange(self._key)
        return [json.loads(fields[STREAM_FIELD_EVENT]) for _, fields in entries]

    async def until(self, check: Callable[[list[dict[str, Any]]], bool], what: str,
                    limit: float = WAIT_LIMIT) -> list[dict[str, Any]]:
        deadline = time.monotonic() + limit
        while True:
            messages = await self.read()
            if check(messages):
                return messages
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last messages: {messages[-15:]}")
            await asyncio.sleep(0.3)


def tasks_of(messages: list[dict[str, Any]], service: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "task.state" and m["service"] == service]


def running_on(messages: list[dict[str, Any]], service: str) -> dict[str, str]:
    """task id → node of the service's tasks whose last message says running."""
    last: dict[str, dict[str, Any]] = {}
    for message in tasks_of(messages, service):
        last[message["task_id"]] = message
    return {task_id: m["node"] for task_id, m in last.items() if m["swarm_state"] == "running"}


async def test_a_three_node_swarm_through_the_daemon(swarm3_own: Cluster, tmp_path: Path, redis_prefix: str,
                                                     redis_client: aioredis.Redis) -> None:
    cluster = swarm3_own
    worker1, worker2 = cluster.workers
    daemon = DaemonProcess(tmp_path / "state", redis_prefix, extra_env={
        "ORCHESTRATOR_BACKEND": "swarm", "DOCKER_HOST": cluster.manager.docker_host,
        "ORCHESTRATOR_SWARM_POLL_INTERVAL": "0.3"})
    stream = Stream(redis_client, redis_prefix)
    await daemon.start()
    try:
        await daemon.deploy("multi", STACK.format(image=BUSYBOX, pin=worker1.name))
        await stream.until(lambda m: len(running_on(m, "web")) == 4 and len(running_on(m, "pinned")) == 1,
                           "4 web replicas and the pinned one running")
        messages = await stream.read()
        # The constraint pins the service to worker 1; web runs on the workers only.
        assert set(running_on(messages, "pinned").values()) == {worker1.name}
        assert set(running_on(messages, "web").values()) <= {worker1.name, worker2.name}
        nodes = {m["node"]: m["node_state"] for m in messages if m["type"] == "node.state"}
        assert nodes == {node.name: "ready" for node in cluster.nodes}

        # `docker stack ps` agrees with the daemon's ps: the same tasks on the same nodes.
        await _same_as_docker_stack_ps(daemon, cluster)

        # A replica killed on a worker: told failed there, its slot gets a new task.
        victim_id, victim_node = next((t, n) for t, n in running_on(messages, "web").items() if n == worker2.name)
        victim = next(m for m in tasks_of(messages, "web") if m["task_id"] == victim_id and m.get("container_id"))
        docker("kill", victim["container_id"], host=worker2.docker_host)
        messages = await stream.until(
            lambda m: any(x["task_id"] == victim_id and x["swarm_state"] == "failed" for x in tasks_of(m, "web"))
            and len(running_on(m, "web")) == 4, "the killed replica told failed and replaced")
        failed = next(x for x in tasks_of(messages, "web") if x["task_id"] == victim_id and x["swarm_state"] == "failed")
        assert (failed["from"], failed["to"], failed["node"]) == ("running", "failed", victim_node)
        replacement = [x for x in tasks_of(messages, "web") if x["slot"] == victim["slot"] and x["task_id"] != victim_id]
        assert replacement and replacement[-1]["swarm_state"] == "running"

        # The daemon killed and started again: nothing told twice, seq without a gap.
        await daemon.kill()
        await daemon.start()
        docker("kill", _container(messages, "pinned"), host=worker1.docker_host)
        messages = await stream.until(
            lambda m: any(x["swarm_state"] == "failed" for x in tasks_of(m, "pinned"))
            and len(running_on(m, "pinned")) == 1, "the pinned replica killed while restarted, replaced")
        no_duplicates_and_gapless(messages)

        # A worker stopped: told down, its tasks run on the other worker.
        docker("stop", "--time", "1", worker2.name)
        messages = await stream.until(
            lambda m: any(x["type"] == "node.state" and x["node"] == worker2.name and x["node_state"] == "down"
                          for x in m) and set(running_on_live(m, "web", worker2.name).values()) == {worker1.name}
            and len(running_on_live(m, "web", worker2.name)) == 4,
            "worker 2 down and its replicas rescheduled on worker 1")
        no_duplicates_and_gapless(messages)
        validator = jsonschema.Draft202012Validator(events.load_schema())
        for message in messages:
            validator.validate(message)
    finally:
        if daemon.process is not None and daemon.process.returncode is None:
            await daemon.stop()


def running_on_live(messages: list[dict[str, Any]], service: str, down: str) -> dict[str, str]:
    """As running_on, leaving out the tasks of the node that is down (Swarm keeps their last
    reported state, running, while it cannot hear from them)."""
    return {task: node for task, node in running_on(messages, service).items() if node != down}


def _container(messages: list[dict[str, Any]], service: str) -> str:
    task_id = next(iter(running_on(messages, service)))
    return next(m["container_id"] for m in tasks_of(messages, service)
                if m["task_id"] == task_id and m.get("container_id"))


def no_duplicates_and_gapless(messages: list[dict[str, Any]]) -> None:
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    told = [(m["task_id"], m["swarm_state"]) for m in messages if m["type"] == "task.state"]
    assert len(told) == len(set(told)), [t for t in told if told.count(t) > 1]


async def _same_as_docker_stack_ps(daemon: DaemonProcess, cluster: Cluster) -> None:
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        status, ours = await daemon.request("GET", "/v1/stacks/multi/tasks?all=true")
        assert status == 200, ours
        theirs = cluster.docker("stack", "ps", "multi", "--no-trunc", "--format", "{{.ID}} {{.Node}} {{.DesiredState}}")
        mine = sorted(f"{t['task_id']} {t['node']} {t['desired_state'].capitalize()}" for t in ours)
        if mine == sorted(theirs.split("\n")):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"orchestrator ps:\n{mine}\ndocker stack ps:\n{theirs}")
        await asyncio.sleep(0.5)
