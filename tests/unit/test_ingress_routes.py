"""IngressRoutes' published ports on real loopback sockets: a port another program holds is
shown unavailable, said once and retried with backoff; a deploy's claim is kept until a pass
serves it, and released when the deploy fails."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from orchestrator.publishing.events import Event
from orchestrator.ingress.proxy import Ingress, IngressError
from orchestrator.ingress.routes import IngressRoutes
from orchestrator.model.spec import PortSpec, ServiceSpec, StackSpec

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def stack(*published: int) -> StackSpec:
    ports = tuple(PortSpec(target=80, published=p) for p in published)
    return StackSpec("app", {"web": ServiceSpec(name="web", image="orchestrator-test/busybox", ports=ports)})


@pytest.fixture
def held() -> Iterator[socket.socket]:
    """A port on 127.0.0.1 that another program listens on."""
    sock = socket.socket()
    sock.bind((LOOPBACK, 0))
    sock.listen()
    try:
        yield sock
    finally:
        sock.close()


@pytest.fixture
async def routes() -> AsyncIterator[tuple[IngressRoutes, list[Event]]]:
    published: list[Event] = []
    routes = IngressRoutes(Ingress(LOOPBACK), emit=published.append)
    try:
        yield routes, published
    finally:
        await routes.close()


def bindable(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


async def test_a_port_held_by_another_program_is_unavailable_said_once_and_retried(
    routes: tuple[IngressRoutes, list[Event]], held: socket.socket
) -> None:
    router, published = routes
    port = held.getsockname()[1]
    await router.update("app", stack(port), [])
    state, error = router.port_state((port, "tcp"))
    assert state == "unavailable" and f"{LOOPBACK}:{port}/tcp: address already in use" in error
    assert [(e.type, e.service) for e in published] == [("service.port_unavailable", "web")]
    retry_at = router.retry_at("app")
    assert retry_at is not None and retry_at > time.time()

    await router.update("app", stack(port), [])  # a pass before the retry is due: no new word
    assert len(published) == 1 and router.retry_at("app") == retry_at

    held.close()  # the other program lets go
    await asyncio.sleep(max(0.0, retry_at - time.time()) + 0.01)
    await router.update("app", stack(port), [])
    assert router.port_state((port, "tcp")) == ("published", "")
    assert published[-1].type == "service.port_published" and str(port) in (published[-1].reason or "")
    assert router.retry_at("app") is None
    _, writer = await asyncio.open_connection(LOOPBACK, port)  # the daemon listens now
    writer.close()


async def test_a_claimed_port_outlives_a_pass_that_planned_from_the_old_spec(
    routes: tuple[IngressRoutes, list[Event]],
) -> None:
    router, _ = routes
    port = free_port()
    assert await router.claim("app", (port, "tcp"))
    await router.update("app", stack(), [])  # began before the deploy was saved
    assert router.port_state((port, "tcp"))[0] == "published"
    await router.update("app", stack(port), [])  # the deploy's spec: the claim is served
    await router.update("app", stack(), [])  # a later deploy without the port
    assert router.port_state((port, "tcp"))[0] == "pending" and bindable(port)


async def test_a_failed_deploy_releases_what_it_claimed(routes: tuple[IngressRoutes, list[Event]]) -> None:
    router, _ = routes
    port, already = free_port(), free_port()
    await router.update("app", stack(already), [])
    assert not await router.claim("app", (already, "tcp")), "listened on already: not claimed again"
    assert await router.claim("app", (port, "tcp"))
    await router.release("app", [(port, "tcp")])
    assert bindable(port) and router.port_state((already, "tcp"))[0] == "published"


async def test_a_removed_stack_closes_its_claims_too(routes: tuple[IngressRoutes, list[Event]]) -> None:
    router, _ = routes
    port = free_port()
    await router.claim("app", (port, "tcp"))
    await router.update("app", None, [])
    assert bindable(port) and router.retry_at("app") is None


async def test_a_claim_of_a_port_in_use_is_refused(
    routes: tuple[IngressRoutes, list[Event]], held: socket.socket
) -> None:
    router, published = routes
    with pytest.raises(IngressError, match="address already in use"):
        await router.claim("app", (held.getsockname()[1], "tcp"))
    assert published == [] and router.retry_at("app") is None
