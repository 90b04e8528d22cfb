"""The event intake on the real engine: Resync first, then our containers' events; a dropped
connection gives Disconnected → Resync → the missed events (replayed, without repeats)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from pathlib import Path

import pytest

from orchestrator.engine import Engine
from orchestrator.loop.intake import ContainerEvent, Disconnected, EventIntake, IntakeItem, Resync
from orchestrator.labels import spec_hash
from orchestrator.model.observed import ContainerState, SlotKey
from orchestrator.model.spec import ServiceSpec, StackSpec
from tests.integration.conftest import BUSYBOX
from tests.integration.engine.engine_proxy import EngineProxy
from tests.integration.engine_restart import restart_engine, restarts_engine

pytestmark = pytest.mark.integration


@pytest.fixture
def stack(default_stack: StackSpec) -> StackSpec:
    return default_stack


async def run_exiting(engine: Engine, stack: StackSpec, service: str, code: int, tmp_path: Path, slot: int = 1) -> ContainerState:
    spec = ServiceSpec(name=service, image=BUSYBOX, command=("sh", "-c", f"exit {code}"))
    created = await engine.create_task(stack, spec, SlotKey(stack.name, service, slot), spec_hash(spec), tmp_path)
    await engine.start(created.id)
    return created


async def take_until(
    items: AsyncIterator[IntakeItem], done: Callable[[IntakeItem], bool], timeout: float = 30
) -> list[IntakeItem]:
    taken: list[IntakeItem] = []
    async with asyncio.timeout(timeout):
        async for item in items:
            taken.append(item)
            if done(item):
                return taken
    raise AssertionError(f"intake ended early after {taken}")


def died(container_id: str) -> Callable[[IntakeItem], bool]:
    return lambda item: isinstance(item, ContainerEvent) and item.container_id == container_id and item.action == "die"


def events_of(items: list[IntakeItem], container_id: str) -> list[tuple[str, int | None]]:
    return [(i.action, i.exit_code) for i in items if isinstance(i, ContainerEvent) and i.container_id == container_id]


async def test_resync_first_then_start_and_die_with_exit_codes(engine: Engine, stack: StackSpec, tmp_path: Path) -> None:
    # A short idle ping: the quiet stream is checked (and kept) several times before events come.
    intake = EventIntake(engine, stack=stack.name, idle_ping=0.1)
    async with aclosing(intake.stream()) as items:
        assert await anext(items) == Resync("connected")

        async def later() -> tuple[ContainerState, ContainerState]:
            await asyncio.sleep(0.5)
            return (await run_exiting(engine, stack, "ok", 0, tmp_path), await run_exiting(engine, stack, "bad", 4, tmp_path))

        starter = asyncio.create_task(later())
        seen = await take_until(items, lambda item: isinstance(item, ContainerEvent) and item.action == "die")
        ok, bad = await starter
        seen += [] if any(died(bad.id)(i) for i in seen) else await take_until(items, died(bad.id))
        seen += [] if any(died(ok.id)(i) for i in seen) else await take_until(items, died(ok.id))
    assert events_of(seen, ok.id) == [("create", None), ("start", None), ("die", 0)]
    assert events_of(seen, bad.id) == [("create", None), ("start", None), ("die", 4)]
    assert all(isinstance(i, ContainerEvent) for i in seen)  # no Disconnected while quiet
    first = next(i for i in seen if isinstance(i, ContainerEvent))
    assert (first.stack, first.slot) == (stack.name, 1)


async def test_intake_survives_a_dropped_connection(engine: Engine, stack: StackSpec, tmp_path: Path) -> None:
    proxy = EngineProxy()
    proxied = await Engine.connect(await proxy.start())
    intake = EventIntake(proxied, stack=stack.name, reconnect_backoff=(0.05, 0.1, 0.2))
    try:
        async with aclosing(intake.stream()) as items:
            seen = [await anext(items)]
            before = await run_exiting(engine, stack, "before", 0, tmp_path)
            seen += await take_until(items, died(before.id))

            proxy.blocked = True  # the engine "goes away": the stream drops, reconnects fail
            proxy.cut()
            outage = await take_until(items, lambda item: isinstance(item, Disconnected))
            assert all(isinstance(i, ContainerEvent) for i in outage[:-1])
            during = await run_exiting(engine, stack, "during", 5, tmp_path)
            async with asyncio.timeout(30):
                while not [s for s in await engine.list_containers(stack.name) if s.id == during.id and s.status == "exited"]:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # several reconnect attempts fail meanwhile
            proxy.blocked = False

            back = await take_until(items, lambda item: isinstance(item, Resync))
            assert back == [Resync("reconnected")]  # one Disconnected per outage, not per retry
            seen += outage + back
            seen += await take_until(items, died(during.id))  # missed while away: replayed
            after = await run_exiting(engine, stack, "after", 6, tmp_path)
            seen += await take_until(items, died(after.id))
    finally:
        await proxied.close()
        await proxy.close()

    assert events_of(seen, before.id) == [("create", None), ("start", None), ("die", 0)]  # no replayed repeats
    assert events_of(seen, during.id) == [("create", None), ("start", None), ("die", 5)]
    assert events_of(seen, after.id) == [("create", None), ("start", None), ("die", 6)]
    assert [type(i).__name__ for i in seen if not isinstance(i, ContainerEvent)] == ["Resync", "Disconnected", "Resync"]
    keys = [(i.time_ns, i.container_id, i.action) for i in seen if isinstance(i, ContainerEvent)]
    assert len(keys) == len(set(keys))


# --------------------------------------------------------------------------- engine restart

@pytest.mark.engine_restart
@restarts_engine
@pytest.mark.timeout(180)
async def test_intake_survives_an_engine_restart(engine: Engine, stack: StackSpec, tmp_path: Path) -> None:
    intake = EventIntake(engine, stack=stack.name, reconnect_backoff=(0.1, 0.5, 1))
    async with aclosing(intake.stream()) as items:
        assert await anext(items) == Resync("connected")
        await asyncio.to_thread(restart_engine)
        await take_until(items, lambda item: isinstance(item, Disconnected), timeout=60)
        await take_until(items, lambda item: isinstance(item, Resync), timeout=90)
        await engine.ensure_network(stack.name, stack.networks["default"])
        after = await run_exiting(engine, stack, "after", 2, tmp_path)
        seen = await take_until(items, died(after.id))
    assert events_of(seen, after.id)[-1] == ("die", 2)
