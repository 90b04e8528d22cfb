"""IngressPort and Ingress on real loopback sockets, with small asyncio servers as backends."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from structlog.testing import capture_logs

from orchestrator.ingress import proxy
from orchestrator.ingress.proxy import Upstream, Ingress, IngressError, IngressPort

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
LOOPBACK = "127.0.0.1"


def named_echo(name: bytes) -> Handler:
    """Says its name, then echoes everything it reads once the client has finished (EOF)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(name + b"\n")
        data = await reader.read()
        writer.write(data)
        await writer.drain()
        writer.close()

    return handle


class Backends:
    """Starts backend servers on 127.0.0.1 and closes them all after the test."""

    def __init__(self) -> None:
        self.servers: list[asyncio.Server] = []

    async def start(self, handler: Handler) -> Upstream:
        server = await asyncio.start_server(handler, LOOPBACK, 0)
        self.servers.append(server)
        return (LOOPBACK, int(server.sockets[0].getsockname()[1]))

    async def close(self) -> None:
        for server in self.servers:
            server.close()
        for server in self.servers:
            await server.wait_closed()


@pytest.fixture(name="backends")
async def _backends() -> AsyncIterator[Backends]:
    backends = Backends()
    yield backends
    await backends.close()


@pytest.fixture(name="ingress_port")
async def _ingress_port() -> AsyncIterator[IngressPort]:
    port = IngressPort(LOOPBACK, 0, connect_timeout=0.3)
    await port.start()
    yield port
    await port.close(drain_timeout=1.0)


@pytest.fixture(name="closed_port")
def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


@pytest.fixture(name="full_backlog")
def _full_backlog() -> Iterator[Upstream]:
    """A listener whose accept queue is full: connects to it hang until they time out."""
    with socket.socket() as listener:
        listener.bind((LOOPBACK, 0))
        listener.listen(0)
        address = (LOOPBACK, int(listener.getsockname()[1]))
        queued = []
        for _ in range(3):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(address)
            queued.append(sock)
        try:
            yield address
        finally:
            for sock in queued:
                sock.close()


async def exchange(port: IngressPort, payload: bytes = b"") -> tuple[bytes, bytes]:
    """Connects through the ingress, sends payload then EOF; returns (name, echoed bytes)."""
    reader, writer = await asyncio.open_connection(LOOPBACK, port.bound_port)
    try:
        name = await reader.readline()
        writer.write(payload)
        writer.write_eof()
        echoed = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return name.strip(), echoed


async def test_connections_spread_round_robin(ingress_port: IngressPort, backends: Backends) -> None:
    ingress_port.set_upstreams([await backends.start(named_echo(n)) for n in (b"a", b"b", b"c")])
    names = [(await exchange(ingress_port))[0] for _ in range(6)]
    assert names == [b"a", b"b", b"c", b"a", b"b", b"c"]


async def test_refused_backend_is_skipped_without_a_client_error(
        ingress_port: IngressPort, backends: Backends, closed_port: int) -> None:
    live = await backends.start(named_echo(b"live"))
    ingress_port.set_upstreams([(LOOPBACK, closed_port), live])
    results = [await exchange(ingress_port, b"x") for _ in range(4)]
    assert results == [(b"live", b"x")] * 4


async def test_backend_that_times_out_is_skipped(backends: Backends, full_backlog: Upstream) -> None:
    port = IngressPort(LOOPBACK, 0, connect_timeout=0.2)
    await port.start()
    try:
        port.set_upstreams([full_backlog, await backends.start(named_echo(b"live"))])
        with capture_logs() as first_logs:
            assert await exchange(port, b"y") == (b"live", b"y")
        # The timed-out backend now sits out: the next clients do not wait for it again.
        with capture_logs() as later_logs:
            assert [await exchange(port, b"z") for _ in range(3)] == [(b"live", b"z")] * 3
        assert [e["event"] for e in first_logs].count("ingress_connect_failed") == 1
        assert [e["event"] for e in later_logs].count("ingress_connect_failed") == 0
    finally:
        await port.close(drain_timeout=1.0)


