"""Waiting for a stack's standbys (docs/standby.md) before killing a replica, so that the
replacement is the standby's start and its messages are always the same."""

from __future__ import annotations

import asyncio

import aiodocker

from orchestrator.labels import LABEL_STACK, LABEL_STANDBY


async def wait_standbys(docker: aiodocker.Docker, stack: str, count: int, timeout: float = 30.0) -> list[str]:
    """The ids of the stack's `count` waiting standbys, once there are that many."""
    flt = {"label": [f"{LABEL_STACK}={stack}", f"{LABEL_STANDBY}=1"], "status": ["created"]}
    async with asyncio.timeout(timeout):
        while True:
            found = [str(c["Id"]) for c in await docker.containers.list(all=True, filters=flt)]
            if len(found) == count:
                return found
            await asyncio.sleep(0.1)
