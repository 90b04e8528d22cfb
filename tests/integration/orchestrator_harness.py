"""An orchestrator running in the test's own event loop: the real reconciler, executor, engine
gateway and event intake, with the published messages collected in a list instead of Redis.

Tests deploy stack files given as YAML text and wait on conditions over the engine's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator import metrics
from orchestrator.daemon import build_loop
from orchestrator.loop.controller import Controller
from orchestrator.engine import Engine
import jsonschema

from orchestrator.publishing.events import Event, load_schema
from orchestrator.ingress.routes import IngressRoutes
from orchestrator.loop.intake import EventIntake
from orchestrator.model.observed import ContainerState
from orchestrator.loop.reconciler import Reconciler
from orchestrator.settings import Settings
from orchestrator.stackfile import load_stack_text
from orchestrator.loop.store import Store


@dataclass
class Running:
    engine: Engine
    reconciler: Reconciler
    controller: Controller
    events: list[dict[str, Any]] = field(default_factory=list)

    async def deploy(self, stack: str, yaml_text: str, base_dir: Path, env: dict[str, str] | None = None) -> None:
        spec = load_stack_text([("stack.yml", yaml_text)], base_dir, env=env or {}, name=stack)
        await self.controller.deploy(spec)

    async def containers(self, stack: str) -> list[ContainerState]:
        return await self.engine.list_containers(stack)

    async def running(self, stack: str, service: str) -> list[ContainerState]:
        return sorted(
            (c for c in await self.containers(stack) if c.key.service == service and c.status == "running"),
            key=lambda c: c.key.slot,
        )

    async def wait_for(self, condition: Callable[[], Any], timeout: float = 30.0, what: str = "") -> Any:
        """Poll an async condition until it returns something truthy."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = await condition()
            if last:
                return last
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}: last={last!r}")

    async def wait_running(self, stack: str, service: str, count: int, timeout: float = 30.0) -> list[ContainerState]:
        async def ok() -> list[ContainerState] | None:
            found = await self.running(stack, service)
            return found if len(found) == count else None

        return await self.wait_for(ok, timeout, f"{count} running replicas of {stack}_{service}")

    def task_events(self, stack: str, to: str | None = None) -> list[dict[str, Any]]:
        return [
            e for e in self.events
            if e["type"] == "task.state" and e.get("stack") == stack and (to is None or e["to"] == to)
        ]


def engine_calls() -> dict[str, float]:
    """The container requests this process's daemon parts sent the engine so far, by kind
    (`orchestrator_engine_calls_total`; a test's own client is not counted)."""
    kinds = ("list", "slot_list", "inspect", "create", "connect", "start", "stop", "remove")
    return {k: metrics.REGISTRY.get_sample_value("orchestrator_engine_calls_total", {"call": k}) or 0.0 for k in kinds}


@contextlib.asynccontextmanager
async def running_orchestrator(
    state_dir: Path, routes: IngressRoutes | None = None, **overrides: Any
) -> AsyncIterator[Running]:
    """Run the reconciler and the event intake of a daemon (no HTTP, no Redis); with `routes`,
    the ingress too."""
    settings = Settings.from_env({}, state_dir=str(state_dir), **overrides)
    events: list[dict[str, Any]] = []

    def emit(event: Event) -> None:
        message = event.message(len(events) + 1, time.time())
        validate_message(message)
        events.append(message)

    engine = await Engine.connect(None)
    loop = build_loop(engine, Store(state_dir), settings, emit, routes=routes)
    tasks = [
        asyncio.create_task(loop.reconciler.run(), name="reconciler"),
        asyncio.create_task(loop.reconciler.follow(EventIntake(engine)), name="intake"),
    ]
    loop.removals.resume()
    try:
        yield Running(engine, loop.reconciler, loop.controller, events)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await loop.close()
        if routes is not None:
            await routes.close()
        await engine.close()


_VALIDATOR = jsonschema.Draft202012Validator(load_schema())


def validate_message(message: dict[str, Any]) -> None:
    """Every message the daemon publishes must match docs/events.md's schema."""
    _VALIDATOR.validate(message)
