"""The loop (reconciler, executor, intake, commands, removal, views) over an in-memory backend
(tests/unit/fake_backend.py): deploy, a death, a rolling update, rm and adoption, each in
milliseconds. The same behaviours are proven against the real engine in tests/integration."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from orchestrator.daemon import Loop, build_loop
from orchestrator.loop import removal
from orchestrator.loop.intake import EventIntake
from orchestrator.loop.store import Store
from orchestrator.model.observed import ContainerState
from orchestrator.model.spec import StackSpec
from orchestrator.publishing.events import Event
from orchestrator.settings import Settings
from orchestrator.stackfile import load_stack_text
from tests.unit.fake_backend import FakeBackend

#: Only a bound, so that a broken loop fails instead of hanging: nothing here takes that long.
PATIENCE_S = 10.0


def stack(tmp_path: Path, replicas: int = 2, version: str = "1", name: str = "app") -> StackSpec:
    text = f"""
services:
  web:
    image: orchestrator-test/busybox
    environment: {{VERSION: "{version}"}}
    deploy:
      replicas: {replicas}
      update_config: {{monitor: 0s}}
"""
    return load_stack_text([("stack.yml", text)], tmp_path, env={}, name=name)


class Running:
    def __init__(self, backend: FakeBackend, loop: Loop, events: list[Event]) -> None:
        self.backend = backend
        self.loop = loop
        self.events = events

    def running(self, service: str = "web") -> list[ContainerState]:
        return sorted((c for c in self.backend.containers.values()
                       if c.key.service == service and c.status == "running"), key=lambda c: c.key.slot)

    async def until(self, condition: Callable[[], Any], what: str) -> Any:
        async with asyncio.timeout(PATIENCE_S):
            while not (found := condition()):
                await asyncio.sleep(0.001)
        assert found, what
        return found

    def types(self) -> list[str]:
        return [e.type for e in self.events]


@contextlib.asynccontextmanager
async def running_loop(state: Path, backend: FakeBackend | None = None) -> AsyncIterator[Running]:
    backend = backend or FakeBackend()
    events: list[Event] = []
    loop = build_loop(backend, Store(state), Settings.from_env({}, state_dir=str(state)), events.append)
    tasks = [asyncio.create_task(loop.reconciler.run()),
             asyncio.create_task(loop.reconciler.follow(EventIntake(backend)))]
    loop.removals.resume()
    try:
        yield Running(backend, loop, events)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await loop.close()


async def test_a_deploy_creates_and_starts_its_replicas(tmp_path: Path) -> None:
    async with running_loop(tmp_path) as orch:
        outcome = await orch.loop.controller.deploy(stack(tmp_path, replicas=3))
        assert outcome.result == "created"
        await orch.until(lambda: len(orch.running()) == 3, "3 running replicas")
        assert [c.key.slot for c in orch.running()] == [1, 2, 3]
        await orch.until(lambda: "service.converged" in orch.types(), "converged")
        (view,) = orch.loop.controller.stacks()
        assert (view.name, view.replicas_desired) == ("app", 3)


async def test_a_replica_that_dies_is_replaced_in_its_slot(tmp_path: Path) -> None:
    async with running_loop(tmp_path) as orch:
        await orch.loop.controller.deploy(stack(tmp_path, replicas=2))
        first, _ = await orch.until(lambda: len(orch.running()) == 2 and orch.running(), "2 running")
        orch.backend.die(first.id, 3)
        await orch.until(
            lambda: any(c.key.slot == 1 and c.id != first.id for c in orch.running()), "a new replica in slot 1"
        )
        failed = [e for e in orch.events if e.type == "task.state" and e.to_state == "failed"]
        assert [(e.slot, e.exit_code) for e in failed] == [(1, 3)]


async def test_a_changed_spec_is_rolled_out_replica_by_replica(tmp_path: Path) -> None:
    async with running_loop(tmp_path) as orch:
        await orch.loop.controller.deploy(stack(tmp_path, replicas=2, version="1"))
        old = {c.id for c in await orch.until(lambda: len(orch.running()) == 2 and orch.running(), "v1")}
        outcome = await orch.loop.controller.deploy(stack(tmp_path, replicas=2, version="2"))
        assert (outcome.result, outcome.changed_services) == ("updated", ("web",))
        await orch.until(lambda: "update.completed" in orch.types(), "the update completes")
        assert len(orch.running()) == 2 and not old & {c.id for c in orch.running()}
        (service,) = await orch.loop.controller.services("app")
        assert service.update_state == "completed"


async def test_rm_removes_every_container_then_the_record(tmp_path: Path) -> None:
    async with running_loop(tmp_path) as orch:
        await orch.loop.controller.deploy(stack(tmp_path, replicas=2))
        await orch.until(lambda: len(orch.running()) == 2, "2 running")
        outcome = await orch.loop.controller.remove("app")
        assert outcome.removed
        assert orch.backend.containers == {} and "app" not in orch.loop.desired
        assert not (tmp_path / "stacks" / "app.json").exists()
        assert orch.types()[-1] == "stack.removed"


async def test_no_pass_lists_a_stack_while_it_is_removed(tmp_path: Path) -> None:
    """The removal lists, stops and removes; a pass after each `die` and `destroy` of it
    inspected containers the engine was removing, while other stacks' passes waited (issue 18).
    The pass after the removal lists the stack whole and reports each task `removed`."""
    async with running_loop(tmp_path) as orch:
        await orch.loop.controller.deploy(stack(tmp_path, replicas=3))
        await orch.until(lambda: len(orch.backend.containers) == 6, "3 replicas and their standbys")
        await orch.until(lambda: not orch.loop.executor.busy() and orch.loop.reconciler.idle, "all quiet")
        orch.backend.lists.clear()
        outcome = await orch.loop.controller.remove("app")
        assert outcome.removed and orch.backend.containers == {}
        assert orch.backend.lists and all(slot is None for _, slot in orch.backend.lists), orch.backend.lists
        def ends() -> list[tuple[int | None, str]]:
            return sorted((e.slot, e.to_state) for e in orch.events
                          if e.type == "task.state" and e.to_state in ("shutdown", "removed"))

        wanted = [(slot, state) for slot in (1, 2, 3) for state in ("removed", "shutdown")]
        await orch.until(lambda: ends() == wanted, f"each task shutdown and removed: {ends()}")


async def test_a_restarted_loop_adopts_the_running_replicas(tmp_path: Path) -> None:
    backend = FakeBackend()
    async with running_loop(tmp_path, backend) as orch:
        await orch.loop.controller.deploy(stack(tmp_path, replicas=2))
        before = {c.id for c in await orch.until(lambda: len(orch.running()) == 2 and orch.running(), "2")}
        await orch.until(lambda: len(backend.containers) == 4, "2 replicas and their 2 standbys")
    creates = len([c for c in backend.calls if c[0] == "create"])
    async with running_loop(tmp_path, backend) as again:  # the same state dir and "engine"
        await again.until(lambda: again.loop.reconciler.passes >= 1 and "app" in again.loop.reconciler.observed,
                          "a first pass")
        await again.until(lambda: "service.converged" in again.types(), "converged again")
        assert {c.id for c in again.running()} == before
        assert len([c for c in backend.calls if c[0] == "create"]) == creates


async def test_a_deploy_builds_on_the_update_status_a_pass_wrote_while_it_awaited(tmp_path: Path) -> None:
    """The deploy awaits the backend before its write; a pass that recorded a status meanwhile
    is not overwritten (issue 14: the records had two writers)."""
    backend = FakeBackend()
    async with running_loop(tmp_path, backend) as orch:
        await orch.loop.controller.deploy(stack(tmp_path, version="1"))
        await orch.loop.controller.deploy(stack(tmp_path, version="2"))
        await orch.until(lambda: "update.completed" in orch.types(), "the update completes")
        desired = orch.loop.desired
        record = desired.get("app")
        assert record is not None and record.updates["web"].state == "completed"
        # The same spec again, while the backend holds its check: a pass marks the update
        # paused meanwhile (as a failed replica would); the deploy must keep that status
        # (and resume it, as a deploy of a paused update does), not the completed it first read.
        gate = asyncio.Event()
        real_check = backend.check_external

        async def held_check(spec: StackSpec) -> None:
            await gate.wait()
            await real_check(spec)

        backend.check_external = held_check  # type: ignore[method-assign]
        deploying = asyncio.create_task(orch.loop.controller.deploy(stack(tmp_path, version="2")))
        await asyncio.sleep(0)
        paused = replace(record.updates["web"], state="paused", reason="a test pause")
        assert desired.record_plan_updates("app", {"web": paused}, {}) is not None
        gate.set()
        await deploying
        after = desired.get("app")
        assert after is not None and after.updates["web"].state == "updating"  # resumed, not "completed"


async def test_each_connect_to_the_engine_restarts_the_health_probes(tmp_path: Path) -> None:
    """dockerd may have restarted keeping the replicas (live-restore), while the daemon ran or
    before it started; an older engine then no longer probes their health
    (engine/health_probes.py): the backend is asked to see to it, once per connect."""
    async with running_loop(tmp_path / "state") as run:
        await run.until(lambda: run.backend.probe_restarts == 1, "probes restarted at the first connect")
        for stream in list(run.backend._streams):
            stream.offer("app", None)  # the engine's event stream ends, as when dockerd stops
        await run.until(lambda: "engine.reconnected" in run.types(), "reconnected")
        await run.until(lambda: run.backend.probe_restarts == 2, "and again at the reconnect")


async def test_health_reports_the_engine_unreachable_while_a_call_went_unanswered(tmp_path: Path) -> None:
    """A deadlocked dockerd answers pings while its stops hang: the stall decides, not the ping."""
    async with running_loop(tmp_path / "state") as run:
        assert (await run.loop.controller.health()).engine
        run.backend.stalled_call = "the engine left the stop of abc unanswered (3 s ago)"
        view = await run.loop.controller.health()
        assert not view.engine and "the stop of abc" in view.engine_error
        run.backend.stalled_call = ""
        assert (await run.loop.controller.health()).engine


async def test_rm_ends_leaving_behind_a_network_the_engine_keeps_with_nothing_attached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dockerd 20.10 can leak a network's endpoint count (seen for 2 of 200 stacks removed at
    once): it refuses to remove the network for ever. The rm retries for STUCK_NETWORK_WAIT,
    then ends without it, saying so; a transient refusal is retried as any other."""
    monkeypatch.setattr(removal, "STUCK_NETWORK_WAIT", 0.6)
    async with running_loop(tmp_path) as orch:
        await orch.loop.controller.deploy(stack(tmp_path, replicas=2))
        await orch.until(lambda: len(orch.running()) == 2, "2 running")
        orch.backend.stuck_networks = {"app_default"}
        with capture_logs() as logs:
            await orch.loop.controller.remove("app")
            await orch.until(lambda: "app" not in orch.loop.desired, "the removal ended")
        assert orch.backend.containers == {} and orch.types()[-1] == "stack.removed"
        assert ("app", "app_default") in orch.backend.networks  # left, not forgotten by the engine
        refusals = [e for e in logs if e["event"] == "stack_removal_refused"]
        assert refusals and "app_default" in refusals[0]["error"]
        (left,) = [e for e in logs if e["event"] == "network_left_behind"]
        assert left["network"] == "app_default" and left["log_level"] == "warning"

        # the next deploy of the stack reuses the network; a stuck count that clears is removed
        await orch.loop.controller.deploy(stack(tmp_path, replicas=1))
        await orch.until(lambda: len(orch.running()) == 1, "1 running")
        orch.backend.stuck_networks = set()
        await orch.loop.controller.remove("app")
        await orch.until(lambda: "app" not in orch.loop.desired, "removed")
        assert ("app", "app_default") not in orch.backend.networks