async def test_removed_backend_finishes_its_open_connection(ingress_port: IngressPort,
                                                           backends: Backends) -> None:
    old = await backends.start(named_echo(b"old"))
    ingress_port.set_upstreams([old])
    reader, writer = await asyncio.open_connection(LOOPBACK, ingress_port.bound_port)
    assert await reader.readline() == b"old\n"

    ingress_port.set_upstreams([await backends.start(named_echo(b"new"))])
    assert ingress_port.connections(old) == 1
    assert (await exchange(ingress_port))[0] == b"new"
    drained = asyncio.create_task(ingress_port.drain(old, timeout=5.0))
    writer.write(b"still here")
    writer.write_eof()
    assert await reader.read() == b"still here"
    writer.close()
    assert await drained is True
    assert ingress_port.connections(old) == 0


async def test_drain_aborts_what_outlives_the_timeout(ingress_port: IngressPort, backends: Backends) -> None:
    slow = await backends.start(named_echo(b"slow"))
    ingress_port.set_upstreams([slow])
    reader, writer = await asyncio.open_connection(LOOPBACK, ingress_port.bound_port)
    await reader.readline()
    ingress_port.remove_backend(slow)

    assert await ingress_port.drain(slow, timeout=0.1) is False
    try:
        assert await asyncio.wait_for(reader.read(), 1.0) == b""
    except ConnectionResetError:
        pass  # an abort may arrive as a reset: either way the connection is over
    writer.close()


async def reset_at_once(port: IngressPort) -> None:
    reader, writer = await asyncio.open_connection(LOOPBACK, port.bound_port)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 1.0)
    writer.close()


@contextlib.asynccontextmanager
async def started(port: IngressPort) -> AsyncIterator[IngressPort]:
    await port.start()
    try:
        yield port
    finally:
        await port.close(drain_timeout=1.0)


async def test_a_port_that_never_had_backends_resets_new_clients_at_once(ingress_port: IngressPort) -> None:
    await reset_at_once(ingress_port)


async def test_a_rotation_empty_for_longer_than_the_grace_resets_new_clients_at_once(backends: Backends) -> None:
    async with started(IngressPort(LOOPBACK, 0, empty_grace=0.2)) as port:
        port.set_upstreams([await backends.start(named_echo(b"a"))])
        port.set_upstreams([])
        await asyncio.sleep(0.3)  # a service scaled to 0, say
        await reset_at_once(port)


async def test_a_client_arriving_as_the_rotation_empties_is_held_for_the_next_replica(backends: Backends) -> None:
    """The last replica was replaced (or turned unhealthy): the next one is moments away."""
    async with started(IngressPort(LOOPBACK, 0, empty_grace=5.0)) as port:
        port.set_upstreams([await backends.start(named_echo(b"old"))])
        port.set_upstreams([])
        client = asyncio.create_task(exchange(port, b"hello"))
        await asyncio.sleep(0.2)
        port.set_upstreams([])  # a pass that still finds none: the client stays held
        await asyncio.sleep(0.1)
        assert not client.done()
        port.set_upstreams([await backends.start(named_echo(b"new"))])
        assert await asyncio.wait_for(client, 2.0) == (b"new", b"hello")


async def test_a_held_client_is_reset_when_no_replica_joins_within_the_grace(backends: Backends) -> None:
    async with started(IngressPort(LOOPBACK, 0, empty_grace=0.3)) as port:
        port.set_upstreams([await backends.start(named_echo(b"a"))])
        port.set_upstreams([])
        await reset_at_once(port)


async def test_clients_beyond_the_hold_limit_are_reset_at_once(
        backends: Backends, monkeypatch: pytest.MonkeyPatch) -> None:
    """Holding costs a socket per client: a flood during the grace cannot pile them up."""
    monkeypatch.setattr(proxy, "MAX_HELD", 1)
    async with started(IngressPort(LOOPBACK, 0, empty_grace=5.0)) as port:
        port.set_upstreams([await backends.start(named_echo(b"old"))])
        port.set_upstreams([])
        held = asyncio.create_task(exchange(port, b"first"))
        await asyncio.sleep(0.2)
        await reset_at_once(port)
        port.set_upstreams([await backends.start(named_echo(b"new"))])
        assert await asyncio.wait_for(held, 2.0) == (b"new", b"first")


