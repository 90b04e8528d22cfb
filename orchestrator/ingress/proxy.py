"""The TCP front for published ports in ingress mode.

The daemon listens on a published port itself and spreads connections round-robin over the
service's running replicas (each of which publishes its target port on 127.0.0.1 only). A
connect that fails (refused, timed out) is tried on the next backend before the client sees an
error; a backend that failed sits out new connections for a moment so a dead replica does not
cost every client a connect timeout. Connections are counted per backend, so one that left the
rotation (an update, a scale-down) can finish what it carries: `drain()`.

Bytes are relayed with asyncio Protocols rather than streams: no task and no extra buffer copy
per direction, and flow control is the transports' own (a full write buffer on one side pauses
reading on the other). Half-close is passed through: EOF from one side becomes write_eof() on
the other, and the pair closes once both directions have ended.

UDP ports are relayed per client flow by `ingress_udp.UdpIngressPort`, which has the same
surface; `Ingress` keeps both kinds, keyed by (port, protocol).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import struct
import time
from collections.abc import Callable, Iterable, Sequence
from typing import cast

import structlog

from orchestrator.errors import IngressError
from orchestrator.ingress.rotation import in_turn
from orchestrator.ingress.udp import UdpIngressPort

log = structlog.stdlib.get_logger()

Upstream = tuple[str, int]

#: How long a backend that refused or timed out is tried only after all others.
FAILED_BACKEND_COOLDOWN_S = 2.0
#: A rotation that just became empty (its last replica replaced, turned unhealthy, drained) holds
#: new clients this long for a replica to join, instead of resetting them at once; one that has
#: been empty longer (a service scaled to 0, a replica that cannot start) resets them at once.
EMPTY_GRACE_S = 5.0
#: Clients held at once by one port during that grace; more are reset at once (each holds a socket).
MAX_HELD = 1024
#: Client bytes kept until the backend answers, so a reset before its first byte can be retried
#: on another backend; a client that sends more before any answer is not retried.
REPLAY_LIMIT = 64 * 1024


def _reset(transport: asyncio.Transport) -> None:
    """Closes with a TCP reset (SO_LINGER 0), so the peer fails at once instead of seeing a
    clean, empty end of stream it may mistake for an answer."""
    sock = transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass  # already gone: abort() is all that is left to do
    transport.abort()


class _Pipe(asyncio.Protocol):
    """One side of a relayed connection: what it reads goes to its peer's transport."""

    def __init__(self, on_made: Callable[[_Pipe], None] | None = None, *, upstream: bool = False) -> None:
        # A client's pipe: reading waits until a backend is linked; on_made starts the connect.
        self.on_made = on_made
        #: An upstream's copy of what the client sent, until the backend's first byte (or EOF):
        #: a reset before then is retried on another backend. None: no retry any more.
        self.replay: bytearray | None = bytearray() if upstream else None
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.early = bytearray()  # read before the peer existed
        self.got_eof = False
        self.lost = False
        self.relay: _Relay | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)
        if self.on_made is not None:
            self.transport.pause_reading()
            self.on_made(self)

    def data_received(self, data: bytes) -> None:
        self.replay = None  # the backend answered: from now on its failures are the client's
        peer = self.peer
        if peer is None:
            self.early += data
        elif peer.transport is not None:
            peer.transport.write(data)
            peer.keep_for_replay(data)

    def keep_for_replay(self, data: bytes) -> None:
        if self.replay is not None:
            self.replay += data
            if len(self.replay) > REPLAY_LIMIT:
                self.replay = None

    def eof_received(self) -> bool:
        self.got_eof = True
        self.replay = None
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.lost:
            if peer.transport.can_write_eof():
                peer.transport.write_eof()
            if peer.got_eof:  # both directions ended
                peer.transport.close()
                return False
        return True  # keep our own write side open for the peer's remaining bytes

    # Our write buffer is full: stop reading from the peer until it drains.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if exc is not None and self.replay is not None and self.relay is not None and self.relay.retry(self):
            return  # reset before it answered: the client goes on with another backend
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.lost:
            # A clean close lets the peer flush what is buffered; a reset is passed on as one.
            if exc is None:
                peer.transport.close()
            else:
                _reset(peer.transport)
        if self.relay is not None:
            self.relay.side_lost()


