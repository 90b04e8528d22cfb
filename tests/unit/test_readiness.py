"""PortReadiness on real loopback sockets: a replica without a healthcheck counts as starting
until its ingress port accepts, and only within the window after its start."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from orchestrator.model.observed import ContainerState, SlotKey
from orchestrator.model.spec import PortSpec, ServiceSpec, StackSpec
from orchestrator.ingress.readiness import PortReadiness

LOOPBACK = "127.0.0.1"


@pytest.fixture(name="listening")
def _listening() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.fixture(name="closed")
def _closed() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def stack(target: int, published: int | None = 8080) -> StackSpec:
    ports = (PortSpec(target=target, published=published),)
    return StackSpec("app", {"web": ServiceSpec(name="web", image="demo", ports=ports)})


def replica(n: int, started: float, health: str | None = None) -> ContainerState:
    return ContainerState(id=f"c{n}", name=f"app-web-{n}", key=SlotKey("app", "web", n), spec_hash="h",
                          task_id=f"t{n}", created_at=started, status="running", health=health,  # type: ignore[arg-type]
                          started_at=started, address=LOOPBACK)


async def test_a_replica_whose_port_refuses_is_held_back_until_it_accepts(listening: int, closed: int) -> None:
    readiness, now = PortReadiness(window=30), time.time()
    held, again = await readiness.hold(stack(closed), [replica(1, now - 1)], now)
    assert held["c1"].health == "starting" and again == pytest.approx(now + 0.25)
    held, again = await readiness.hold(stack(listening), [replica(1, now - 1)], now)
    assert held == {} and again is None
    held, _ = await readiness.hold(stack(closed), [replica(1, now - 1)], now)
    assert held == {}, "a replica that accepted once is not probed again"


async def test_no_probe_outside_the_window_with_a_healthcheck_or_without_ingress_ports(closed: int) -> None:
    readiness, now = PortReadiness(window=30), time.time()
    assert (await readiness.hold(stack(closed), [replica(1, now - 31)], now))[0] == {}
    assert (await readiness.hold(stack(closed), [replica(2, now, health="starting")], now))[0] == {}
    assert (await readiness.hold(stack(closed, published=None), [replica(3, now)], now))[0] == {}
    assert (await PortReadiness(window=0).hold(stack(closed), [replica(4, now)], now))[0] == {}
    udp = StackSpec("app", {"web": ServiceSpec(name="web", image="demo",
                                               ports=(PortSpec(target=closed, published=53, protocol="udp"),))})
    assert (await readiness.hold(udp, [replica(5, now)], now))[0] == {}
