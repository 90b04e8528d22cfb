"""Keeps the ingress listeners and their rotations in line with each stack's ready replicas.

After every reconcile pass the stack's ingress-mode published ports get the replicas that are
ready (running, and healthy where a healthcheck exists). Between passes, a replica that dies
leaves every rotation the moment its engine event arrives (`container_gone`), so new
connections never wait for the next pass to stop going to it.

A replica is reached on its address on the stack network (one hop); where the daemon cannot
see that address it falls back to the target port the replica publishes on 127.0.0.1 (which
goes through the engine's docker-proxy as a second hop). docs/ingress.md has the measurements.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import structlog

from orchestrator.ingress import Backend, Ingress, IngressError
from orchestrator.model import ContainerState, PortSpec, StackSpec
from orchestrator.tasks import ready

log = structlog.stdlib.get_logger()

PortKey = tuple[int, str]  # (published port, protocol)


class IngressRoutes:
    def __init__(self, ingress: Ingress) -> None:
        self.ingress = ingress
        self._ports_of_stack: dict[str, set[PortKey]] = {}
        self._backends_of_container: dict[str, set[Backend]] = {}
        #: Replicas being stopped on purpose: never back in a rotation.
        self._leaving: set[str] = set()

    async def update(self, stack: str, spec: StackSpec | None, observed: Sequence[ContainerState]) -> None:
        """Serve exactly the stack's ingress ports, each over its service's ready replicas."""
        wanted: dict[PortKey, list[Backend]] = {}
        self._leaving -= {c.id for c in observed if c.status != "running"}
        if spec is not None:
            for service in spec.services.values():
                replicas = [
                    c for c in observed
                    if c.key.service == service.name and ready(c) and c.id not in self._leaving
                ]  # fmt: skip
                for port in ingress_ports(service.ports):
                    wanted[(port.published, port.protocol)] = self._backends(replicas, port)  # type: ignore[index]
        for port, protocol in self._ports_of_stack.get(stack, set()) - wanted.keys():
            await self.ingress.close(port, protocol)
            log.info("ingress_port_closed", stack=stack, port=port)
        for (port, protocol), backends in wanted.items():
            try:
                await self.ingress.ensure(port, protocol)
            except IngressError as exc:
                log.warning("ingress_port_unavailable", stack=stack, port=port, error=str(exc))
                continue
            self.ingress.set_backends(port, backends, protocol)
        self._ports_of_stack[stack] = set(wanted)
        if not wanted:
            del self._ports_of_stack[stack]

    def _backends(self, replicas: Sequence[ContainerState], port: PortSpec) -> list[Backend]:
        backends = []
        for c in replicas:
            backend = backend_of(c, port)
            if backend is not None:
                backends.append(backend)
                self._backends_of_container.setdefault(c.id, set()).add(backend)
        return backends

    def container_gone(self, container_id: str) -> None:
        """A replica died (or turned unhealthy): out of every rotation now, not at the next pass."""
        self._leaving.discard(container_id)  # not running any more: never ready again
        for backend in self._backends_of_container.pop(container_id, set()):
            self.ingress.remove_backend(backend)

    async def drain(self, container_id: str, timeout: float) -> None:
        """A replica about to be stopped on purpose (update, scale-down): out of every rotation
        for good, then wait up to `timeout` for the connections it carries to finish."""
        self._leaving.add(container_id)
        backends = self._backends_of_container.pop(container_id, set())
        for backend in backends:
            self.ingress.remove_backend(backend)
        ports = self.ingress.ports.values()
        await asyncio.gather(
            *(port.drain(b, timeout) for port in ports for b in backends if port.connections(b))
        )
        if backends:
            log.info("ingress_backend_drained", container_id=container_id[:12])

    async def close(self) -> None:
        await self.ingress.close_all(drain_timeout=1.0)
        self._ports_of_stack.clear()
        self._backends_of_container.clear()


def ingress_ports(ports: Sequence[PortSpec]) -> list[PortSpec]:
    return [p for p in ports if p.mode == "ingress" and p.published is not None]


def backend_of(container: ContainerState, port: PortSpec) -> Backend | None:
    if container.address:
        return (container.address, port.target)
    host_port = container.ports.get(f"{port.target}/{port.protocol}")
    return ("127.0.0.1", host_port) if host_port else None
