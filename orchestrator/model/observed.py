"""What the backend reports: each task's container as last listed, and the task states.
No module here does I/O."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

# --------------------------------------------------------------------------- observed state


class TaskState(enum.StrEnum):
    """A replica's life, a subset of Swarm's task states (DESIGN.md)."""

    NEW = "new"
    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    SHUTDOWN = "shutdown"
    REJECTED = "rejected"
    REMOVED = "removed"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {TaskState.COMPLETE, TaskState.FAILED, TaskState.SHUTDOWN, TaskState.REJECTED, TaskState.REMOVED}
)


@dataclass(frozen=True, slots=True)
class SlotKey:
    stack: str
    service: str
    slot: int

    def __str__(self) -> str:
        return f"{self.stack}_{self.service}.{self.slot}"


EngineStatus = Literal["created", "running", "paused", "restarting", "removing", "exited", "dead"]
Health = Literal["starting", "healthy", "unhealthy"]


@dataclass(frozen=True, slots=True)
class ContainerState:
    """One container the daemon created, as the engine last reported it (read via our labels)."""

    id: str
    name: str
    key: SlotKey
    spec_hash: str
    task_id: str
    #: Creation time (epoch seconds, from our label: the engine's list only gives whole seconds).
    created_at: float
    status: EngineStatus
    health: Health | None = None
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    oom_killed: bool = False
    error: str = ""
    #: Published ports: "80/tcp" -> host port (on 127.0.0.1 for ingress-mode ports).
    ports: Mapping[str, int] = field(default_factory=dict)
    #: IPv4 address on its first network (running containers), for the ingress.
    address: str | None = None
    #: Created as a slot's standby (label `orchestrator.standby`; it keeps it once started).
    standby: bool = False

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def alive(self) -> bool:
        """Has (or may soon have) a process: counts as occupying its slot.

        A `created` container whose start failed (the engine sets `error`) never will."""
        if self.status == "created":
            return not self.error
        return self.status in ("running", "paused", "restarting")

    @property
    def is_standby(self) -> bool:
        """A standby never started, so no task (docs/standby.md): waiting (`created`), or on
        its way out unused (`removing`, or `dead` after a failed removal). Taken for a task
        there, it would be a slot's newest dead container: a failure of a task that never was."""
        if not self.standby or self.error:
            return False
        if self.status == "created":
            return True
        return self.status in ("removing", "dead") and self.started_at is None
