"""The UDP front for published ports in ingress mode: datagrams relayed per client flow.

UDP has no connection, so the relay makes one up as Swarm's mesh and conntrack do: a *flow* is
one client address. Its first datagram picks the next backend in rotation and opens a connected
socket to it; every later datagram of that client goes the same way (a DNS resolver's retries,
a game client's session stay on one replica), and what the backend answers on that socket goes
back to the client from the published port. A flow ends after `idle_timeout` seconds without a
datagram in either direction, when its backend leaves the rotation, or when the backend's host
answers with an ICMP error (its port is closed: the replica died); the client's next datagram
then starts a new flow on a live replica.

Flows are bounded (`max_flows`): past it the least recently used flow is closed, so a flood of
source addresses costs memory in proportion to the bound, not to the flood.

There is nothing to drain: a datagram in flight to a replica that is being stopped is lost as
it would be on the replica itself. `drain()` only closes the backend's flows.
"""

from __future__ import annotations

import asyncio
import errno
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, cast

import structlog

from orchestrator.errors import IngressError
from orchestrator.ingress.rotation import in_turn

log = structlog.stdlib.get_logger()

Upstream = tuple[str, int]
Address = tuple[Any, ...]  # (host, port) for IPv4, (host, port, flow, scope) for IPv6

#: Seconds without a datagram after which a flow is forgotten (conntrack's UDP default is 30 s
#: for a one-way flow, 120–180 s for a "stream"; one minute keeps a quiet session on its replica).
UDP_IDLE_TIMEOUT_S = 60.0
#: Client flows kept at most per published port.
UDP_MAX_FLOWS = 4096


