"""serve(): TCP and unix socket listeners, the loopback/token rule, stale sockets."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.api import make_app, serve
from orchestrator.cli.client import ApiError, Client
from orchestrator.errors import UserError
from orchestrator.settings import Settings
from tests.unit.fake_control import FakeControl


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[None]:
    ready = asyncio.Event()
    task = asyncio.create_task(serve(make_app(FakeControl(), settings), settings, ready))
    waiter = asyncio.create_task(ready.wait())
    try:
        await asyncio.wait({task, waiter}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raise what stopped it
        yield
    finally:
        waiter.cancel()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_the_owner_only_unix_socket_needs_no_token_and_tcp_always_does(tmp_path: Path) -> None:
    sock = tmp_path / "run" / "orchestrator.sock"
    port = free_port()
    async with serving(Settings(listen=f"127.0.0.1:{port}", socket=str(sock), token="s3cret")):
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600
        async with Client(f"unix://{sock}") as client:
            assert await client.stacks() == []
        async with Client(f"127.0.0.1:{port}") as client:
            with pytest.raises(ApiError) as refused:
                await client.stacks()
            assert refused.value.status == 401
        async with Client(f"127.0.0.1:{port}", "s3cret") as client:
            assert await client.stacks() == []


async def test_tcp_without_a_configured_token_refuses_everything_but_health() -> None:
    """Closed by default: an app that was given no token opens nothing over TCP."""
    port = free_port()
    async with serving(Settings(listen=f"127.0.0.1:{port}", socket="")):
        async with Client(f"127.0.0.1:{port}", "") as client:
            with pytest.raises(ApiError) as refused:
                await client.stacks()
            assert refused.value.status == 401
            assert await client.request("GET", "/v1/health") == {"engine": True, "redis": True}


async def test_a_stale_socket_is_replaced_and_a_live_one_refused(tmp_path: Path) -> None:
    sock = tmp_path / "orchestrator.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(sock))  # left behind, nobody listening
    async with serving(Settings(listen=f"127.0.0.1:{free_port()}", socket=str(sock))):
        with pytest.raises(UserError, match="already serving"):
            async with serving(Settings(listen=f"127.0.0.1:{free_port()}", socket=str(sock))):
                pass


async def test_refuses_to_listen_beyond_loopback_without_a_token() -> None:
    with pytest.raises(UserError, match="without a token"):
        async with serving(Settings(listen="0.0.0.0:0")):
            pass