async def test_a_stack_whose_pass_waits_on_the_engine_holds_up_no_other_stack(tmp_path: Path) -> None:
    """Passes over different stacks run at once: a list the engine is slow to answer for one
    stack does not keep another's replacement waiting (issue 18, 200 stacks at once)."""
    async with running_loop(tmp_path) as orch:
        await orch.loop.controller.deploy(stack(tmp_path, replicas=1, name="slow"))
        await orch.loop.controller.deploy(stack(tmp_path, replicas=1, name="quick"))
        await orch.until(lambda: len(orch.running()) == 2, "both running")
        gate = orch.backend.list_gates["slow"] = asyncio.Event()
        before = len(orch.backend.lists)
        orch.loop.reconciler.mark_dirty("slow")  # its pass now waits on the engine
        await orch.until(lambda: ("slow", None) in orch.backend.lists[before:], "the slow pass listing")
        (quick,) = [c for c in orch.running() if c.key.stack == "quick"]
        orch.backend.die(quick.id, 1)
        await orch.until(lambda: any(c.key.stack == "quick" and c.id != quick.id for c in orch.running()),
                         "quick's replica replaced while slow's pass waits")
        assert not gate.is_set()
        gate.set()
        await orch.until(lambda: orch.loop.reconciler.idle, "the slow pass ends too")