class _Relay:
    """A linked client/backend pair, counted against its backend until both sides are gone."""

    def __init__(self, port: IngressPort, backend: Upstream, client: _Pipe, upstream: _Pipe) -> None:
        self.port, self.backend = port, backend
        self.sides = (client, upstream)
        self._open = 2

    def link(self) -> None:
        """Joins the pair, then replays what either side did before it had a peer."""
        client, upstream = self.sides
        client.peer, upstream.peer = upstream, client
        client.relay = upstream.relay = self
        self._open = sum(not side.lost for side in self.sides)
        for side in self.sides:
            peer = side.peer
            assert peer is not None and peer.transport is not None
            if side.early and not peer.lost:
                peer.transport.write(bytes(side.early))
                peer.keep_for_replay(bytes(side.early))
                side.early.clear()
            if side.got_eof:
                side.eof_received()
            if side.lost and not peer.lost:
                peer.transport.close()
        if client.transport is not None and not client.lost:
            client.transport.resume_reading()
        if self._open == 0:
            self.port._relay_finished(self)

    def side_lost(self) -> None:
        self._open -= 1
        if self._open == 0:
            self.port._relay_finished(self)

    def retry(self, upstream: _Pipe) -> bool:
        """The backend reset the connection before its first byte: unlink the client and
        connect it to another backend, replaying what it sent. False when the client is gone."""
        client = self.sides[0]
        if client.lost or client.transport is None or upstream.replay is None:
            return False
        client.early = upstream.replay + client.early
        client.peer = client.relay = upstream.relay = None
        client.transport.pause_reading()
        self.port._relay_finished(self)
        self.port._retry(client, self.backend)
        return True

    def abort(self) -> None:
        for side in self.sides:
            if side.transport is not None and not side.lost:
                _reset(side.transport)


