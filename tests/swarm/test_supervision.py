"""What Swarm's restart supervisor did, told as on one engine (swarm/supervision.py), on the
1-node test Swarm: a replica that keeps failing is told restart_scheduled per restart, then
gave_up once its max_attempts are used up; each service's running count is told converged or
degraded when it moves."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import redis.asyncio as aioredis

from orchestrator.publishing import events
from orchestrator.stackfile import load_stack
from tests.integration.conftest import BUSYBOX
from tests.swarm.cluster import Cluster
from tests.swarm.test_backend import SWARM, redis_prefix, running_backend  # noqa: F401 (fixture)

pytestmark = [pytest.mark.integration, pytest.mark.swarm]

STACK = """
services:
  crashing:
    image: {image}
    command: [sh, -c, "exit 3"]
    deploy:
      restart_policy: {{condition: on-failure, delay: 1s, max_attempts: 2}}
  steady:
    image: {image}
    command: [sleep, "3600"]
    init: true
    stop_grace_period: 1s
    deploy:
      replicas: 2
"""


async def test_restarts_gave_up_converged_and_degraded(swarm1: Cluster, swarm1_stack: str, tmp_path: Path,
                                                       redis_client: aioredis.Redis, redis_prefix: str) -> None:  # noqa: F811
    stack = swarm1_stack
    path = tmp_path / "stack.yml"
    path.write_text(STACK.format(image=BUSYBOX))
    async with running_backend(swarm1, redis_client, redis_prefix) as backend:
        await backend.control.deploy(load_stack(path, name=stack, limits=SWARM, deploying=True))

        def mine(kind: str, service: str) -> list[events.Event]:
            return [m for m in backend.messages if m.type == kind and m.stack == stack and m.service == service]

        await backend.until(lambda: mine("task.gave_up", "crashing"), "the crashing replica given up")
        restarts = mine("task.restart_scheduled", "crashing")
        assert [(m.slot, m.delay_s, m.reason, m.exit_code) for m in restarts] == [(1, 1.0, "on-failure", 3)] * 2
        [gave_up] = mine("task.gave_up", "crashing")
        assert (gave_up.slot, gave_up.reason, gave_up.exit_code) == (1, "2 attempts", 3)
        failed = [m for m in backend.task_messages(stack, "crashing") if m.swarm_state == "failed"]
        assert len(failed) == 3  # the first run and its two restarts

        await backend.until(lambda: any(m.running == 2 for m in mine("service.converged", "steady")),
                            "steady converged")
        degraded = mine("service.degraded", "crashing")
        assert degraded and degraded[-1].running == 0 and degraded[-1].reason == "0/1 replicas running"

        schema = jsonschema.Draft202012Validator(events.load_schema())
        for message in [*restarts, gave_up, *degraded, *mine("service.converged", "steady")]:
            schema.validate(message.message(seq=1, time=1.0))