async def test_large_transfer_arrives_intact(ingress_port: IngressPort, backends: Backends) -> None:
    ingress_port.set_upstreams([await backends.start(named_echo(b"big"))])
    payload = os.urandom(16 * 1024 * 1024)
    name, echoed = await exchange(ingress_port, payload)
    assert name == b"big"
    assert len(echoed) == len(payload)
    assert echoed == payload


async def test_backend_half_close_leaves_the_client_direction_open(ingress_port: IngressPort,
                                                                  backends: Backends) -> None:
    received = asyncio.get_running_loop().create_future()

    async def says_bye_then_listens(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"bye")
        writer.write_eof()
        received.set_result(await reader.read())
        writer.close()

    ingress_port.set_upstreams([await backends.start(says_bye_then_listens)])
    reader, writer = await asyncio.open_connection(LOOPBACK, ingress_port.bound_port)
    assert await reader.read() == b"bye"  # the backend's EOF reached the client...
    writer.write(b"after your eof")  # ...and the client can still send
    writer.write_eof()
    assert await asyncio.wait_for(received, 2.0) == b"after your eof"
    writer.close()
    await writer.wait_closed()


async def test_close_stops_listening(backends: Backends) -> None:
    port = IngressPort(LOOPBACK, 0)
    await port.start()
    port.set_upstreams([await backends.start(named_echo(b"a"))])
    number = port.bound_port
    await port.close(drain_timeout=1.0)
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(LOOPBACK, number)


async def test_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        holder.listen(1)
        taken = int(holder.getsockname()[1])
        with pytest.raises(IngressError, match=f"cannot listen on 127.0.0.1:{taken}/tcp: address already in use"):
            await IngressPort(LOOPBACK, taken).start()


async def test_ingress_manages_ports_by_number_and_protocol(backends: Backends) -> None:
    ingress = Ingress(LOOPBACK)
    try:
        first = await ingress.ensure(0)
        assert await ingress.ensure(0) is first
        backend = await backends.start(named_echo(b"m"))
        ingress.set_upstreams(0, [backend])
        assert (await exchange(first))[0] == b"m"
        ingress.remove_backend(backend)
        assert first.backends == ()
        with pytest.raises(IngressError, match="port 81/tcp is not published"):
            ingress.set_upstreams(81, [backend])
        with pytest.raises(IngressError, match="sctp ports cannot be published in ingress mode"):
            await ingress.ensure(5353, "sctp")
    finally:
        await ingress.close_all(drain_timeout=1.0)
    assert ingress.ports == {}


def resetting(seen: list[bytes], answer_first: bytes = b"") -> Handler:
    """Reads the request (and sends `answer_first`, if any), then resets the connection."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readline())
        if answer_first:
            writer.write(answer_first)
            await writer.drain()
            await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()

    return handle


def replying(seen: list[bytes]) -> Handler:
    """Answers each request line with `ok <line>` and closes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        seen.append(line)
        writer.write(b"ok " + line)
        await writer.drain()
        writer.close()

    return handle


async def ask(port: IngressPort, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(LOOPBACK, port.bound_port)
    try:
        writer.write(request)
        return await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_a_reset_before_the_first_answer_byte_is_retried_on_another_backend(
    ingress_port: IngressPort, backends: Backends
) -> None:
    reset_by, answered_by = [], []
    ingress_port.set_upstreams([await backends.start(resetting(reset_by)), await backends.start(replying(answered_by))])
    assert await ask(ingress_port, b"GET /1\n") == b"ok GET /1\n"
    assert reset_by == [b"GET /1\n"] and answered_by == [b"GET /1\n"]  # tried first, then replayed


async def test_a_reset_after_the_backend_answered_reaches_the_client(
    ingress_port: IngressPort, backends: Backends
) -> None:
    reset_by, answered_by = [], []
    ingress_port.set_upstreams([await backends.start(resetting(reset_by, b"partial")),
                               await backends.start(replying(answered_by))])
    reader, writer = await asyncio.open_connection(LOOPBACK, ingress_port.bound_port)
    writer.write(b"GET /2\n")
    assert await reader.readexactly(7) == b"partial"
    with pytest.raises(ConnectionResetError):
        await reader.read()
    writer.close()
    assert reset_by == [b"GET /2\n"] and answered_by == []  # never sent twice
