"""The ingress process's control socket and the daemon's RemoteIngress, both in this process on
real loopback and unix sockets: what one daemon sets up survives it, the next adopts it, and a
restarted ingress gets everything again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from orchestrator.errors import IngressError
from orchestrator.ingress.process import serve_ingress, socket_path
from orchestrator.ingress.proxy import Upstream
from orchestrator.ingress.remote import RemoteIngress
from orchestrator.settings import Settings
from tests.unit.test_ingress import LOOPBACK, Backends, named_echo
from tests.unit.test_ingress import _backends as backends  # noqa: F401 - the fixture


class RunningIngress:
    """`serve_ingress` as a task, stopped (and started again) at will."""

    def __init__(self, state_dir: Path) -> None:
        self.settings = replace(Settings(), state_dir=str(state_dir), ingress_host=LOOPBACK)
        self.stop = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.stop = asyncio.Event()
        started = asyncio.Event()
        self.task = asyncio.create_task(serve_ingress(self.settings, self.stop, started))
        await started.wait()

    async def halt(self) -> None:
        self.stop.set()
        assert self.task is not None
        await self.task


@pytest.fixture(name="ingress")
async def _ingress(tmp_path: Path) -> AsyncIterator[RunningIngress]:
    running = RunningIngress(tmp_path)
    await running.start()
    yield running
    await running.halt()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


async def name_of(port: int) -> bytes:
    reader, writer = await asyncio.open_connection(LOOPBACK, port)
    name = await reader.readline()
    writer.close()
    return name.strip()


async def connected(state_dir: Path) -> RemoteIngress:
    remote = RemoteIngress(state_dir, LOOPBACK, spawn=False)
    await remote.start(wait=5)
    return remote


async def serving(state_dir: Path, backends: Backends, name: bytes) -> tuple[RemoteIngress, int, Upstream]:
    """A daemon's RemoteIngress with one port whose rotation is one backend saying `name`."""
    port = free_port()
    remote = await connected(state_dir)
    await remote.ensure(port)
    backend = await backends.start(named_echo(name))
    remote.set_upstreams(port, [backend])
    assert await name_of(port) == name
    return remote, port, backend


async def eventually(check: object, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.02)


async def test_the_ports_a_daemon_set_up_outlive_it_and_the_next_daemon_adopts_them(
    ingress: RunningIngress, backends: Backends, tmp_path: Path
) -> None:
    first, port, backend = await serving(tmp_path, backends, b"a")
    await first.detach()  # the daemon stops (or dies)
    assert await name_of(port) == b"a"  # still served, by the same rotation

    second = await connected(tmp_path)
    assert second.ports == {(port, "tcp"): (backend,)} and second.adopted == {(port, "tcp")}
    await second.prune({(port, "tcp")})
    assert await name_of(port) == b"a"
    await second.prune(set())  # no deployed stack wants it any more
    assert second.ports == {}
    with pytest.raises(ConnectionRefusedError):
        await name_of(port)
    await second.detach()


async def test_a_port_that_cannot_be_bound_is_an_ingress_error(ingress: RunningIngress, tmp_path: Path) -> None:
    remote = await connected(tmp_path)
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        holder.listen(1)
        taken = int(holder.getsockname()[1])
        with pytest.raises(IngressError, match=f"cannot listen on 127.0.0.1:{taken}/tcp: address already in use"):
            await remote.ensure(taken)
    assert remote.ports == {}
    await remote.detach()


async def test_a_restarted_ingress_gets_every_port_and_rotation_again(
    ingress: RunningIngress, backends: Backends, tmp_path: Path
) -> None:
    remote, port, _ = await serving(tmp_path, backends, b"b")
    await ingress.halt()  # e.g. it crashed, and systemd starts it again
    await ingress.start()
    await eventually(lambda: remote._connected.is_set())
    async with asyncio.timeout(5):
        while True:
            try:
                if await name_of(port) == b"b":
                    break
            except ConnectionError:
                await asyncio.sleep(0.05)
    await remote.detach()


async def test_without_an_ingress_ensure_fails_clearly(tmp_path: Path) -> None:
    remote = RemoteIngress(tmp_path, LOOPBACK, spawn=False)
    await remote.start(wait=0.2)
    with pytest.raises(IngressError, match="the ingress process is not running"):
        await remote.ensure(free_port())
    await remote.detach()


async def test_bad_requests_are_answered_with_their_reason(ingress: RunningIngress, tmp_path: Path) -> None:
    reader, writer = await asyncio.open_unix_connection(socket_path(tmp_path))
    answers = []
    for line in (b"not json\n", b"[1]\n", b'{"id": 1, "op": "explode"}\n',
                 b'{"id": 2, "op": "listen", "port": 70000, "protocol": "tcp"}\n',
                 b'{"id": 3, "op": "backends", "port": 80, "protocol": "tcp", "backends": [["host", 80]]}\n',
                 b'{"id": 4, "op": "listen", "port": 5353, "protocol": "sctp"}\n'):
        writer.write(line)
        answers.append(json.loads(await reader.readline()))
    writer.close()
    assert [a["ok"] for a in answers] == [False] * 6
    errors = [a["error"] for a in answers]
    assert "Expecting value" in errors[0] and errors[1] == "a request is a JSON object"
    assert errors[2] == "unknown op 'explode'" and "from 0 to 65535" in errors[3]
    assert "must be an IP address" in errors[4] and errors[5] == "protocol must be tcp or udp, not 'sctp'"


async def test_one_ingress_per_state_directory(tmp_path: Path) -> None:
    env = {**os.environ, "ORCHESTRATOR_STATE_DIR": str(tmp_path), "ORCHESTRATOR_INGRESS_HOST": LOOPBACK}
    first = subprocess.Popen([sys.executable, "-m", "orchestrator", "ingress"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await eventually(lambda: socket_path(tmp_path).exists(), timeout=30)
        second = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "orchestrator", "ingress"],
                                         env=env, capture_output=True, text=True, timeout=30)
        assert second.returncode == 1
        assert second.stderr.splitlines()[-1] == f"error: an ingress already runs for {tmp_path} (pid {first.pid})"
    finally:
        first.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(first.wait, 30)
    assert code == 0 and not (tmp_path / "ingress.pid").exists() and not socket_path(tmp_path).exists()


async def test_an_idle_ingress_with_idle_exit_stops_by_itself(tmp_path: Path) -> None:
    settings = replace(Settings(), state_dir=str(tmp_path), ingress_host=LOOPBACK)
    stop = asyncio.Event()
    async with asyncio.timeout(10):
        await serve_ingress(settings, stop, idle_exit=0.2)  # returns only because it stopped itself
    assert stop.is_set() and not socket_path(tmp_path).exists()


async def test_an_ingress_with_a_daemon_does_not_idle_exit(tmp_path: Path) -> None:
    settings = replace(Settings(), state_dir=str(tmp_path), ingress_host=LOOPBACK)
    stop, started = asyncio.Event(), asyncio.Event()
    serving = asyncio.create_task(serve_ingress(settings, stop, started, idle_exit=0.2))
    await started.wait()
    remote = await connected(tmp_path)
    await asyncio.sleep(1.0)
    assert not stop.is_set()
    await remote.detach()
    async with asyncio.timeout(10):
        await serving  # the daemon left, and no port: now it stops by itself
