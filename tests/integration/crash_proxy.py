"""A unix-socket front for the engine that SIGKILLs the daemon at chosen engine requests.

The daemon runs with `DOCKER_HOST=unix://<proxy socket>`. Every byte passes through unchanged;
the requests that change something (POST, PUT, DELETE) are counted, across connections. Armed,
the proxy kills the daemon (SIGKILL, the pid from `victim`) at a changing request, before the
engine sees it, or, with `after_answer`, when the engine's answer to it comes back: the change
is made and the daemon never hears of it. Those are the two sides of every instant a crash can
hit an engine call.

Where: each life of the daemon (from one kill to the next) dies one request deeper than the
life before: the first at its `first`-th changing request, the next (started again by the test)
at its `first + 1`-th, and so on. So every life gets further through the operation and its own
recovery, and is killed at a point no earlier life reached, until the work needs fewer requests
than the depth (or `limit` kills are spent) and the operation finishes.

HTTP/1.1 as the engine client speaks it: one request at a time per connection (no pipelining),
so the bytes that come back after a request went out are its answer. Requests are read head
first, then their body by Content-Length or chunks, so the next request on a kept-alive
connection is found too. No test hook in the daemon is needed.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.integration.engine.engine_proxy import engine_socket

MUTATING = frozenset({b"POST", b"PUT", b"DELETE"})


@dataclass(frozen=True)
class Kill:
    count: int
    request: str  # "POST /v1.41/containers/create"
    after_answer: bool


@dataclass
class _Connection:
    #: The request just sent is one to kill at: the first answer bytes kill the daemon.
    kill_on_answer: Kill | None = None


@dataclass
class CrashProxy:
    path: str
    #: The daemon's pid now (None while none runs).
    victim: Callable[[], int | None]
    upstream: str = field(default_factory=engine_socket)
    #: Changing requests since `arm`, and in the daemon's current life.
    count: int = 0
    life_count: int = 0
    kills: list[Kill] = field(default_factory=list)
    _depth: int = 0  # 0: disarmed
    _left: int = 0
    _only: bytes = b""
    _after_answer: bool = False
    _dying: bool = False  # a kill on an answer is pending in this life
    _server: asyncio.AbstractServer | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def arm(self, *, after_answer: bool, first: int = 1, step: int = 1, limit: int = 12,
            only: bytes = b"") -> None:
        """Kill the current life at its `first`-th changing request from now, each next life
        `step` deeper; at most `limit` kills. `only`: count for the kills only the changing
        requests whose target contains it (b"/stop": the stops)."""
        self.count = self.life_count = 0
        self._depth, self._left, self._after_answer, self._dying = first, limit, after_answer, False
        self._only, self._step = only, step

    def disarm(self) -> None:
        self._depth = 0

    async def start(self) -> None:
        self._server = await asyncio.start_unix_server(self._serve, self.path)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()

    # ------------------------------------------------------------------------------------------
    def _due(self, method: bytes, target: bytes) -> Kill | None:
        """Count a changing request; the kill it is due for, if any."""
        self.count += 1
        if self._only not in target:
            return None
        self.life_count += 1
        if not self._depth or self._left <= 0 or self._dying or self.life_count != self._depth:
            return None
        self._dying = self._after_answer
        return Kill(self.count, f"{method.decode()} {target.decode()}", self._after_answer)

    def _kill(self, kill: Kill) -> None:
        pid = self.victim()
        if pid is not None:
            os.kill(pid, signal.SIGKILL)
            self.kills.append(kill)
            self._left -= 1
        self.life_count, self._dying = 0, False
        self._depth += self._step if self._depth else 0

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        up_writer: asyncio.StreamWriter | None = None
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.upstream)
            self._writers.add(up_writer)
            state = _Connection()
            requests = asyncio.ensure_future(self._requests(reader, up_writer, state))
            answers = asyncio.ensure_future(self._answers(up_reader, writer, state))
            await asyncio.wait({requests, answers}, return_when=asyncio.FIRST_COMPLETED)
            for task in (requests, answers):
                task.cancel()
            await asyncio.gather(requests, answers, return_exceptions=True)
        except OSError:
            pass
        finally:
            for w in (writer, up_writer):
                if w is not None:
                    self._writers.discard(w)
                    w.transport.abort()

    async def _requests(self, reader: asyncio.StreamReader, up: asyncio.StreamWriter,
                        state: _Connection) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                return
            method, target, headers = _parse_head(head)
            kill = self._due(method, target) if method in MUTATING else None
            if kill is not None and not kill.after_answer:
                self._kill(kill)
                return  # the engine never sees it
            state.kill_on_answer = kill
            up.write(head)
            if headers.get(b"upgrade"):  # a hijacked stream (attach): plain bytes from here on
                await _pump(reader, up)
                return
            await _forward_body(reader, up, headers)
            await up.drain()

    async def _answers(self, up: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       state: _Connection) -> None:
        while data := await up.read(65536):
            if state.kill_on_answer is not None:
                self._kill(state.kill_on_answer)
                return  # the daemon never hears the answer
            writer.write(data)
            await writer.drain()


def _parse_head(head: bytes) -> tuple[bytes, bytes, dict[bytes, bytes]]:
    request_line, *lines = head.rstrip(b"\r\n").split(b"\r\n")
    method, target, _ = request_line.split(b" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers


async def _forward_body(reader: asyncio.StreamReader, up: asyncio.StreamWriter,
                        headers: dict[bytes, bytes]) -> None:
    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
        while True:
            size_line = await reader.readuntil(b"\r\n")
            up.write(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                while (trailer := await reader.readuntil(b"\r\n")) != b"\r\n":
                    up.write(trailer)
                up.write(b"\r\n")
                return
            up.write(await reader.readexactly(size + 2))  # the chunk and its CRLF
    remaining = int(headers.get(b"content-length", b"0"))
    while remaining:
        chunk = await reader.read(min(remaining, 65536))
        if not chunk:
            raise ConnectionError("the client closed mid-body")
        up.write(chunk)
        remaining -= len(chunk)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(65536):
        writer.write(data)
        await writer.drain()
