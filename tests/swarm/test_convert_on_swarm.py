"""What orchestrator.swarm.convert produces, sent to a real Swarm (the 1-node dind one): Swarm
accepts every body and keeps every field, the tasks run with their secrets and configs, the
stack shows in `docker stack ls/ps/services`, and a changed secret becomes a new version that the
service moves to while the old one can go."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import textwrap
import time
from pathlib import Path
from typing import Any

import aiodocker
import pytest

from orchestrator.model.spec import Placement, StackSpec
from orchestrator.stackfile import load_stack
from orchestrator.swarm.convert import SwarmStack, convert_stack
from orchestrator.swarm.files import read_file_data
from orchestrator.swarm.objects import stale_objects, with_object_ids
from tests.integration.conftest import BUSYBOX
from tests.swarm.cluster import Cluster
from tests.swarm.stack_objects import WAIT_LIMIT, create_stack, running_tasks

pytestmark = [pytest.mark.integration, pytest.mark.swarm]

REPO = Path(__file__).resolve().parents[2]

STACK = """
services:
  web:
    image: {image}
    command: [httpd, -f, -p, "80", -h, /www]
    init: true
    environment: {{GREETING: hello, EMPTY: ""}}
    labels: {{tier: front}}
    hostname: web-host
    working_dir: /www
    stop_signal: SIGINT
    stop_grace_period: 2s
    healthcheck: {{test: [CMD, "true"], interval: 1s, timeout: 1s, retries: 2}}
    secrets: [pw]
    configs: [{{source: conf, target: /etc/app.conf, mode: 0440}}]
    cap_drop: [NET_RAW]
    ulimits: {{nofile: {{soft: 1024, hard: 2048}}}}
    sysctls: {{net.core.somaxconn: "512"}}
    extra_hosts: ["db.local:10.0.0.3"]
    tmpfs: [/scratch]
    volumes: ["data:/data"]
    networks: {{front: {{aliases: [www]}}}}
    ports: [{{target: 80, published: {port}, mode: host}}]
    logging: {{driver: json-file, options: {{max-size: 1m}}}}
    deploy:
      endpoint_mode: dnsrr
      labels: {{team: a}}
      resources: {{limits: {{cpus: "0.5", memory: 64M, pids: 100}}, reservations: {{memory: 8M}}}}
      restart_policy: {{condition: on-failure, delay: 1s, max_attempts: 3, window: 30s}}
      update_config: {{parallelism: 2, delay: 1s, order: start-first, failure_action: rollback, monitor: 2s}}
      rollback_config: {{parallelism: 1, failure_action: pause}}
  worker:
    image: {image}
    init: true
    deploy: {{mode: global}}
    networks: [front]
networks:
  front: {{attachable: true, labels: {{x: y}}}}
volumes:
  data: {{labels: {{keep: "1"}}}}
secrets:
  pw: {{file: ./pw.txt}}
configs:
  conf: {{content: "a=1"}}
