"""UdpIngressPort on real loopback sockets, with small asyncio UDP servers as backends."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import cast

import pytest

from orchestrator.ingress.proxy import Ingress
from orchestrator.ingress.udp import UdpIngressPort, Upstream

LOOPBACK = "127.0.0.1"


class _Named(asyncio.DatagramProtocol):
    """Answers each datagram with `<name>:<datagram>`."""

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a DatagramTransport in fact (CPython's selector one does not subclass it)
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert self.transport is not None
        self.transport.sendto(self.name + b":" + data, addr)


class Backends:
    def __init__(self) -> None:
        self.transports: dict[Upstream, asyncio.DatagramTransport] = {}

    async def start(self, name: bytes) -> Upstream:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: _Named(name), local_addr=(LOOPBACK, 0))
        backend = (LOOPBACK, int(transport.get_extra_info("sockname")[1]))
        self.transports[backend] = transport
        return backend

    def stop(self, backend: Upstream) -> None:
        self.transports.pop(backend).close()

    def close(self) -> None:
        for transport in self.transports.values():
            transport.close()


@pytest.fixture(name="backends")
async def _backends() -> AsyncIterator[Backends]:
    backends = Backends()
    yield backends
    backends.close()


class Client:
    """One client address (one flow) talking to the published port."""

    def __init__(self, port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.connect((LOOPBACK, port))

    async def ask(self, data: bytes, timeout: float = 2.0) -> bytes:
        loop = asyncio.get_running_loop()
        self.sock.send(data)
        return await asyncio.wait_for(loop.sock_recv(self.sock, 65536), timeout)

    async def name(self) -> bytes:
        return (await self.ask(b"hi")).split(b":")[0]

    def close(self) -> None:
        self.sock.close()


async def started(**kwargs: float) -> UdpIngressPort:
    port = UdpIngressPort(LOOPBACK, 0, **kwargs)  # type: ignore[arg-type]
    await port.start()
    return port


async def test_each_client_stays_on_one_backend_and_new_clients_take_turns(backends: Backends) -> None:
    port = await started()
    port.set_upstreams([await backends.start(b"a"), await backends.start(b"b")])
    clients = [Client(port.bound_port) for _ in range(4)]
    try:
        names = [await c.name() for c in clients]
        assert names == [b"a", b"b", b"a", b"b"]
        for client, name in zip(clients, names):  # later datagrams follow the flow
            assert [await client.name() for _ in range(3)] == [name] * 3
        assert await clients[0].ask(b"payload") == b"a:payload"
        assert port.connections(port.backends[0]) == 2
    finally:
        for c in clients:
            c.close()
        await port.close(1.0)


async def test_a_backend_that_leaves_the_rotation_takes_its_flows_with_it(backends: Backends) -> None:
    port = await started()
    a, b = await backends.start(b"a"), await backends.start(b"b")
    port.set_upstreams([a, b])
    client = Client(port.bound_port)
    try:
        assert await client.name() == b"a"
        port.remove_backend(a)
        assert port.connections(a) == 0
        assert await client.name() == b"b"
    finally:
        client.close()
        await port.close(1.0)


async def test_a_dead_backend_fails_its_flow_and_the_next_datagram_goes_elsewhere(backends: Backends) -> None:
    port = await started(cooldown=30.0)
    a, b = await backends.start(b"a"), await backends.start(b"b")
    port.set_upstreams([a, b])
    client = Client(port.bound_port)
    try:
        assert await client.name() == b"a"
        backends.stop(a)  # its port closes: the kernel answers ICMP port unreachable
        with pytest.raises(TimeoutError):
            await client.ask(b"lost", timeout=0.5)  # in flight to the dead replica: lost
        for _ in range(50):  # the refusal arrives asynchronously
            if port.connections(a) == 0:
                break
            await asyncio.sleep(0.02)
        assert port.connections(a) == 0
        assert await client.name() == b"b"
        other = Client(port.bound_port)  # a new flow skips the failed backend while it cools down
        try:
            assert await other.name() == b"b"
        finally:
            other.close()
    finally:
        client.close()
        await port.close(1.0)


async def test_idle_flows_are_forgotten_and_flows_are_bounded(backends: Backends) -> None:
    port = await started(idle_timeout=0.2, max_flows=2)
    port.set_upstreams([await backends.start(b"a")])
    clients = [Client(port.bound_port) for _ in range(3)]
    try:
        for c in clients:
            await c.name()
        assert port.connections(port.backends[0]) == 2  # the oldest flow was closed for the third
        assert await clients[0].name() == b"a"  # and comes back as a new flow when it speaks
        await asyncio.sleep(0.6)
        assert port.connections(port.backends[0]) == 0
    finally:
        for c in clients:
            c.close()
        await port.close(1.0)


async def test_without_backends_datagrams_are_dropped_and_the_port_stays_up(backends: Backends) -> None:
    port = await started()
    client = Client(port.bound_port)
    try:
        with pytest.raises(TimeoutError):
            await client.ask(b"nobody", timeout=0.3)
        port.set_upstreams([await backends.start(b"late")])
        assert await client.name() == b"late"
    finally:
        client.close()
        await port.close(1.0)


async def test_ingress_keeps_tcp_and_udp_on_the_same_number_apart(backends: Backends) -> None:
    ingress = Ingress(LOOPBACK)
    try:
        udp = await ingress.ensure(0, "udp")
        tcp = await ingress.ensure(0, "tcp")
        assert isinstance(udp, UdpIngressPort) and udp is not tcp
        ingress.set_upstreams(0, [await backends.start(b"u")], "udp")
        client = Client(udp.bound_port)
        try:
            assert await client.name() == b"u"
        finally:
            client.close()
    finally:
        await ingress.close_all(drain_timeout=1.0)
