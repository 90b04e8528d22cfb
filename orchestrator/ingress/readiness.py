"""A TCP readiness probe for replicas without a healthcheck.

Swarm counts a replica without a healthcheck as ready the moment its process runs, and so did
we: a rolling update then stopped the old replica while the new one's server was still starting,
and the ingress sent clients to a port nobody listened on yet. Now a running replica of a
service with ingress ports, without a healthcheck, is held back (seen by the planner and the
ingress as `health: starting`) until each of its ingress target ports accepts a TCP connection:
it joins the rotation, counts as a running replica and lets an update move on only then.

The hold is bounded: `window` seconds after the replica started it counts as ready anyway (a
service that publishes a port it never listens on keeps working as before, only later). A probe
that succeeded is remembered per container (UDP ports are not probed: a connect says nothing
about them), so each replica is probed until it first accepts,
and a restarted daemon does not hold back replicas that started long ago.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import replace

import structlog

from orchestrator.ingress.routes import ingress_ports, upstream_of
from orchestrator.model.observed import ContainerState
from orchestrator.model.spec import PortSpec, ServiceSpec, StackSpec

log = structlog.stdlib.get_logger()

#: How long one probe waits for the connection to be accepted.
PROBE_TIMEOUT_S = 0.5
#: When a held replica is probed again (the reconciler's next pass for its stack).
PROBE_AGAIN_S = 0.25


def _tcp_ingress_ports(service: ServiceSpec) -> list[PortSpec]:
    """The ports a connect can probe: a UDP port says nothing to a TCP connect."""
    return [p for p in ingress_ports(service.ports) if p.protocol == "tcp"]


class PortReadiness:
    def __init__(self, window: float, probe_timeout: float = PROBE_TIMEOUT_S) -> None:
        self.window = window
        self.probe_timeout = probe_timeout
        #: Per stack, the containers whose ports accepted once.
        self._accepted: dict[str, set[str]] = {}

    async def hold(self, spec: StackSpec, containers: Sequence[ContainerState],
                   now: float) -> tuple[dict[str, ContainerState], float | None]:
        """The containers to treat as still starting (by id), and when to look again."""
        accepted = self._accepted.setdefault(spec.name, set())
        accepted &= {c.id for c in containers}
        candidates = [c for c in containers if c.id not in accepted and self._held_back(spec, c, now)]
        if not candidates:
            return {}, None
        answers = await asyncio.gather(*(self._accepts(spec, c) for c in candidates))
        held = {}
        for container, ok in zip(candidates, answers, strict=True):
            if ok:
                accepted.add(container.id)
                log.info("replica_port_ready", container_id=container.short_id, service=container.key.service)
            else:
                held[container.id] = replace(container, health="starting")
        return held, (now + PROBE_AGAIN_S if held else None)

    def forget(self, stack: str) -> None:
        self._accepted.pop(stack, None)

    def _held_back(self, spec: StackSpec, c: ContainerState, now: float) -> bool:
        service = spec.services.get(c.key.service)
        return (
            self.window > 0
            and service is not None
            and c.status == "running"
            and c.health is None  # a healthcheck decides by itself
            and c.started_at is not None
            and now - c.started_at < self.window
            and bool(_tcp_ingress_ports(service))
        )

    async def _accepts(self, spec: StackSpec, c: ContainerState) -> bool:
        targets = [upstream_of(c, port) for port in _tcp_ingress_ports(spec.services[c.key.service])]
        if any(t is None for t in targets):
            return False  # no address yet: not reachable by the ingress either
        results = await asyncio.gather(*(self._connects(t) for t in targets if t is not None))
        return all(results)

    async def _connects(self, target: tuple[str, int]) -> bool:
        try:
            async with asyncio.timeout(self.probe_timeout):
                _, writer = await asyncio.open_connection(*target)
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
