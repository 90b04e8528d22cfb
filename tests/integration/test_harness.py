"""Proves the harness itself: a real engine runs our locally built image, its events reach us,
and the stack_name fixture cleans up by label."""

from __future__ import annotations

import asyncio
import json

import aiodocker
import pytest

from orchestrator.labels import LABEL_STACK
from tests.integration.conftest import BUSYBOX

pytestmark = pytest.mark.integration


async def test_labelled_container_start_and_die_events(docker: aiodocker.Docker, stack_name: str) -> None:
    label = f"{LABEL_STACK}={stack_name}"
    events = docker.events.subscribe(create_task=False)
    reader = asyncio.create_task(
        docker.events.run(filters=json.dumps({"type": ["container"], "label": [label]}))
    )
    try:
        await asyncio.sleep(0.2)  # let the event stream open before the container exists
        container = await docker.containers.run(
            {"Image": BUSYBOX, "Cmd": ["sh", "-c", "sleep 0.3; exit 3"], "Labels": {LABEL_STACK: stack_name}},
            name=f"{stack_name}_harness",
        )
        seen: list[tuple[str, dict[str, str]]] = []
        async with asyncio.timeout(30):
            while not any(action == "die" for action, _ in seen):
                event = await events.get()
                assert event is not None, "event stream ended"
                seen.append((event["Action"], event["Actor"]["Attributes"]))
        actions = [action for action, _ in seen]
        assert actions.index("start") < actions.index("die")
        die_attributes = dict(seen)["die"]
        assert die_attributes["exitCode"] == "3"
        assert die_attributes[LABEL_STACK] == stack_name
        assert all(attrs[LABEL_STACK] == stack_name for _, attrs in seen)
        assert (await container.show())["State"]["ExitCode"] == 3
    finally:
        await docker.events.stop()
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)


async def test_cleanup_removes_labelled_objects(docker: aiodocker.Docker, stack_name: str) -> None:
    from tests.integration.conftest import remove_stack_objects

    labels = {LABEL_STACK: stack_name}
    await docker.networks.create({"Name": f"{stack_name}_net", "Labels": labels})
    await docker.volumes.create({"Name": f"{stack_name}_vol", "Labels": labels})
    await docker.containers.create({"Image": BUSYBOX, "Labels": labels}, name=f"{stack_name}_c")
    await remove_stack_objects(docker, stack_name)
    flt = {"label": [f"{LABEL_STACK}={stack_name}"]}
    assert await docker.containers.list(all=True, filters=flt) == []
    assert await docker.networks.list(filters=flt) == []
    assert not (await docker.volumes.list(filters=flt)).get("Volumes")
