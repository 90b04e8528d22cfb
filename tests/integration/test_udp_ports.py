"""Issue 13: a UDP port published in ingress mode, relayed by the daemon to real replicas (a
UDP echo server that answers with its hostname): each client stays on one replica, new
clients take turns, and a client whose replica dies is answered by another one."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from orchestrator.labels import LABEL_STACK
from tests.integration.daemon_process import DaemonProcess, free_port

pytestmark = pytest.mark.integration

ECHO = (
    "import socket\n"
    "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.bind(('', 9000))\n"
    "name = socket.gethostname().encode()\n"
    "while True:\n"
    "    data, peer = s.recvfrom(65535)\n"
    "    s.sendto(name + b':' + data, peer)\n"
)


def stack_text(port: int, replicas: int) -> str:
    script = "".join(f"        {line}\n" for line in ECHO.splitlines())
    return (
        "services:\n  echo:\n    image: orchestrator/python-base:bookworm\n    init: true\n"
        f"    command:\n      - python3\n      - -c\n      - |\n{script}"
        f"    ports: ['{port}:9000/udp']\n    stop_grace_period: 1s\n"
        f"    deploy:\n      replicas: {replicas}\n"
    )


class Client:
    """One client address, i.e. one flow through the relay."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.connect((host, port))

    async def name(self, attempts: int = 40) -> str:
        """The hostname of the replica that answers; asked again while no answer comes (the
        first datagrams may reach a replica that is not listening yet, or one that died)."""
        loop = asyncio.get_running_loop()
        for _ in range(attempts):
            self.sock.send(b"who")
            try:
                answer = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), 0.5)
            except TimeoutError:
                continue
            except ConnectionRefusedError:  # nobody bound yet: the refusal comes at once
                await asyncio.sleep(0.2)
                continue
            return answer.split(b":")[0].decode()
        raise AssertionError(f"no answer from {self.sock.getpeername()}")

    def close(self) -> None:
        self.sock.close()


async def until_listening(docker: Any, stack: str) -> None:
    """Until every replica's echo server answers on its own address: "running" comes before
    the Python inside binds its socket, and a flow the relay opens to a replica that is not
    listening yet is refused, so the relay moves that client on (as it should) and the turns
    the test counts would be skewed."""
    label = {"label": [f"{LABEL_STACK}={stack}"]}
    for container in await docker.containers.list(filters=label):
        networks = (await container.show())["NetworkSettings"]["Networks"]
        address = next(n["IPAddress"] for n in networks.values() if n["IPAddress"])
        probe = Client(9000, host=address)
        try:
            await probe.name(attempts=120)
        finally:
            probe.close()


def published(running: int) -> Any:
    def check(services: list[dict[str, Any]]) -> bool:
        (echo,) = services
        return echo["ports"][0]["state"] == "published" and echo["replicas_running"] == running
    return check


async def test_udp_flows_are_relayed_with_affinity_and_survive_a_replica_death(
    daemon: DaemonProcess, stack_name: str, docker: Any
) -> None:
    port = free_port()
    await daemon.deploy(stack_name, stack_text(port, 2))
    services = await daemon.poll(f"/v1/stacks/{stack_name}/services", published(2), timeout=60)
    assert services[0]["ports"][0]["protocol"] == "udp"
    await until_listening(docker, stack_name)

    clients = [Client(port) for _ in range(4)]
    try:
        names = [await c.name() for c in clients]
        assert len(set(names)) == 2, f"new flows take turns over both replicas: {names}"
        for client, name in zip(clients, names):
            assert [await client.name() for _ in range(3)] == [name] * 3, "a flow stays on its replica"

        victim = names[0]
        container = await docker.containers.get(victim)  # the hostname is the container's short id
        await container.kill()
        answered = [await c.name() for c in clients]
        assert victim not in answered, f"the dead replica's clients moved on: {answered}"
    finally:
        for client in clients:
            client.close()