class IngressPort:
    """One published port: accepts clients and relays each to the next backend in rotation."""

    def __init__(self, host: str, port: int, *, connect_timeout: float = 1.0,
                 cooldown: float = FAILED_BACKEND_COOLDOWN_S, empty_grace: float = EMPTY_GRACE_S) -> None:
        self.host, self.port = host, port
        self._connect_timeout = connect_timeout
        self._cooldown = cooldown
        self._empty_grace = empty_grace
        self._backends: tuple[Upstream, ...] = ()
        #: When the rotation last went from some backends to none (monotonic), while it is empty.
        self._emptied_at: float | None = None
        #: Set (and replaced) at each change of the rotation: wakes the clients held meanwhile.
        self._changed = asyncio.Event()
        self._held = 0
        self._cursor = 0
        self._failed_until: dict[Upstream, float] = {}
        self._relays: dict[Upstream, set[_Relay]] = {}
        self._idle_waiters: dict[Upstream, list[asyncio.Future[None]]] = {}
        self._connecting: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    @property
    def backends(self) -> tuple[Upstream, ...]:
        return self._backends

    @property
    def bound_port(self) -> int:
        """The port actually listened on (differs from `port` when that was 0)."""
        assert self._server is not None, "not started"
        return int(self._server.sockets[0].getsockname()[1])

    def connections(self, backend: Upstream) -> int:
        return len(self._relays.get(backend, ()))

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(self._accepted, self.host, self.port)
        except OSError as exc:
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise IngressError(f"cannot listen on {self.host}:{self.port}/tcp: {reason}") from exc
        self.port = self.bound_port
        log.info("ingress_listening", host=self.host, port=self.port)

    def set_upstreams(self, backends: Sequence[Upstream]) -> None:
        """Replaces the rotation at once; connections already open stay where they are."""
        before, self._backends = self._backends, tuple(dict.fromkeys(backends))
        if not self._backends:
            self._emptied_at = time.monotonic() if before else self._emptied_at
        else:
            self._emptied_at = None
        self._changed.set()
        self._changed = asyncio.Event()
        log.info("ingress_backends_set", port=self.port, backends=[f"{h}:{p}" for h, p in self._backends])

    def remove_backend(self, backend: Upstream) -> None:
        if backend in self._backends:
            self.set_upstreams([b for b in self._backends if b != backend])

    async def drain(self, backend: Upstream, timeout: float) -> bool:
        """Waits for a backend's open connections to finish; aborts what is left after `timeout`.
        True when they all finished by themselves."""
        if not self._relays.get(backend):
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._idle_waiters.setdefault(backend, []).append(waiter)
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(waiter)
        except TimeoutError:
            left = list(self._relays.get(backend, ()))
            log.warning("ingress_drain_timed_out", port=self.port, backend=f"{backend[0]}:{backend[1]}",
                        aborted=len(left))
            for relay in left:
                relay.abort()
            return False
        return True

    async def close(self, drain_timeout: float) -> None:
        """Stops accepting, lets open connections finish within `drain_timeout`, aborts the rest."""
        if self._server is not None:
            self._server.close()
        for task in self._connecting:
            task.cancel()
        await asyncio.gather(*self._connecting, return_exceptions=True)
        results = await asyncio.gather(*(self.drain(b, drain_timeout) for b in list(self._relays)))
        await asyncio.sleep(0)  # aborted transports report connection_lost on the next turn
        if self._server is not None:
            await self._server.wait_closed()
        log.info("ingress_closed", port=self.port, drained=all(results))

    # --- accepting and connecting ---------------------------------------------------------

    def _accepted(self) -> _Pipe:
        return _Pipe(on_made=self._client_made)

    def _client_made(self, client: _Pipe) -> None:
        task = asyncio.get_running_loop().create_task(self._connect(client))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    def _retry(self, client: _Pipe, reset_by: Upstream) -> None:
        self._failed(reset_by, ConnectionResetError("reset before answering"))
        log.info("ingress_retry_after_reset", port=self.port, backend=f"{reset_by[0]}:{reset_by[1]}",
                 replay_bytes=len(client.early))
        task = asyncio.get_running_loop().create_task(self._connect(client, skip=reset_by))
        self._connecting.add(task)
        task.add_done_callback(self._connecting.discard)

    async def _connect(self, client: _Pipe, skip: Upstream | None = None) -> None:
        assert client.transport is not None  # set by connection_made, which started this task
        loop = asyncio.get_running_loop()
        try:
            while True:
                for backend in self._candidates():
                    if backend == skip:
                        continue
                    upstream = _Pipe(upstream=True)
                    try:
                        async with asyncio.timeout(self._connect_timeout):
                            await loop.create_connection(lambda: upstream, *backend)
                    except (OSError, TimeoutError) as exc:
                        self._failed(backend, exc)
                        continue
                    if client.lost:
                        assert upstream.transport is not None
                        upstream.transport.close()
                        return
                    self._linked(_Relay(self, backend, client, upstream))
                    return
                if client.lost or not await self._backend_joined():
                    break
        except asyncio.CancelledError:
            _reset(client.transport)
            raise
        log.warning("ingress_no_backend", port=self.port, backends=len(self._backends))
        _reset(client.transport)

    async def _backend_joined(self) -> bool:
        """While the rotation has been empty for less than the grace: wait for it to change.
        True if it did in time (the client tries again), False to reset the client now."""
        if self._backends or self._emptied_at is None:
            return False
        left = self._emptied_at + self._empty_grace - time.monotonic()
        if left <= 0 or self._held >= MAX_HELD:
            return False
        self._held += 1
        try:
            async with asyncio.timeout(left):
                await self._changed.wait()
        except TimeoutError:
            return False
        finally:
            self._held -= 1
        return True

    def _candidates(self) -> Iterable[Upstream]:
        """This connection's backends in round-robin order, recently failed ones last."""
        order = in_turn(self._backends, self._cursor, self._failed_until, time.monotonic())
        if self._backends:
            self._cursor = self._cursor % len(self._backends) + 1
        return order

    def _failed(self, backend: Upstream, exc: BaseException) -> None:
        self._failed_until[backend] = time.monotonic() + self._cooldown
        log.info("ingress_connect_failed", port=self.port, backend=f"{backend[0]}:{backend[1]}",
                 reason=str(exc) or type(exc).__name__)

    def _linked(self, relay: _Relay) -> None:
        self._failed_until.pop(relay.backend, None)
        self._relays.setdefault(relay.backend, set()).add(relay)
        relay.link()

    def _relay_finished(self, relay: _Relay) -> None:
        relays = self._relays.get(relay.backend)
        if relays is None:
            return
        relays.discard(relay)
        if not relays:
            del self._relays[relay.backend]
            for waiter in self._idle_waiters.pop(relay.backend, []):
                if not waiter.done():
                    waiter.set_result(None)


