"""A TCP front (on 127.0.0.1) for the engine's unix socket that a test can cut and block.

A client connected through it (`Engine.connect(proxy.url)`) sees exactly what a network drop
or a stopped engine looks like from the outside: its connections end, and while `blocked`
every new connection is closed at once. The engine itself is never touched.
"""

from __future__ import annotations

import asyncio
import os


def engine_socket() -> str:
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if not host.startswith("unix://"):
        raise RuntimeError(f"the proxy needs a unix-socket engine, not {host}")
    return host.removeprefix("unix://")


class EngineProxy:
    def __init__(self, socket_path: str | None = None) -> None:
        self._socket = socket_path or engine_socket()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self.blocked = False
        self.url = ""

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"tcp://127.0.0.1:{port}"
        return self.url

    def cut(self) -> None:
        """End every connection now, as a dropped network would."""
        for writer in list(self._writers):
            writer.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        self._writers.add(writer)
        try:
            if self.blocked:
                return
            up_reader, up_writer = await asyncio.open_unix_connection(self._socket)
            self._writers.add(up_writer)
            try:
                await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
            finally:
                self._writers.discard(up_writer)
                up_writer.transport.abort()
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
            self._handlers.discard(task)


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        writer.transport.abort()  # one side ended: end the other, as a real drop does
