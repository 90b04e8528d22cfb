"""Keeps the ingress listeners and their rotations in line with each stack's ready replicas.

After every reconcile pass the stack's ingress-mode published ports get the replicas that are
ready (running, and healthy where a healthcheck exists). Between passes, a replica that dies
leaves every rotation the moment its engine event arrives (`container_gone`), so new
connections never wait for the next pass to stop going to it.

A replica is reached on its address on the stack network (one hop); where the daemon cannot
see that address it falls back to the target port the replica publishes on 127.0.0.1 (which
goes through the engine's docker-proxy as a second hop). docs/ingress.md has the measurements.

A port that cannot be listened on (another program holds it, or it needs privileges) is not
published: `port_state` says so with the reason, a `service.port_unavailable` event tells it
once, and the bind is tried again with backoff at the passes `retry_at` asks the loop for
(1 s doubling to 30 s); `service.port_published` says when it worked. A deploy binds the ports
it adds before its record is saved (`claim`): the deploy fails with a 409 rather than leaving a
port unpublished, and since the listener is kept, no other program can take the port between
the answer and the first pass. A claimed port is never closed by a pass that began before the
deploy (it still plans from the old spec); the claim ends when a pass serves the port, or is
released when the deploy fails after all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import structlog

from orchestrator.support.backoff import doubling
from orchestrator.publishing import events
from orchestrator.publishing.events import Event
from orchestrator.ingress.proxy import Upstream, Ingress, IngressError
from orchestrator.model.observed import ContainerState
from orchestrator.model.spec import PortSpec, StackSpec
from orchestrator.planning.task_states import ready

log = structlog.stdlib.get_logger()

PortKey = tuple[int, str]  # (published port, protocol)
PortState = Literal["published", "unavailable", "pending"]

#: Waits between attempts to listen on a port that could not be bound.
BIND_RETRY_FIRST, BIND_RETRY_CAP = 1.0, 30.0


@dataclass(frozen=True, slots=True)
class _Unbound:
    """A port the daemon wants to listen on but could not."""

    service: str
    reason: str
    failures: int
    retry_at: float


class IngressRoutes:
    def __init__(self, ingress: Ingress, emit: Callable[[Event], None] | None = None) -> None:
        self.ingress = ingress
        self._emit = emit or (lambda _event: None)
        #: Ports each stack owns: listened on, or wanted and retried.
        self._ports_of_stack: dict[str, set[PortKey]] = {}
        #: Ports a deploy bound that no pass has served yet.
        self._claims: dict[str, set[PortKey]] = {}
        self._unbound: dict[PortKey, _Unbound] = {}
        self._backends_of_container: dict[str, set[Upstream]] = {}
        #: Replicas being stopped on purpose: never back in a rotation.
        self._leaving: set[str] = set()

    async def update(self, stack: str, spec: StackSpec | None, observed: Sequence[ContainerState]) -> None:
        """Serve exactly the stack's ingress ports, each over its service's ready replicas."""
        wanted: dict[PortKey, tuple[str, list[Upstream]]] = {}
        self._leaving -= {c.id for c in observed if c.status != "running"}
        if spec is not None:
            for service in spec.services.values():
                replicas = [
                    c for c in observed
                    if c.key.service == service.name and ready(c) and c.id not in self._leaving
                ]  # fmt: skip
                for port in ingress_ports(service.ports):
                    assert port.published is not None  # ingress_ports keeps published ones only
                    wanted[(port.published, port.protocol)] = (service.name, self._backends(replicas, port))
        claimed = self._claims.pop(stack, set())
        if spec is None:  # removed: nothing of it stays open
            claimed = set()
        elif claimed - wanted.keys():  # a deploy came after this pass read its spec
            self._claims[stack] = claimed - wanted.keys()
        keep = wanted.keys() | claimed
        await self._close(stack, self._ports_of_stack.get(stack, set()) - keep)
        self._own(stack, keep)
        for (published, protocol), (service_name, upstreams) in wanted.items():
            if not await self._listening(stack, service_name, (published, protocol)):
                continue
            # A drain may have begun while we awaited: never put a leaving replica back.
            self.ingress.set_upstreams(published, [u for u in upstreams if self._is_current(u)], protocol)

    async def claim(self, stack: str, port: PortKey) -> bool:
        """Listen on a port a deploy of `stack` adds, before the deploy is saved (IngressError
        when it cannot). True when this opened the listener; `release` closes it again."""
        if port in self.ingress.ports:
            return False
        await self.ingress.ensure(*port)
        self._unbound.pop(port, None)
        self._claims.setdefault(stack, set()).add(port)
        self._own(stack, self._ports_of_stack.get(stack, set()) | {port})
        return True

    async def release(self, stack: str, ports: Iterable[PortKey]) -> None:
        """A deploy that claimed `ports` failed after all: close them."""
        ports = set(ports)
        claims = self._claims.get(stack, set()) - ports
        if claims:
            self._claims[stack] = claims
        else:
            self._claims.pop(stack, None)
        await self._close(stack, ports)
        self._own(stack, self._ports_of_stack.get(stack, set()) - ports)

    def port_state(self, port: PortKey) -> tuple[PortState, str]:
        """Whether an ingress port is listened on; for one that is not, why."""
        if port in self.ingress.ports:
            return "published", ""
        trouble = self._unbound.get(port)
        return ("unavailable", trouble.reason) if trouble else ("pending", "")

    def retry_at(self, stack: str) -> float | None:
        """When the next attempt to bind one of the stack's unavailable ports is due."""
        times = [self._unbound[p].retry_at for p in self._ports_of_stack.get(stack, ()) if p in self._unbound]
        return min(times, default=None)

    async def _listening(self, stack: str, service: str, key: PortKey) -> bool:
        """Listen on `key` if it is not yet, at most as often as its backoff allows."""
        if key in self.ingress.ports:
            return True
        trouble, now = self._unbound.get(key), time.time()
        if trouble is not None and now < trouble.retry_at:
            return False
        try:
            await self.ingress.ensure(*key)
        except IngressError as exc:
            failures = trouble.failures + 1 if trouble else 1
            delay = doubling(failures - 1, BIND_RETRY_FIRST, BIND_RETRY_CAP)
            self._unbound[key] = _Unbound(service, str(exc), failures, now + delay)
            log.warning("ingress_port_unavailable", stack=stack, port=key[0], error=str(exc),
                        retry_in_s=delay)
            if trouble is None or trouble.reason != str(exc):
                self._emit(events.service_port_unavailable(
                    stack, service, f"{exc}; not published, retrying"
                ))  # fmt: skip
            return False
        if trouble is not None:
            del self._unbound[key]
            log.info("ingress_port_recovered", stack=stack, port=key[0], failures=trouble.failures)
            self._emit(events.service_port_published(
                stack, service, f"listening on {self.ingress.host}:{key[0]}/{key[1]} again"
                f" after {trouble.failures} failed attempts"
            ))  # fmt: skip
        return True

    async def _close(self, stack: str, ports: Iterable[PortKey]) -> None:
        for port, protocol in ports:
            self._unbound.pop((port, protocol), None)
            await self.ingress.close(port, protocol)
            log.info("ingress_port_closed", stack=stack, port=port)

    def _own(self, stack: str, ports: set[PortKey]) -> None:
        if ports:
            self._ports_of_stack[stack] = ports
        else:
            self._ports_of_stack.pop(stack, None)

    def _backends(self, replicas: Sequence[ContainerState], port: PortSpec) -> list[Upstream]:
        backends = []
        for c in replicas:
            backend = upstream_of(c, port)
            if backend is not None:
                backends.append(backend)
                self._backends_of_container.setdefault(c.id, set()).add(backend)
        return backends

    def _is_current(self, backend: Upstream) -> bool:
        return any(backend in found for found in self._backends_of_container.values())

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
        self._claims.clear()
        self._unbound.clear()
        self._backends_of_container.clear()


def ingress_ports(ports: Sequence[PortSpec]) -> list[PortSpec]:
    return [p for p in ports if p.mode == "ingress" and p.published is not None]


def upstream_of(container: ContainerState, port: PortSpec) -> Upstream | None:
    if container.address:
        return (container.address, port.target)
    host_port = container.ports.get(f"{port.target}/{port.protocol}")
    return ("127.0.0.1", host_port) if host_port else None
