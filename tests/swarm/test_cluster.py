"""The Swarm harness on real dind nodes: Swarm schedules across them, a host-mode port answers on
a node's address, a drained node's tasks move to the others."""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
import pytest

from orchestrator.labels import LABEL_SWARM_NAMESPACE
from tests.integration.conftest import BUSYBOX
from tests.swarm.cleanup import CGROUP_ROOT, cleanup_stale, clusters
from tests.swarm.cluster import Cluster
from tests.swarm.docker_cli import BASE_DIR
from tests.swarm.stack_objects import WAIT_LIMIT, running_tasks

pytestmark = [pytest.mark.integration, pytest.mark.swarm]

REPO = Path(__file__).resolve().parents[2]
#: A run that starts a cluster, runs a container in it and waits to be killed.
KILLED_RUN = f"""
from tests.swarm.cluster import Cluster
cluster = Cluster.start()
cluster.load_images(["{BUSYBOX}"])
cluster.docker("run", "--detach", "--init", "{BUSYBOX}", "sleep", "600")
print(cluster.name, flush=True)
import time; time.sleep(600)
"""


def _busybox_task(*command: str) -> dict[str, Any]:
    # Init: busybox as PID 1 ignores SIGTERM; with tini it stops at once when the test cleans up.
    return {"ContainerSpec": {"Image": BUSYBOX, "Command": list(command), "Init": True}}


async def _create(docker: aiodocker.Docker, stack: str, service: str, replicas: int, **spec: Any) -> str:
    created = await docker.services.create(
        task_template=spec.pop("task_template", _busybox_task("sleep", "3600")),
        name=f"{stack}_{service}",
        labels={LABEL_SWARM_NAMESPACE: stack},
        mode={"Replicated": {"Replicas": replicas}},
        **spec,
    )
    return str(created["ID"])


async def _node_ids(docker: aiodocker.Docker) -> dict[str, str]:
    """Node hostname → node id."""
    return {node["Description"]["Hostname"]: node["ID"] for node in await docker.nodes.list()}


def test_cluster_nodes_are_ready_with_their_roles(swarm3: Cluster) -> None:
    roles = swarm3.docker("node", "ls", "--format", "{{.Hostname}} {{if .ManagerStatus}}{{.ManagerStatus}}{{else}}-{{end}}")
    assert sorted(roles.splitlines()) == sorted([f"{swarm3.manager.name} Leader"] + [f"{node.name} -" for node in swarm3.workers])
    assert swarm3.node_states() == {node.name: ("Ready", "Active") for node in swarm3.nodes}


async def test_three_replicas_spread_one_task_per_node(swarm3: Cluster, swarm3_docker: aiodocker.Docker,
                                                       swarm3_stack: str) -> None:
    service_id = await _create(swarm3_docker, swarm3_stack, "spread", 3)

    tasks = await running_tasks(swarm3_docker, service_id, 3)

    nodes = await _node_ids(swarm3_docker)
    assert sorted(task["NodeID"] for task in tasks) == sorted(nodes[node.name] for node in swarm3.nodes)


async def test_host_mode_port_answers_on_the_node_address(swarm1: Cluster, swarm1_docker: aiodocker.Docker,
                                                          swarm1_stack: str) -> None:
    port = random.randint(20000, 29999)  # in the node's own network namespace
    service_id = await _create(
        swarm1_docker, swarm1_stack, "web", 1,
        task_template=_busybox_task("httpd", "-f", "-p", "80", "-h", "/www"),
        endpoint_spec={"Ports": [{"Protocol": "tcp", "TargetPort": 80, "PublishedPort": port, "PublishMode": "host"}]},
    )
    await running_tasks(swarm1_docker, service_id, 1)

    body = await _get_when_listening(f"http://{swarm1.manager.address}:{port}/")

    assert body == "ok\n"


async def _get_when_listening(url: str) -> str:
    """The task runs before httpd listens: try again while the connection is refused."""
    deadline = time.monotonic() + WAIT_LIMIT
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        while True:
            try:
                async with session.get(url) as response:
                    assert response.status == 200
                    return await response.text()
            except aiohttp.ClientConnectionError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


async def test_draining_a_node_moves_its_tasks_to_the_others(swarm3: Cluster, swarm3_docker: aiodocker.Docker,
                                                             swarm3_stack: str) -> None:
    service_id = await _create(swarm3_docker, swarm3_stack, "moved", 3)
    await running_tasks(swarm3_docker, service_id, 3)
    drained = (await _node_ids(swarm3_docker))[swarm3.workers[0].name]

    await _set_availability(swarm3_docker, drained, "drain")
    try:
        tasks = await _tasks_off(swarm3_docker, service_id, drained, 3)
    finally:
        await _set_availability(swarm3_docker, drained, "active")

    assert len({task["Slot"] for task in tasks}) == 3
    assert drained not in {task["NodeID"] for task in tasks}


async def _set_availability(docker: aiodocker.Docker, node_id: str, availability: str) -> None:
    node = await docker.nodes.inspect(node_id=node_id)
    spec: Mapping[str, Any] = {**node["Spec"], "Availability": availability}
    await docker.nodes.update(node_id=node_id, version=node["Version"]["Index"], spec=spec)


async def _tasks_off(docker: aiodocker.Docker, service_id: str, node_id: str, count: int) -> list[Mapping[str, Any]]:
    """Wait until `count` tasks run, none of them on `node_id`."""
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        tasks = await running_tasks(docker, service_id, count)
        if all(task["NodeID"] != node_id for task in tasks) or time.monotonic() > deadline:
            return tasks
        await asyncio.sleep(0.3)


def test_cleanup_stale_removes_what_a_killed_run_left_and_nothing_else(swarm1: Cluster) -> None:
    run = subprocess.Popen([sys.executable, "-c", KILLED_RUN], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        name = run.stdout.readline().strip()  # type: ignore[union-attr]
    finally:
        run.kill()
        run.wait()
    assert name in clusters()
    assert list(CGROUP_ROOT.glob(f"*/{name}")), "the node's container has cgroups under the cluster's parent"

    removed = cleanup_stale()

    assert name in removed and name not in clusters()
    assert not (BASE_DIR / name).exists() and not list(CGROUP_ROOT.glob(f"*/{name}"))
    assert swarm1.name in clusters()  # its owner, this process, is alive