"""


def _load(directory: Path, name: str, password: str) -> StackSpec:
    (directory / "pw.txt").write_text(password)
    (directory / "stack.yml").write_text(textwrap.dedent(STACK.format(image=BUSYBOX, port=random.randint(20000, 29999))))
    stack = load_stack([directory / "stack.yml"], env={}, name=name)
    # The loader does not read deploy.placement yet (it has no meaning on one engine).
    web = dataclasses.replace(stack.services["web"], placement=Placement(("node.role == manager",), ("node.labels.zone",)))
    return dataclasses.replace(stack, services={**stack.services, "web": web})


def _converted(stack: StackSpec) -> SwarmStack:
    return convert_stack(stack, read_file_data(stack))


async def _deploy(docker: aiodocker.Docker, directory: Path, name: str, password: str) -> tuple[SwarmStack, dict[str, str]]:
    """Convert the stack above, create it, wait for its web task: (converted, service ids)."""
    converted = _converted(_load(directory, name, password))
    ids = await create_stack(docker, converted)
    await running_tasks(docker, ids["web"], 1)
    return converted, ids


async def test_swarm_accepts_and_keeps_every_field_of_the_converted_stack(
    swarm1: Cluster, swarm1_docker: aiodocker.Docker, swarm1_stack: str, tmp_path: Path
) -> None:
    converted, ids = await _deploy(swarm1_docker, tmp_path, swarm1_stack, "hunter2")
    await running_tasks(swarm1_docker, ids["worker"], 1)

    network_names = {network["Id"]: network["Name"] for network in await swarm1_docker.networks.list()}
    for name, sent in converted.services.items():
        stored = json.loads(swarm1.docker("service", "inspect", sent["Name"]))[0]["Spec"]
        for attachment in stored["TaskTemplate"].get("Networks", []):
            attachment["Target"] = network_names[attachment["Target"]]  # Swarm keeps ids, we send names
        _assert_kept(sent, stored, name)
    web = _container_of(swarm1, f"{swarm1_stack}_web")
    assert swarm1.docker("exec", web, "cat", "/run/secrets/pw") == "hunter2"
    assert swarm1.docker("exec", web, "stat", "-c", "%a %n", "/etc/app.conf") == "440 /etc/app.conf"


def _assert_kept(sent: Any, stored: Any, path: str) -> None:
    """Every field we sent is in what Swarm stored, with our value (Swarm adds its defaults, and
    leaves out zero values, as Go's `omitempty` does)."""
    if isinstance(sent, dict):
        assert isinstance(stored, dict), path
        for key, value in sent.items():
            if key not in stored:
                assert not value, f"{path}.{key} was dropped"
                continue
            _assert_kept(value, stored[key], f"{path}.{key}")
    elif isinstance(sent, list):
        assert isinstance(stored, list) and len(stored) == len(sent), f"{path}: {stored}"
        for index, (mine, theirs) in enumerate(zip(sent, stored, strict=True)):
            _assert_kept(mine, theirs, f"{path}[{index}]")
    else:
        assert sent == stored, f"{path}: sent {sent!r}, Swarm has {stored!r}"


def _container_of(cluster: Cluster, service: str) -> str:
    return cluster.docker("ps", "--quiet", "--filter", f"label=com.docker.swarm.service.name={service}").split()[0]


async def test_the_stack_shows_in_docker_stack_ls_ps_and_services(
    swarm1: Cluster, swarm1_docker: aiodocker.Docker, swarm1_stack: str
) -> None:
    env = {"WEB_IMAGE": BUSYBOX, "REDIS_IMAGE": BUSYBOX}  # busybox's command: sleep
    stack = load_stack([REPO / "stacks/getting-started.yml"], env=env, name=swarm1_stack)

    ids = await create_stack(swarm1_docker, convert_stack(stack))
    await running_tasks(swarm1_docker, ids["web"], 5)
    await running_tasks(swarm1_docker, ids["redis"], 1)

    stacks = swarm1.docker("stack", "ls", "--format", "{{.Name}} {{.Services}}").splitlines()
    assert f"{swarm1_stack} 2" in stacks
    services = swarm1.docker("stack", "services", swarm1_stack, "--format", "{{.Name}} {{.Replicas}}").splitlines()
    assert sorted(services) == [f"{swarm1_stack}_redis 1/1", f"{swarm1_stack}_web 5/5"]
    tasks = swarm1.docker("stack", "ps", swarm1_stack, "--format", "{{.Name}} {{.CurrentState}}").splitlines()
    assert sorted(line.split()[0] for line in tasks) == [f"{swarm1_stack}_redis.1"] + [
        f"{swarm1_stack}_web.{slot}" for slot in range(1, 6)]
    assert all(line.split()[1] == "Running" for line in tasks), tasks


async def test_a_changed_secret_is_a_new_version_the_service_moves_to(
    swarm1: Cluster, swarm1_docker: aiodocker.Docker, swarm1_stack: str, tmp_path: Path
) -> None:
    first, ids = await _deploy(swarm1_docker, tmp_path, swarm1_stack, "one")

    second = _converted(_load(tmp_path, swarm1_stack, "two"))
    body = second.secrets["pw"]
    created = await swarm1_docker.secrets.create(name=body["Name"], data=body["Data"], b64=True, labels=body["Labels"])
    secret_ids = {body["Name"]: created["ID"]}
    config_ids = {config["Spec"]["Name"]: config["ID"] for config in await swarm1_docker.configs.list()}
    service = await swarm1_docker.services.inspect(ids["web"])
    await swarm1_docker._query_json(
        f"services/{ids['web']}/update", method="POST", params={"version": service["Version"]["Index"]},
        data=with_object_ids(second.services["web"], secret_ids, config_ids))
    await _wait_for_secret(swarm1, swarm1_docker, ids["web"], "two")

    stale = stale_objects(swarm1_stack, await swarm1_docker.secrets.list(), second.secret_names.values())
    old = [secret["ID"] for secret in await swarm1_docker.secrets.list(filters={"name": [first.secret_names["pw"]]})]
    assert first.secret_names["pw"] != body["Name"] and stale == old and len(old) == 1
    await swarm1_docker.secrets.delete(stale[0])  # no service uses it any more


async def _wait_for_secret(cluster: Cluster, docker: aiodocker.Docker, service_id: str, content: str) -> None:
    """The rolling update replaces the task: wait until the one running reads the new content."""
    deadline = time.monotonic() + WAIT_LIMIT
    while True:
        task = (await running_tasks(docker, service_id, 1))[0]
        container = task["Status"]["ContainerStatus"]["ContainerID"]
        if cluster.docker("exec", container, "cat", "/run/secrets/pw") == content:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"service {service_id} never ran with the new secret")
        await asyncio.sleep(0.2)