class _Listener(asyncio.DatagramProtocol):
    """The published port: what a client sends is handed to the port's relay."""

    def __init__(self, port: UdpIngressPort) -> None:
        self._port = port

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._port.from_client(data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error about a reply to a client that went away: nothing to do


class _Flow(asyncio.DatagramProtocol):
    """One client's connected socket to its backend; the backend's answers go to the client."""

    def __init__(self, port: UdpIngressPort, client: Address, backend: Upstream) -> None:
        self.port, self.client, self.backend = port, client, backend
        self.transport: asyncio.DatagramTransport | None = None
        self.last = time.monotonic()
        self.pending: list[bytes] = []  # what the client sent while the socket was being opened
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a DatagramTransport in fact (CPython's selector one does not subclass it)
        self.transport = cast(asyncio.DatagramTransport, transport)
        if self.closed:  # the flow ended (idle, its upstream left) while its socket was opened
            self.transport.close()
            return
        for data in self.pending:
            self.transport.sendto(data)
        self.pending.clear()

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self.last = time.monotonic()
        self.port.to_client(data, self.client)

    def error_received(self, exc: Exception) -> None:
        # ECONNREFUSED: the backend's port is closed (ICMP port unreachable), e.g. a dead replica
        self.port.flow_failed(self, exc)

    def send(self, data: bytes) -> None:
        self.last = time.monotonic()
        if self.transport is None:
            if len(self.pending) < 64:  # a bound on what waits for the socket
                self.pending.append(data)
        else:
            self.transport.sendto(data)

    def close(self) -> None:
        self.closed = True
        self.pending.clear()
        if self.transport is not None:
            self.transport.close()


class UdpIngressPort:
    """One published UDP port: the same surface as the TCP `IngressPort`."""

    def __init__(self, host: str, port: int, *, idle_timeout: float = UDP_IDLE_TIMEOUT_S,
                 max_flows: int = UDP_MAX_FLOWS, cooldown: float = 2.0) -> None:
        self.host, self.port = host, port
        self._idle_timeout = idle_timeout
        self._max_flows = max_flows
        self._cooldown = cooldown
        self._backends: tuple[Upstream, ...] = ()
        self._cursor = 0
        self._failed_until: dict[Upstream, float] = {}
        self._flows: OrderedDict[Address, _Flow] = OrderedDict()  # least recently used first
        self._transport: asyncio.DatagramTransport | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def backends(self) -> tuple[Upstream, ...]:
        return self._backends

    @property
    def bound_port(self) -> int:
        assert self._transport is not None, "not started"
        return int(self._transport.get_extra_info("sockname")[1])

    def connections(self, backend: Upstream) -> int:
        """The client flows on `backend`."""
        return sum(1 for flow in self._flows.values() if flow.backend == backend)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._transport, _ = await loop.create_datagram_endpoint(
                lambda: _Listener(self), local_addr=(self.host, self.port)
            )
        except OSError as exc:
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise IngressError(f"cannot listen on {self.host}:{self.port}/udp: {reason}") from exc
        self.port = self.bound_port
        self._sweeper = loop.create_task(self._sweep(), name=f"udp flows {self.port}")
        log.info("ingress_listening", host=self.host, port=self.port, protocol="udp")

    def set_upstreams(self, upstreams: Sequence[Upstream]) -> None:
        """Replaces the rotation; flows on a backend that left it are closed."""
        self._backends = tuple(dict.fromkeys(upstreams))
        self._close_flows(lambda flow: flow.backend not in self._backends)
        log.info("ingress_backends_set", port=self.port, protocol="udp",
                 backends=[f"{h}:{p}" for h, p in self._backends])

    def remove_backend(self, backend: Upstream) -> None:
        if backend in self._backends:
            self.set_upstreams([b for b in self._backends if b != backend])

    async def drain(self, backend: Upstream, timeout: float) -> bool:
        """Closes the backend's flows (there is nothing to wait for on UDP)."""
        self._close_flows(lambda flow: flow.backend == backend)
        return True

    async def close(self, drain_timeout: float) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        self._close_flows(lambda _flow: True)
        if self._transport is not None:
            self._transport.close()
        log.info("ingress_closed", port=self.port, protocol="udp", drained=True)

    # --- the relay ---------------------------------------------------------------------------

    def from_client(self, data: bytes, client: Address) -> None:
        flow = self._flows.get(client)
        if flow is None:
            flow = self._open(client)
            if flow is None:
                return  # no backend: dropped, as the network would
        else:
            self._flows.move_to_end(client)
        flow.send(data)

    def to_client(self, data: bytes, client: Address) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, client)

    def flow_failed(self, flow: _Flow, exc: Exception) -> None:
        self._failed_until[flow.backend] = time.monotonic() + self._cooldown
        log.info("ingress_udp_backend_failed", port=self.port, backend=f"{flow.backend[0]}:{flow.backend[1]}",
                 reason=str(exc) or type(exc).__name__)
        if self._flows.get(flow.client) is flow:
            del self._flows[flow.client]
        flow.close()

    def _open(self, client: Address) -> _Flow | None:
        backend = self._next_backend()
        if backend is None:
            return None
        while len(self._flows) >= self._max_flows:
            _, oldest = self._flows.popitem(last=False)
            oldest.close()
        flow = self._flows[client] = _Flow(self, client, backend)
        task = asyncio.get_running_loop().create_task(self._connect(flow))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # reported in _connect
        return flow

    async def _connect(self, flow: _Flow) -> None:
        try:
            await asyncio.get_running_loop().create_datagram_endpoint(lambda: flow, remote_addr=flow.backend)
        except OSError as exc:
            self.flow_failed(flow, exc)

    def _next_backend(self) -> Upstream | None:
        """Round robin, recently failed backends only when no other is left."""
        order = in_turn(self._backends, self._cursor, self._failed_until, time.monotonic())
        if self._backends:
            self._cursor = self._cursor % len(self._backends) + 1
        return order[0] if order else None

    def _close_flows(self, which: Callable[[_Flow], bool]) -> None:
        for client, flow in list(self._flows.items()):
            if which(flow):
                del self._flows[client]
                flow.close()

    async def _sweep(self) -> None:
        """Forgets the flows idle for longer than the timeout."""
        while True:
            await asyncio.sleep(max(0.05, self._idle_timeout / 4))
            cutoff = time.monotonic() - self._idle_timeout
            self._close_flows(lambda flow: flow.last < cutoff)


__all__ = ["UDP_IDLE_TIMEOUT_S", "UDP_MAX_FLOWS", "UdpIngressPort"]
