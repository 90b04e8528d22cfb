"""Issue 12, point 11, over HTTP on the real daemon: a published port (mode: ingress) that
cannot be bound fails the deploy with a 409 that names it; one taken while the daemon was down
is shown as not published, said in an event, retried, and said again when it works. Ports are
held by a socket of the test's own on 127.0.0.1 (the test daemon's ingress host)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.integration.conftest import BUSYBOX
from tests.integration.daemon_process import DaemonProcess, free_port
from tests.integration.event_log import StreamLog

pytestmark = pytest.mark.integration


def stack_text(port: int) -> str:
    return (f"services:\n  web:\n    image: {BUSYBOX}\n    init: true\n"
            f"    command: [httpd, -f, -p, '80', -h, /www]\n    ports: ['{port}:80']\n")


def hold(port: int) -> socket.socket:
    """Listen on 127.0.0.1:port as another program would."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", port))
    sock.listen()
    return sock


def port_is(state: str, running: int | None = None) -> Callable[[list[dict[str, Any]]], bool]:
    def check(services: list[dict[str, Any]]) -> bool:
        (web,) = services
        return web["ports"][0]["state"] == state and running in (None, web["replicas_running"])
    return check


async def put(daemon: DaemonProcess, stack: str, text: str) -> tuple[int, Any]:
    return await daemon.request("PUT", f"/v1/stacks/{stack}", data=text,
                                headers={"Content-Type": "application/yaml"})


async def test_a_deploy_whose_port_cannot_be_bound_is_refused_with_409_and_nothing_saved(
    daemon: DaemonProcess, stack_name: str
) -> None:
    port = free_port()
    holder = hold(port)
    try:
        status, body = await put(daemon, stack_name, stack_text(port))
        assert status == 409, body
        error = body["error"]
        assert (error["code"], error["path"]) == ("conflict", "services.web.ports")
        assert f"127.0.0.1:{port}/tcp: address already in use" in error["message"]
        _, stacks = await daemon.request("GET", "/v1/stacks")
        assert stack_name not in [s["name"] for s in stacks], "a refused deploy saves nothing"
    finally:
        holder.close()

    status, body = await put(daemon, stack_name, stack_text(port))
    assert status == 201, body
    with pytest.raises(OSError):  # the daemon holds the port from the deploy's answer on
        hold(port).close()
    services = await daemon.poll(f"/v1/stacks/{stack_name}/services", port_is("published"))
    assert services[0]["ports"][0]["error"] == ""
    status, body = await put(daemon, stack_name, stack_text(port))
    assert (status, body["result"]) == (200, "unchanged"), "its own listener is no conflict"


async def test_a_port_taken_while_the_daemon_was_down_is_unpublished_said_and_retried(
    daemon: DaemonProcess, stack_name: str, redis_client: aioredis.Redis, redis_prefix: str
) -> None:
    port = free_port()
    await daemon.deploy(stack_name, stack_text(port))
    await daemon.poll(f"/v1/stacks/{stack_name}/services", port_is("published", running=1))
    assert await daemon.stop() == 0
    holder = hold(port)  # another program takes the port meanwhile
    try:
        await daemon.start()
        services = await daemon.poll(f"/v1/stacks/{stack_name}/services", port_is("unavailable"))
        assert "address already in use" in services[0]["ports"][0]["error"]
    finally:
        holder.close()
    await daemon.poll(f"/v1/stacks/{stack_name}/services", port_is("published", running=1), timeout=60)

    stream = StreamLog(redis_client, redis_prefix)
    await stream.poll()
    said = [(m["type"], m["service"], m["reason"]) for m in stream.messages
            if m["type"].startswith("service.port_") and m.get("stack") == stack_name]
    assert [(kind, service) for kind, service, _ in said] == [
        ("service.port_unavailable", "web"), ("service.port_published", "web")]
    assert f"{port}/tcp" in said[0][2] and "address already in use" in said[0][2]
    assert (await http_status_line(port)).startswith(b"HTTP/1."), "served again"


async def http_status_line(port: int, attempts: int = 50) -> bytes:
    """The first line of an HTTP answer through the port; retried while the ingress has no
    ready replica yet (it resets the client) or the replica is not listening yet."""
    last: BaseException | None = None
    for _ in range(attempts):
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(b"GET / HTTP/1.0\r\n\r\n")
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
            if line:
                return line
        except OSError as exc:
            last = exc
        await asyncio.sleep(0.2)
    raise AssertionError(f"no HTTP answer on port {port}: {last!r}")
