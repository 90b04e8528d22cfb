"""What a container means as a task: engine status → our task state (DESIGN.md, Swarm's subset).

Pure; shared by the planner, the restart book and whoever reports `ps` or publishes events.
"""

from __future__ import annotations

from orchestrator.model.observed import ContainerState, TaskState

_ALIVE_STATES = {
    "created": TaskState.CREATED,
    "restarting": TaskState.STARTING,
    "paused": TaskState.RUNNING,
    "removing": TaskState.REMOVED,
}


def task_state(container: ContainerState, stopped_by_us: bool = False) -> TaskState:
    """Map what the engine reports to a task state.

    `stopped_by_us` means a deliberate shutdown (scale-down, update, rm), which ends as
    `shutdown`; a stop because the replica turned unhealthy is *not* one: it is a failure, as in
    Swarm, and the caller passes False for it.
    """
    status = container.status
    if status == "running":
        return TaskState.STARTING if container.health == "starting" else TaskState.RUNNING
    if status == "created" and container.error:
        return TaskState.REJECTED  # the engine refused to start it (bad command, port in use...)
    if status in _ALIVE_STATES:
        return _ALIVE_STATES[status]
    # exited or dead
    if stopped_by_us:
        return TaskState.SHUTDOWN
    if failed(container):
        return TaskState.FAILED
    return TaskState.COMPLETE


def failed(container: ContainerState) -> bool:
    """Did a container that is no longer alive end badly? Exit 0 alone is success."""
    return (
        container.status == "dead"
        or container.health == "unhealthy"
        or container.oom_killed
        or bool(container.error)
        or container.exit_code != 0
    )


def failure_reason(container: ContainerState) -> str:
    """Why a failed container failed, in Swarm's words where it has some ("non-zero exit (3)")."""
    if container.error:
        return container.error
    if container.oom_killed:
        return "OOM killed"
    if container.health == "unhealthy":
        return "unhealthy: stopped by its healthcheck"
    if container.status == "dead":
        return "the engine marked the container dead"
    if container.exit_code not in (None, 0):
        return f"non-zero exit ({container.exit_code})"
    return ""


def ready(container: ContainerState) -> bool:
    """Running, and healthy where it has a healthcheck: may take traffic / replace another."""
    return container.status == "running" and container.health in (None, "healthy")
