"""Jobs on Swarm (`deploy.mode: replicated-job | global-job`) and `deploy --wait` that ends when
they are done (docker stack deploy has no such wait), on the 1-node test Swarm: the CLI's wait
(cli/commands.wait_converged) reads the services the Swarm backend answers."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from orchestrator.cli.commands import wait_converged
from orchestrator.errors import UserError
from orchestrator.stackfile import load_stack
from orchestrator.swarm.control import SwarmControl
from tests.integration.conftest import BUSYBOX
from tests.swarm.cluster import Cluster
from tests.swarm.test_backend import SWARM, redis_prefix, running_backend  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.swarm]

STACK = """
services:
  migrate:
    image: {image}
    command: [sh, -c, "sleep 2; echo migrated {version}"]
    deploy:
      mode: replicated-job
      replicas: 2
  once-a-node:
    image: {image}
    command: [sh, -c, "echo here {version}"]
    deploy:
      mode: global-job
  web:
    image: {image}
    command: [sleep, "3600"]
    init: true
    stop_grace_period: 1s
"""

FAILING = """
services:
  broken:
    image: {image}
    command: [sh, -c, "exit 3"]
    deploy:
      mode: replicated-job
      restart_policy: {{condition: none}}
"""


class ControlAsClient:
    """What wait_converged asks of the API client, answered by the Swarm backend itself."""

    def __init__(self, control: SwarmControl) -> None:
        self._control = control

    async def services(self, stack: str) -> list[dict[str, Any]]:
        return [dataclasses.asdict(view) for view in await self._control.services(stack)]


def spec(tmp_path: Path, stack: str, text: str, version: str = "1") -> Any:
    path = tmp_path / "stack.yml"
    path.write_text(text.format(image=BUSYBOX, version=version))
    return load_stack(path, name=stack, limits=SWARM, deploying=True)


async def test_deploy_wait_ends_when_the_jobs_are_done(swarm1: Cluster, swarm1_stack: str, tmp_path: Path,
                                                       redis_client: aioredis.Redis, redis_prefix: str,  # noqa: F811
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    stack = swarm1_stack
    async with running_backend(swarm1, redis_client, redis_prefix) as backend:
        await backend.control.deploy(spec(tmp_path, stack, STACK))
        assert await wait_converged(ControlAsClient(backend.control), stack, timeout=120) == 0  # type: ignore[arg-type]
        views = {view.name: view for view in await backend.control.services(stack)}
        assert (views["migrate"].mode, views["migrate"].replicas_completed, views["migrate"].replicas_desired) == \
            ("replicated-job", 2, 2)
        assert (views["once-a-node"].mode, views["once-a-node"].replicas_completed) == ("global-job", 1)
        assert views["web"].replicas_running == 1
        # `ls` counts the replicas to keep running: the jobs' tasks are not among them.
        await backend.watcher.refresh()
        [summary] = [view for view in backend.control.stacks() if view.name == stack]
        assert (summary.services, summary.replicas_desired, summary.replicas_running) == (3, 1, 1)
        out = capsys.readouterr().out
        assert "migrate: 2/2 completed" in out and f"Stack {stack} converged" in out
        # The two tasks of the replicated job are slots 1 and 2, told complete.
        await backend.until(lambda: sum(m.swarm_state == "complete" for m in backend.task_messages(stack, "migrate")) == 2,
                            "both job tasks told complete")
        assert {m.slot for m in backend.task_messages(stack, "migrate")} == {1, 2}

        # A changed job runs again: the wait waits for the new run, not the old one's completions.
        await backend.control.deploy(spec(tmp_path, stack, STACK, version="2"))
        assert await wait_converged(ControlAsClient(backend.control), stack, timeout=120) == 0  # type: ignore[arg-type]
        lines = [line.text async for line in backend.control.logs(stack, "migrate")]
        assert sum("migrated 2" in line for line in lines) == 2

        # Scaling a job is refused: it runs again with a deploy.
        with pytest.raises(UserError, match="replicated mode"):
            await backend.control.scale(stack, {"migrate": 3})


async def test_deploy_wait_ends_with_an_error_for_a_job_that_failed_for_good(
        swarm1: Cluster, swarm1_stack: str, tmp_path: Path, redis_client: aioredis.Redis,
        redis_prefix: str) -> None:  # noqa: F811
    stack = swarm1_stack
    async with running_backend(swarm1, redis_client, redis_prefix) as backend:
        await backend.control.deploy(spec(tmp_path, stack, FAILING))
        with pytest.raises(UserError, match=r"will not converge: restart policy gave up on broken \(1 gave up: "):
            await wait_converged(ControlAsClient(backend.control), stack, timeout=120)  # type: ignore[arg-type]
