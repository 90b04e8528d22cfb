"""Health probes that a live-restoring dockerd forgets to run again.

Before 23.0, dockerd does not probe the health of the containers it live-restored (moby#41871;
resumed by moby#41935 in 23.0): after a dockerd restart with `live-restore`, a replica that turns
sick stays "healthy" for ever, so it is neither taken out of the ingress nor replaced. The engine
starts a container's probe again when the container is unpaused, so a pause and an unpause of each
of our running replicas with a healthcheck restores the probes. The replica is frozen (not
stopped) for the moment in between: its connections stay open and nothing restarts.
"""

from __future__ import annotations

import asyncio
import re

import aiodocker
import structlog

from orchestrator import labels
from orchestrator.engine.calls import engine_errors, is_missing
from orchestrator.errors import EngineError

log = structlog.stdlib.get_logger()

#: The first engine version that probes its live-restored containers again.
FIXED_IN = (23, 0)
#: Replicas paused and unpaused at a time.
CONCURRENCY = 8
#: A running container with a healthcheck shows its health in the list's Status, e.g.
#: "Up 5 minutes (healthy)", "Up 2 seconds (health: starting)", "Up 1 hour (unhealthy)".
_HAS_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


def forgets_probes(version: str) -> bool:
    """Whether an engine of this version ("20.10.24+dfsg1", "27.3.1") leaves live-restored
    containers unprobed. A version it cannot read is taken as a current one."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return match is not None and (int(match[1]), int(match[2])) < FIXED_IN


async def restart_probes(docker: aiodocker.Docker) -> int:
    """Pause and unpause each of our running containers that has a healthcheck; how many were.
    A container gone meanwhile is skipped; one left paused is never: unpause is always tried."""
    with engine_errors():
        listed = await docker.containers.list(filters={**labels.stack_filter(), "status": ["running"]})
    ids = [c["Id"] for c in listed if _HAS_HEALTH.search(c["Status"] or "")]
    limit = asyncio.Semaphore(CONCURRENCY)

    async def pause_and_unpause(container_id: str) -> bool:
        container = docker.containers.container(container_id)
        async with limit:
            try:
                with engine_errors():
                    await container.pause()
            except EngineError as exc:
                if is_missing(exc) or exc.status == 409:  # gone, or stopped since the list
                    return False
                raise
            try:
                with engine_errors():
                    await container.unpause()
            except EngineError as exc:
                log.error("health_probe_unpause_failed", container_id=container_id[:12], error=exc.message)
                return False
            return True

    done = await asyncio.gather(*(pause_and_unpause(i) for i in ids), return_exceptions=True)
    failed = [r for r in done if isinstance(r, BaseException)]
    restarted = sum(1 for r in done if r is True)
    if restarted or failed:
        log.info("health_probes_restarted", containers=restarted, failed=len(failed),
                 reason="the engine does not probe live-restored containers before 23.0 (moby#41871)")
    return restarted
