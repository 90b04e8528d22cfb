"""swarm/jobs.py: a job's progress from its service and tasks as Swarm lists them."""

from __future__ import annotations

from typing import Any

from orchestrator.model.observed import SlotKey
from orchestrator.swarm.jobs import job_progress
from orchestrator.swarm.observed import TaskSeen


def service(mode: dict[str, Any], iteration: int = 0, restart: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"Spec": {"Mode": mode, "TaskTemplate": {"RestartPolicy": restart or {"Condition": "any"}}},
            "JobStatus": {"JobIteration": {"Index": iteration} if iteration else {}}}


def task(slot: int, state: str, at: float, iteration: int = 0, exit_code: int | None = None) -> TaskSeen:
    return TaskSeen(id=f"t{slot}-{at}", key=SlotKey("s", "job", slot), node="n1", swarm_state=state,
                    desired_state="complete", timestamp=at, created_at=at, exit_code=exit_code, job_iteration=iteration)


REPLICATED = {"ReplicatedJob": {"MaxConcurrent": 2, "TotalCompletions": 3}}


def test_completions_of_the_current_run_count_per_slot() -> None:
    tasks = [task(1, "complete", 1), task(2, "running", 2), task(3, "failed", 3, exit_code=1), task(3, "complete", 4),
             task(1, "complete", 0.5, iteration=0)]
    progress = job_progress(service(REPLICATED), tasks)
    assert (progress.wanted, progress.completed, progress.running, progress.given_up) == (3, 2, 1, 0)


def test_an_older_run_does_not_count() -> None:
    old = [task(1, "complete", 1), task(2, "complete", 1), task(3, "complete", 1)]
    progress = job_progress(service(REPLICATED, iteration=1), [*old, task(1, "running", 2, iteration=1)])
    assert (progress.completed, progress.running) == (0, 1)


def test_a_failure_is_final_only_when_the_restart_policy_says_so() -> None:
    failed = [task(1, "failed", 1, exit_code=3)]
    assert job_progress(service(REPLICATED, restart={"Condition": "on-failure"}), failed).given_up == 0
    final = job_progress(service(REPLICATED, restart={"Condition": "none"}), failed)
    assert (final.given_up, final.given_up_reason) == (1, "exit 3")
    attempts = {"Condition": "on-failure", "MaxAttempts": 1}
    assert job_progress(service(REPLICATED, restart=attempts), failed).given_up == 0  # one restart left
    twice = [*failed, task(1, "failed", 2, exit_code=3)]
    assert job_progress(service(REPLICATED, restart=attempts), twice).given_up == 1


def test_a_global_job_wants_one_completion_a_node_swarm_placed_it_on() -> None:
    assert job_progress(service({"GlobalJob": {}}), []).wanted == 0
    tasks = [task(1, "complete", 1), task(2, "running", 1)]
    progress = job_progress(service({"GlobalJob": {}}), tasks)
    assert (progress.wanted, progress.completed) == (2, 1)
