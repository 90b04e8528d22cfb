"""Connecting to the engine at start: the daemon waits for a dockerd that is not up yet."""

from __future__ import annotations

import asyncio
import itertools

import structlog

from orchestrator.engine.build_context import ContextLimits
from orchestrator.engine.client import Engine
from orchestrator.errors import EngineUnavailable

log = structlog.stdlib.get_logger()

#: Between attempts: growing, then the last one over and over.
ENGINE_WAIT_DELAYS = (0.5, 1.0, 2.0, 5.0)


async def wait_for_engine(docker_host: str | None, build_limits: ContextLimits = ContextLimits()) -> Engine:
    """Connect to the engine, waiting (with growing delays) while it does not answer."""
    engine = await Engine.connect(docker_host, build_limits)
    try:
        for attempt in itertools.count():
            try:
                await engine.ping()
                return engine
            except EngineUnavailable as exc:
                if attempt == 0:
                    log.warning("engine_unavailable_waiting", error=str(exc))
                await asyncio.sleep(ENGINE_WAIT_DELAYS[min(attempt, len(ENGINE_WAIT_DELAYS) - 1)])
    except BaseException:  # cancelled (SIGTERM while waiting): its connection pool goes too
        await engine.close()
        raise
    raise AssertionError("unreachable")


__all__ = ["ENGINE_WAIT_DELAYS", "wait_for_engine"]
