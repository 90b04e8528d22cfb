"""swarm/supervision.py: Swarm's restarts, give-ups and replica counts read from its task list."""

from __future__ import annotations

from typing import Any

from orchestrator.model.observed import SlotKey
from orchestrator.swarm.observed import ServiceRef, TaskSeen
from orchestrator.swarm.supervision import Supervision

REF = ServiceRef("svc1", "s", "web")


def service(replicas: int = 1, **policy: Any) -> dict[str, Any]:
    return {"Spec": {"Mode": {"Replicated": {"Replicas": replicas}},
                     "TaskTemplate": {"RestartPolicy": policy or {"Condition": "any"}}}}


def task(task_id: str, state: str, at: float, desired: str = "running", slot: int = 1,
         exit_code: int | None = None) -> TaskSeen:
    return TaskSeen(id=task_id, key=SlotKey("s", "web", slot), node="n1", swarm_state=state, desired_state=desired,
                    timestamp=at, created_at=at, exit_code=exit_code)


def types(messages: list[Any]) -> list[tuple[Any, ...]]:
    return [(m.type, m.slot, m.reason, m.delay_s, m.exit_code) for m in messages]


def test_a_new_task_after_a_failure_is_a_restart_with_the_policys_delay() -> None:
    watch = Supervision()
    policy = {"Condition": "on-failure", "Delay": 2_000_000_000}
    tasks = [task("a", "failed", 1, "shutdown", exit_code=1), task("b", "pending", 2, "ready")]
    restarts = [m for m in watch.messages({"svc1": service(**policy)}, {"svc1": REF}, tasks, {"b"})
                if m.type.startswith("task.")]
    assert types(restarts) == [("task.restart_scheduled", 1, "on-failure", 2.0, 1)]
    # Told once: the next relist knows the task.
    assert not [m for m in watch.messages({"svc1": service(**policy)}, {"svc1": REF}, tasks, set())
                if m.type.startswith("task.")]


def test_no_restart_for_what_the_policy_does_not_restart_or_an_update() -> None:
    watch = Supervision()
    completed = [task("a", "complete", 1, "shutdown", exit_code=0), task("b", "pending", 2)]
    assert not [m for m in watch.messages({"svc1": service(Condition="on-failure")}, {"svc1": REF}, completed, {"b"})
                if m.type.startswith("task.")]
    updated = [task("a", "shutdown", 1, "shutdown"), task("b", "pending", 2)]
    assert not [m for m in watch.messages({"svc1": service()}, {"svc1": REF}, updated, {"b"})
                if m.type.startswith("task.")]


def test_a_failed_slot_without_a_next_task_gave_up_once() -> None:
    watch = Supervision()
    policy = {"Condition": "on-failure", "MaxAttempts": 2, "Window": 60_000_000_000}
    tasks = [task("a", "failed", 1, "shutdown", exit_code=3)]
    first = [m for m in watch.messages({"svc1": service(**policy)}, {"svc1": REF}, tasks, set()) if m.type.startswith("task.")]
    assert types(first) == [("task.gave_up", 1, "2 attempts within 60s", None, 3)]
    assert not [m for m in watch.messages({"svc1": service(**policy)}, {"svc1": REF}, tasks, set())
                if m.type.startswith("task.")]
    # Condition none: the slot is done, not given up.
    none = Supervision().messages({"svc1": service(Condition="none")}, {"svc1": REF}, tasks, set())
    assert not [m for m in none if m.type.startswith("task.")]


def test_the_running_count_is_told_when_it_moves() -> None:
    watch = Supervision()
    services, refs = {"svc1": service(replicas=2)}, {"svc1": REF}
    one = [task("a", "running", 1), task("b", "pending", 1, slot=2)]
    two = [task("a", "running", 1), task("b", "running", 1, slot=2)]
    told = [watch.messages(services, refs, tasks, set()) for tasks in (one, one, two)]
    assert [[(m.type, m.running, m.replicas) for m in relist] for relist in told] == [
        [("service.degraded", 1, 2)], [], [("service.converged", 2, 2)]]
    assert told[0][0].reason == "1/2 replicas running"
    job = ServiceRef("svc2", "s", "migrate", "replicated-job")
    assert Supervision().messages({"svc2": service()}, {"svc2": job}, [], set()) == []
