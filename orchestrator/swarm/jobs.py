"""Jobs on Swarm (`deploy.mode: replicated-job | global-job`): how far a job's current run is,
for `services` and so for `deploy --wait`, which ends when the jobs are done. Pure.

A job's tasks run to completion and are not replaced once complete. Swarm numbers each run of
the job (`JobStatus.JobIteration` of the service, `JobIteration` of each task; a changed job runs
again), so only the tasks of the current run count. Per slot (a replicated job's task number, a
global job's node) the newest task tells: `complete` is one completion; `failed`, `rejected` or
`orphaned` is final when the restart policy will not try again (`condition: none`, or its
`max_attempts` used up, counted in Swarm's task history of the slot), which `deploy --wait`
reports instead of waiting for ever. Wanted: `replicas` completions for a replicated job; for a
global job one a node Swarm gave it a task on (so nothing is wanted before Swarm placed it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.model.observed import SlotKey
from orchestrator.swarm.observed import TaskSeen, service_replicas

_FAILED = frozenset({"failed", "rejected", "orphaned"})


@dataclass(frozen=True, slots=True)
class JobProgress:
    wanted: int
    completed: int
    running: int
    given_up: int = 0
    given_up_reason: str = ""


def job_progress(service: Mapping[str, Any], tasks: Sequence[TaskSeen]) -> JobProgress:
    """`tasks`: the service's tasks as listed (any run)."""
    spec = service.get("Spec") or {}
    status = service.get("JobStatus")
    # Swarm leaves a 0 out: {"JobIteration": {}} is run 0.
    iteration = int((status.get("JobIteration") or {}).get("Index") or 0) if isinstance(status, dict) else None
    current = [t for t in tasks if iteration is None or t.job_iteration == iteration]
    by_slot: dict[SlotKey, list[TaskSeen]] = {}
    for task in current:
        by_slot.setdefault(task.key, []).append(task)
    policy = (spec.get("TaskTemplate") or {}).get("RestartPolicy") or {}
    completed = given_up = 0
    reason = ""
    for history in by_slot.values():
        newest = max(history, key=lambda t: t.created_at)
        if newest.swarm_state == "complete":
            completed += 1
        elif newest.swarm_state in _FAILED and _final(policy, sum(t.swarm_state in _FAILED for t in history)):
            given_up += 1
            reason = newest.error or (f"exit {newest.exit_code}" if newest.exit_code is not None else newest.swarm_state)
    replicas = service_replicas(service)
    return JobProgress(
        wanted=len(by_slot) if replicas is None else replicas,
        completed=completed,
        running=sum(1 for t in current if t.swarm_state == "running"),
        given_up=given_up,
        given_up_reason=reason,
    )


def _final(policy: Mapping[str, Any], failures: int) -> bool:
    """Swarm will not start the slot again after `failures` failed tasks."""
    if policy.get("Condition") == "none":
        return True
    attempts = int(policy.get("MaxAttempts") or 0)
    return 0 < attempts < failures