class Ingress:
    """The daemon's published ports in ingress mode, keyed by (published port, protocol)."""

    def __init__(self, host: str, *, connect_timeout: float = 1.0) -> None:
        self.host = host
        self._connect_timeout = connect_timeout
        self._ports: dict[tuple[int, str], IngressPort | UdpIngressPort] = {}

    @property
    def ports(self) -> dict[tuple[int, str], IngressPort | UdpIngressPort]:
        return dict(self._ports)

    async def ensure(self, port: int, protocol: str = "tcp") -> IngressPort | UdpIngressPort:
        """The listener for a published port, started on first use."""
        key = (port, _checked(protocol))
        if key not in self._ports:
            listener: IngressPort | UdpIngressPort
            if protocol == "udp":
                listener = UdpIngressPort(self.host, port)
            else:
                listener = IngressPort(self.host, port, connect_timeout=self._connect_timeout)
            await listener.start()
            self._ports[key] = listener
        return self._ports[key]

    def set_upstreams(self, port: int, backends: Sequence[Upstream], protocol: str = "tcp") -> None:
        self._listener(port, protocol).set_upstreams(backends)

    def remove_backend(self, backend: Upstream) -> None:
        """Takes a backend (a replica that died) out of every port's rotation."""
        for listener in self._ports.values():
            listener.remove_backend(backend)

    async def drain_backends(self, backends: Iterable[Upstream], timeout: float) -> None:
        """Waits up to `timeout` for the connections of `backends` (out of rotation) on every
        port to finish, and resets the rest."""
        backends = set(backends)
        ports = list(self._ports.values())
        await asyncio.gather(*(p.drain(b, timeout) for p in ports for b in backends if p.connections(b)))

    async def close(self, port: int, protocol: str = "tcp", *, drain_timeout: float = 10.0) -> None:
        listener = self._ports.pop((port, _checked(protocol)), None)
        if listener is not None:
            await listener.close(drain_timeout)

    async def close_all(self, *, drain_timeout: float = 10.0) -> None:
        listeners, self._ports = list(self._ports.values()), {}
        await asyncio.gather(*(listener.close(drain_timeout) for listener in listeners))

    def _listener(self, port: int, protocol: str) -> IngressPort | UdpIngressPort:
        try:
            return self._ports[(port, _checked(protocol))]
        except KeyError:
            raise IngressError(f"port {port}/{protocol} is not published through the ingress") from None


def _checked(protocol: str) -> str:
    if protocol in ("tcp", "udp"):
        return protocol
    raise IngressError(f"{protocol} ports cannot be published in ingress mode; use `mode: host`")
