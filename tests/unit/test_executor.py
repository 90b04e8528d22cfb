"""The executor contains every failure of an action (issue 12): a create or start that raises
is a rejected task retried through the restart book's backoff, a failed removal holds its slot
for a backoff, and no failure is planned again at once. Against a stand-in engine that builds
the real create request (so a value the request builder cannot take raises as it would)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from orchestrator import labels
from orchestrator.engine import containers
from orchestrator.errors import EngineError
from orchestrator.loop.executor import REASON_LIMIT, Executor, exception_reason
from orchestrator.model.observed import ContainerState, SlotKey, TaskState
from orchestrator.model.plan import CreateTask, PrepareStandby, RemoveContainer, StopTask
from orchestrator.model.spec import Resources, ServiceSpec, StackSpec
from orchestrator.model.plan import (
    REASON_EMPTY,
    REASON_HISTORY,
    REASON_RESTART,
    REASON_SCALE_DOWN,
    REASON_UNHEALTHY,
    REASON_UPDATE,
)
from orchestrator.planning.restarts import RestartBook
from orchestrator.loop.store import StackRecord
from orchestrator.loop.tracker import TaskTracker, Transition

KEY = SlotKey("app", "web", 1)


def record(**resources: Any) -> StackRecord:
    web = ServiceSpec(name="web", image="orchestrator-test/busybox", resources=Resources(**resources))
    return StackRecord(StackSpec("app", {"web": web}))


@dataclass
class StandInEngine:
    """The calls the executor makes, answered in memory; `fail` makes one of them raise."""

    files_dir: Path
    fail: dict[str, Exception] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)
    called: asyncio.Event = field(default_factory=asyncio.Event)

    def _call(self, name: str) -> None:
        self.calls.append(name)
        self.called.set()
        if name in self.fail:
            raise self.fail[name]

    async def ensure_image(self, service: ServiceSpec, stack: str | None = None) -> None:
        self._call("ensure_image")

    async def create_task(
        self, stack: StackSpec, service: ServiceSpec, key: SlotKey, spec_hash: str, files_dir: Path,
        task_id: str | None = None, standby: bool = False,
    ) -> ContainerState:  # fmt: skip
        self._call("create")
        created_ns = time.time_ns()
        request = containers.create_request(
            stack, service, key, spec_hash=spec_hash, task_id=task_id or "t1",
            created_ns=created_ns, files_dir=files_dir, standby=standby,
        )  # fmt: skip
        return ContainerState(
            id="c" * 64, name=request.name, key=key, spec_hash=spec_hash, task_id=task_id or "t1",
            created_at=created_ns / 10**9, status="created", standby=standby,
        )  # fmt: skip

    async def start(self, container_id: str) -> None:
        self._call("start")

    async def stop(self, container_id: str, timeout: float) -> int | None:
        self._call("stop")
        return 0

    async def remove(self, container_id: str) -> None:
        self._call("remove")


@dataclass
class Harness:
    engine: StandInEngine
    executor: Executor
    book: RestartBook
    tracker: TaskTracker
    transitions: list[Transition]
    done: asyncio.Queue[SlotKey]

    async def run(self, rec: StackRecord, *actions: Any) -> None:
        """Submit the actions of one slot and wait until its task has ended."""
        self.executor.submit(rec, actions)
        async with asyncio.timeout(30):
            await self.done.get()


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return make_harness(tmp_path, RestartBook())


def make_harness(tmp_path: Path, book: RestartBook) -> Harness:
    transitions: list[Transition] = []
    done: asyncio.Queue[SlotKey] = asyncio.Queue()
    tracker = TaskTracker(transitions.append)
    engine = StandInEngine(tmp_path)

    async def save_shutdown_marks() -> None:  # what the saved tracker would say
        engine.calls.append(f"save {sorted(tracker.stopped_on_purpose())}")

    executor = Executor(
        engine, tracker, book, concurrency=4,  # type: ignore[arg-type]
        files_dir=lambda _stack: tmp_path, on_done=done.put_nowait,
        save_shutdown_marks=save_shutdown_marks,
    )  # fmt: skip
    return Harness(engine, executor, book, tracker, transitions, done)


async def test_a_create_request_that_cannot_be_built_is_a_rejected_task_retried_with_backoff(
    harness: Harness,
) -> None:
    """cpus 1e308 in nanocpus is infinity: building the request raises OverflowError. Before,
    the slot was free again at once and the next pass created again: ~20 tracebacks a second."""
    rec = record(cpus_limit=1e308)
    policy, digest = rec.spec.services["web"].restart_policy, labels.spec_hash(rec.spec.services["web"])
    attempts, waits = [], []
    with capture_logs() as logs:
        await harness.run(rec, CreateTask(KEY, REASON_EMPTY))
        for _ in range(4):  # each retry, as the planner plans it (without waiting for it here)
            failed_at = harness.book.rejected_at(KEY, digest)
            decision = harness.book.decide(KEY, digest, policy, None, time.time())
            assert failed_at is not None and decision.not_before is not None
            attempts.append(decision.attempt)
            waits.append(decision.not_before - failed_at)
            await harness.run(rec, CreateTask(KEY, REASON_RESTART, decision.attempt))

    rejected = [t for t in harness.transitions if t.to_state is TaskState.REJECTED]
    assert len(rejected) == 5 and all(t.from_state is TaskState.NEW for t in rejected)
    assert rejected[0].reason.startswith("internal error: OverflowError: ")
    assert harness.tracker.rejections("app")[KEY].reason == rejected[-1].reason  # the ps row
    # The book spaces the retries: at once, then 1 s, 2 s, 4 s after each failure.
    assert attempts == [1, 2, 3, 4]
    assert waits == pytest.approx([0.0, 1.0, 2.0, 4.0])
    with_traceback = [e for e in logs if e.get("exc_info")]
    assert len(with_traceback) == 1 and with_traceback[0]["event"] == "task_rejected"
    assert sum(e["event"] == "task_rejected" for e in logs) == 5


async def test_a_start_that_raises_is_rejected_and_its_retry_waits(harness: Harness) -> None:
    """A container whose start never reached the engine carries no error: the planner removes
    it as never started and fills the slot anew, so the book must hold the rejection."""
    harness.engine.fail["start"] = RuntimeError("session closed")
    rec = record()
    await harness.run(rec, CreateTask(KEY, REASON_RESTART, attempt=3))
    last = harness.transitions[-1]
    assert (last.from_state, last.to_state) == (TaskState.STARTING, TaskState.REJECTED)
    assert last.reason == "internal error: RuntimeError: session closed"
    service = rec.spec.services["web"]
    decision = harness.book.decide(KEY, labels.spec_hash(service), service.restart_policy, None, time.time())
    assert not decision.due(time.time()) and decision.attempt == 4
    assert harness.book.to_json()["slots"][0]["total"] == 1, "the attempt counted once, at its create"


async def test_an_engine_refusal_keeps_the_engines_words(harness: Harness) -> None:
    harness.engine.fail["create"] = EngineError(400, "invalid NanoCPUs value")
    await harness.run(record(), CreateTask(KEY, REASON_EMPTY))
    assert harness.transitions[-1].reason == "invalid NanoCPUs value"


async def test_a_failed_removal_holds_its_slot_instead_of_being_planned_again_at_once(
    harness: Harness,
) -> None:
    harness.engine.fail["remove"] = EngineError(500, "driver overlay2 failed to remove root filesystem: busy")
    harness.executor.submit(record(), [RemoveContainer(KEY, "c" * 64, REASON_SCALE_DOWN, standby=True)])
    async with asyncio.timeout(30):
        await harness.engine.called.wait()
    for _ in range(5):
        await asyncio.sleep(0)
    assert KEY in harness.executor.busy(), "the slot is held for its backoff"
    assert harness.done.empty(), "no pass is asked for until the backoff is over"
    await harness.executor.cancel()


async def test_failed_removals_back_off_per_slot_up_to_the_cap(tmp_path: Path) -> None:
    harness = make_harness(tmp_path, RestartBook(backoff_base=0.01, backoff_cap=0.04))
    harness.engine.fail["remove"] = OSError("no space left on device")
    action = RemoveContainer(KEY, "c" * 64, REASON_SCALE_DOWN, standby=True)
    with capture_logs() as logs:
        for _ in range(4):
            await harness.run(record(), action)
        harness.engine.fail.clear()
        await harness.run(record(), action)  # succeeds: the count starts over
        harness.engine.fail["remove"] = OSError("no space left on device")
        await harness.run(record(), action)
    failed = [e for e in logs if e["event"] == "action_failed"]
    assert [e["retry_in_s"] for e in failed] == [0.01, 0.02, 0.04, 0.04, 0.01]
    assert [bool(e.get("exc_info")) for e in failed] == [True, False, False, False, False]
    assert failed[0]["reason"] == "internal error: OSError: no space left on device"


async def test_a_standby_that_cannot_be_prepared_is_not_asked_for_again_until_a_deploy(
    harness: Harness,
) -> None:
    rec = record(cpus_limit=float("nan"))  # round(nan) raises ValueError
    await harness.run(rec, PrepareStandby(KEY))
    harness.executor.submit(rec, [PrepareStandby(KEY)])
    assert KEY not in harness.executor.busy(), "a converged pass asks again: not taken up"
    harness.executor.forget_images()
    await harness.run(rec, PrepareStandby(KEY))
    assert harness.engine.calls.count("create") == 2


@pytest.mark.parametrize("action", [
    pytest.param(RemoveContainer(KEY, "c1", REASON_SCALE_DOWN), id="remove"),
    pytest.param(StopTask(KEY, "c1", REASON_UPDATE), id="stop"),
])
async def test_a_replica_stopped_on_purpose_is_marked_so_on_disk_before_its_stop_is_sent(
    harness: Harness, action: RemoveContainer | StopTask
) -> None:
    """Else a daemon killed once the engine has stopped it takes its exit for a failure."""
    harness.tracker.advance(KEY, "t1", TaskState.RUNNING, container_id="c1")
    await harness.run(record(), action)
    assert harness.engine.calls[:2] == ["save ['c1']", "stop"]
    assert harness.transitions[-1].to_state is TaskState.SHUTDOWN


async def test_an_unhealthy_replica_or_one_that_ended_is_stopped_without_a_mark_or_a_write(
    harness: Harness,
) -> None:
    """An unhealthy replica's stop is a failure; a dead container removed (history, a failed
    slot) ended by itself: no mark, and no write on the way of the restart that follows."""
    harness.tracker.advance(KEY, "t1", TaskState.RUNNING, container_id="c1")
    await harness.run(record(), StopTask(KEY, "c1", REASON_UNHEALTHY))
    harness.tracker.advance(KEY, "t1", TaskState.FAILED)
    await harness.run(record(), RemoveContainer(KEY, "c1", REASON_HISTORY))
    assert harness.engine.calls == ["stop", "stop", "remove"]
    assert not harness.tracker.stopped_on_purpose()


def test_a_reason_is_one_bounded_line_without_internals() -> None:
    reason = exception_reason(KeyError("x" * 10_000))
    assert len(reason) == REASON_LIMIT and reason.startswith("internal error: KeyError: ")
    assert exception_reason(ValueError("line one\nline two")) == "internal error: ValueError: line one line two"
