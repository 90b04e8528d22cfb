"""The ingress ports a deploy publishes: checked against the other stacks', and the new ones
bound before the deploy is saved, so that a port the daemon cannot listen on fails the deploy
(409) instead of going unpublished. Used by `loop/commands.py` under the commands' lock."""

from __future__ import annotations

from orchestrator.errors import Conflict, UserError
from orchestrator.ingress.proxy import IngressError
from orchestrator.ingress.routes import IngressRoutes, PortKey, ingress_ports
from orchestrator.loop.desired import DesiredState
from orchestrator.loop.store import StackRecord
from orchestrator.model.spec import StackSpec


class PortClaims:
    def __init__(self, desired: DesiredState, routes: IngressRoutes | None) -> None:
        self._desired = desired
        self._routes = routes

    def check(self, spec: StackSpec) -> None:
        """Ingress ports are the daemon's own listeners: TCP or UDP, and one stack per port."""
        taken = {
            (p.published, p.protocol): name
            for name, record in self._desired.items()
            if name != spec.name
            for svc in record.spec.services.values()
            for p in ingress_ports(svc.ports)
        }
        for svc in spec.services.values():
            for p in ingress_ports(svc.ports):
                where = f"services.{svc.name}.ports ({p.published}:{p.target}/{p.protocol})"
                if p.protocol not in ("tcp", "udp"):
                    raise UserError(f"{where}: the ingress relays TCP and UDP only; publish it with mode: host")
                if (p.published, p.protocol) in taken:
                    other = taken[(p.published, p.protocol)]
                    raise Conflict(f"{where}: port {p.published} is already published by stack {other}")

    async def bind_new(self, spec: StackSpec, old: StackRecord | None) -> list[PortKey]:
        """Listen on the ingress ports this deploy adds, so that one the daemon cannot bind
        (another program has it, it needs privileges) fails the deploy with a 409 instead of
        going unpublished. Ports the stack already publishes are the loop's to (re)bind.
        Returns the listeners opened, for `release`."""
        routes = self._routes
        if routes is None:
            return []
        before = set() if old is None else {
            (p.published, p.protocol) for svc in old.spec.services.values() for p in ingress_ports(svc.ports)
        }  # fmt: skip
        opened: list[PortKey] = []
        for svc in spec.services.values():
            for p in ingress_ports(svc.ports):
                assert p.published is not None  # ingress_ports keeps published ones only
                key: PortKey = (p.published, p.protocol)
                if key in before:
                    continue
                try:
                    if await routes.claim(spec.name, key):
                        opened.append(key)
                except IngressError as exc:
                    await routes.release(spec.name, opened)
                    raise Conflict(
                        f"services.{svc.name}.ports ({p.published}:{p.target}/{p.protocol}): {exc}",
                        path=f"services.{svc.name}.ports",
                    ) from None
        return opened

    async def release(self, stack: str, ports: list[PortKey]) -> None:
        if self._routes is not None and ports:
            await self._routes.release(stack, ports)


__all__ = ["PortClaims"]
