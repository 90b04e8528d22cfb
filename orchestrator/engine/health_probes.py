"""Health probes that a live-restoring dockerd forgets to run again.

Before 23.0, dockerd does not probe the health of the containers it live-restored (moby#41871;
resumed by moby#41935 in 23.0): after a dockerd restart with `live-restore`, a replica that turns
sick stays "healthy" for ever, so it is neither taken out of the ingress nor replaced.

The engine starts a container's probe again when the container is unpaused. But pausing a
container whose probe does run marks it unhealthy until its next probe (the engine reports a
stopped monitor as unhealthy), which would have it replaced: so only a container whose probe is
proven dead is paused. At each connect, every running replica of ours with a healthcheck is
watched until its next probe is due (the last probe's end, or the start, plus interval, timeout
and a margin); one that has not been probed by then is paused and unpaused. It is frozen (not
stopped) for that moment: its connections stay open and nothing restarts.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiodocker
import structlog

from orchestrator import labels
from orchestrator.engine.calls import engine_errors, is_missing
from orchestrator.errors import EngineError

log = structlog.stdlib.get_logger()

#: The first engine version that probes its live-restored containers again.
FIXED_IN = (23, 0)
#: Engine calls (inspects, pauses) at a time.
CONCURRENCY = 8
#: The engine's defaults for a healthcheck without interval or timeout (seconds).
DEFAULT_INTERVAL_S = 30.0
DEFAULT_TIMEOUT_S = 30.0
#: Beyond interval + timeout, how late a probe may be before its monitor counts as dead: the
#: engine is slow under load, and a live monitor must never be paused.
MARGIN_S = 5.0
#: A running container with a healthcheck shows its health in the list's Status, e.g.
#: "Up 5 minutes (healthy)", "Up 2 seconds (health: starting)", "Up 1 hour (unhealthy)".
_HAS_HEALTH = re.compile(r"\((healthy|unhealthy|health: starting)\)")


def forgets_probes(version: str) -> bool:
    """Whether an engine of this version ("20.10.24+dfsg1", "27.3.1") leaves live-restored
    containers unprobed. A version it cannot read is taken as a current one."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return match is not None and (int(match[1]), int(match[2])) < FIXED_IN


@dataclass(frozen=True)
class ProbeClock:
    """From one inspect: when the container was last probed, and by when the next probe must
    have ended if its monitor runs."""

    last: str
    due: float


def probe_clock(inspected: dict[str, Any]) -> ProbeClock | None:
    """None unless the container runs (not paused) with a healthcheck."""
    state = inspected.get("State") or {}
    health = state.get("Health")
    check = (inspected.get("Config") or {}).get("Healthcheck") or {}
    if not state.get("Running") or state.get("Paused") or not health or (check.get("Test") or ["NONE"])[0] == "NONE":
        return None
    entries = health.get("Log") or []
    last = entries[-1].get("End", "") if entries else ""
    since = _seconds(last) or _seconds(state.get("StartedAt", "")) or time.time()
    interval = (check.get("Interval") or 0) / 1e9 or DEFAULT_INTERVAL_S
    timeout = (check.get("Timeout") or 0) / 1e9 or DEFAULT_TIMEOUT_S
    return ProbeClock(last or state.get("StartedAt", ""), since + interval + timeout + MARGIN_S)


def _seconds(stamp: str) -> float | None:
    try:
        at = datetime.fromisoformat(stamp).timestamp()
    except (TypeError, ValueError):
        return None
    return at if at > 0 else None


async def restart_dead_probes(docker: aiodocker.Docker) -> int:
    """Watch each of our running containers with a healthcheck until its next probe is due;
    pause and unpause each that was not probed by then. How many were."""
    with engine_errors():
        listed = await docker.containers.list(filters={**labels.stack_filter(), "status": ["running"]})
    limit = asyncio.Semaphore(CONCURRENCY)

    async def inspect(container_id: str) -> dict[str, Any] | None:
        async with limit:
            try:
                with engine_errors():
                    return dict(await docker.containers.container(container_id).show())
            except EngineError as exc:
                if is_missing(exc):
                    return None
                raise

    async def watch(container_id: str) -> bool:
        seen = await inspect(container_id)
        clock = probe_clock(seen) if seen else None
        if clock is None:
            return False
        await asyncio.sleep(max(0.0, clock.due - time.time()))
        now = await inspect(container_id)
        again = probe_clock(now) if now else None
        if again is None or again.last != clock.last:
            return False  # gone, stopped, paused, or probed: its monitor runs
        async with limit:  # shielded: a cancel never comes between the pause and the unpause
            return await asyncio.shield(_pause_and_unpause(docker, container_id))

    ids = [c["Id"] for c in listed if _HAS_HEALTH.search(c["Status"] or "")]
    done = await asyncio.gather(*(watch(i) for i in ids), return_exceptions=True)
    restarted = sum(1 for r in done if r is True)
    failed = [r for r in done if isinstance(r, Exception)]
    if restarted or failed:
        log.info("health_probes_restarted", containers=restarted, failed=len(failed),
                 reason="not probed since the engine restarted (moby#41871, engines before 23.0)")
    return restarted


async def _pause_and_unpause(docker: aiodocker.Docker, container_id: str) -> bool:
    """The unpause starts the probe again. A container gone or stopped meanwhile is skipped;
    one is never left paused by us: the unpause is always tried and its failure logged."""
    container = docker.containers.container(container_id)
    try:
        with engine_errors():
            await container.pause()
    except EngineError as exc:
        if is_missing(exc) or exc.status == 409:
            return False
        raise
    try:
        with engine_errors():
            await container.unpause()
    except EngineError as exc:
        log.error("health_probe_unpause_failed", container_id=container_id[:12], error=exc.message)
        return False
    return True
