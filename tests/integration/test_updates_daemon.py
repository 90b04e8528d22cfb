"""A daemon SIGKILLed in the middle of a rolling update (issue 7): the update's state is on disk,
the restarted daemon says which slots run which spec and finishes the update."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiodocker
import pytest

from orchestrator.labels import LABEL_SPEC_HASH, LABEL_STACK, LABEL_STANDBY
from tests.integration.conftest import BUSYBOX
from tests.integration.daemon_process import DaemonProcess

pytestmark = pytest.mark.integration
REPLICAS = 4


def stack(version: str) -> str:
    return (
        "services:\n"
        "  web:\n"
        f"    image: {BUSYBOX}\n"
        "    command: [\"sleep\", \"600\"]\n"
        f"    environment: {{VERSION: \"{version}\"}}\n"
        "    stop_grace_period: 1s\n"
        f"    deploy:\n      replicas: {REPLICAS}\n"
        "      update_config: {parallelism: 1, delay: 2s, monitor: 1s}\n"
    )


async def running_hashes(docker: aiodocker.Docker, stack_name: str) -> list[str]:
    found = await docker.containers.list(filters={"label": [f"{LABEL_STACK}={stack_name}"], "status": ["running"]})
    return [c["Labels"][LABEL_SPEC_HASH] for c in found]


async def web_view(daemon: DaemonProcess, stack_name: str) -> dict[str, Any]:
    status, body = await daemon.request("GET", f"/v1/stacks/{stack_name}/services")
    assert status == 200, body
    (view,) = body  # type: ignore[misc]
    return view  # type: ignore[no-any-return]


async def test_sigkill_mid_update_is_resumed(
    daemon: DaemonProcess, docker: aiodocker.Docker, stack_name: str
) -> None:
    await daemon.deploy(stack_name, stack("1"))
    async with asyncio.timeout(60):
        while len(await running_hashes(docker, stack_name)) != REPLICAS:
            await asyncio.sleep(0.2)
    (old,) = set(await running_hashes(docker, stack_name))
    await daemon.deploy(stack_name, stack("2"))
    async with asyncio.timeout(60):  # the first slot is replaced; the delay holds the second back
        while sum(h != old for h in await running_hashes(docker, stack_name)) < 1:
            await asyncio.sleep(0.1)
    await daemon.kill()

    record = json.loads((daemon.state_dir / "stacks" / f"{stack_name}.json").read_text())
    saved = record["updates"]["web"]
    assert saved["state"] == "updating" and saved["previous"]["environment"] == {"VERSION": "1"}
    hashes = await running_hashes(docker, stack_name)
    assert old in hashes and len(set(hashes)) == 2, "killed with two versions running"

    await daemon.start()
    view = await web_view(daemon, stack_name)
    if view["update_state"] == "updating":  # it says where it stands while it goes on
        assert f"on {old}" in view["update_message"] and "(target)" in view["update_message"]
    async with asyncio.timeout(90):
        while (view := await web_view(daemon, stack_name))["update_state"] != "completed":
            await asyncio.sleep(0.3)
    hashes = await running_hashes(docker, stack_name)
    assert len(hashes) == REPLICAS and old not in hashes and len(set(hashes)) == 1
    assert view["replicas_running"] == REPLICAS
    everything = await docker.containers.list(all=True, filters={"label": [f"{LABEL_STACK}={stack_name}"]})
    half_made = [c for c in everything if c["State"] == "created" and LABEL_STANDBY not in c["Labels"]]
    assert not half_made, "no container left half-made (a waiting standby is not: docs/standby.md)"
