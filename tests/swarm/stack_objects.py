"""A converted stack (orchestrator.swarm.convert.SwarmStack) sent to a Swarm manager through the
engine API, and a stack removed by its namespace label: the tests' stand-in for the Swarm
backend's deploy and rm (issue 15), enough to show that Swarm accepts what the conversion
produces. Also the wait for a service's tasks to run."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import aiodocker

from orchestrator.labels import LABEL_SWARM_NAMESPACE
from orchestrator.swarm.convert import SwarmStack
from orchestrator.swarm.objects import with_object_ids

#: Bounds the waits below: far above what they take, so only a hang reaches it.
WAIT_LIMIT = 120.0


async def create_stack(docker: aiodocker.Docker, stack: SwarmStack) -> dict[str, str]:
    """Create the stack's networks, secrets, configs and services in that order; returns the
    service ids by service name."""
    for network in stack.networks.values():
        await docker.networks.create(dict(network))
    secret_ids = {body["Name"]: (await docker.secrets.create(
        name=body["Name"], data=body["Data"], b64=True, labels=body["Labels"]))["ID"]
        for body in stack.secrets.values()}
    config_ids = {body["Name"]: (await docker.configs.create(
        name=body["Name"], data=body["Data"], b64=True, labels=body["Labels"]))["ID"]
        for body in stack.configs.values()}
    service_ids = {}
    for name, body in stack.services.items():
        # POST the body as it is: aiodocker's services.create rewrites Env and other fields.
        created = await docker._query_json("services/create", method="POST",
                                           data=with_object_ids(body, secret_ids, config_ids))
        service_ids[name] = created["ID"]
    return service_ids


async def remove_stack(docker: aiodocker.Docker, namespace: str) -> None:
    """What `docker stack rm` removes: services, then networks (once their tasks are gone),
    secrets and configs with the namespace label."""
    label = {"label": [f"{LABEL_SWARM_NAMESPACE}={namespace}"]}
    for service in await docker.services.list(filters=label):
        await _ignore_missing(docker.services.delete(service["ID"]))
    for network in await docker.networks.list(filters=label):
        await _remove_network(docker, network["Id"])
    for secret in await docker.secrets.list(filters=label):
        await _ignore_missing(docker.secrets.delete(secret["ID"]))
    for config in await docker.configs.list(filters=label):
        await _ignore_missing(docker.configs.delete(config["ID"]))


async def _remove_network(docker: aiodocker.Docker, network_id: str) -> None:
    """A network stays in use until the removed services' tasks have shut down: try again."""
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        try:
            await aiodocker.networks.DockerNetwork(docker, network_id).delete()
            return
        except aiodocker.DockerError as exc:
            if exc.status == 404:
                return
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.5)


async def _ignore_missing(removal: Any) -> None:
    try:
        await removal
    except aiodocker.DockerError as exc:
        if exc.status != 404:
            raise


async def running_tasks(docker: aiodocker.Docker, service_id: str, count: int) -> list[Mapping[str, Any]]:
    """Wait until `count` tasks of the service run; those tasks. Fails with the tasks' states
    and errors when they do not within WAIT_LIMIT."""
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        tasks = await docker.tasks.list(filters={"service": [service_id], "desired-state": ["running"]})
        running = [task for task in tasks if task["Status"]["State"] == "running"]
        if len(running) == count and len(tasks) == count:
            return running
        if time.monotonic() > deadline:
            states = [(task["Status"]["State"], task["Status"].get("Err", "")) for task in tasks]
            raise AssertionError(f"service {service_id}: {len(running)}/{count} tasks running: {states}")
        await asyncio.sleep(0.3)
