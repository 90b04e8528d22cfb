"""What the HTTP API (and through it the CLI) may ask of the daemon: one narrow Protocol.

The reconciler implements it; the API's unit tests use a fake. Views are plain frozen
dataclasses that serialise with `dataclasses.asdict`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from orchestrator.model.spec import StackSpec


DeployResult = Literal["created", "updated", "unchanged"]
DesiredTaskState = Literal["running", "shutdown"]


@dataclass(frozen=True, slots=True)
class DeployOutcome:
    stack: str
    #: created: new stack; updated: spec changed; unchanged: same spec, nothing to do.
    result: DeployResult
    #: Services that get new containers: new ones, and those whose spec hash changed.
    changed_services: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StackView:
    name: str
    services: int
    replicas_desired: int
    replicas_running: int
    deployed_at: float
    generation: int
    #: deployed, or removing: `rm` was asked and the daemon is still at it (see `message`).
    state: Literal["deployed", "removing"] = "deployed"
    #: Why a removal is not done yet: the engine's last refusal ("" while it simply runs).
    message: str = ""


@dataclass(frozen=True, slots=True)
class RemoveOutcome:
    stack: str
    #: True: everything is gone. False: the removal goes on in the daemon (`message` says why).
    removed: bool
    volumes: bool
    state: Literal["removed", "removing"] = "removed"
    message: str = ""


@dataclass(frozen=True, slots=True)
class PortView:
    published: int | None
    target: int
    protocol: str
    mode: str
    #: Ingress ports: published (the daemon listens), unavailable (it cannot bind the port:
    #: `error` says why; retried), pending (not tried yet). "" for ports the engine binds.
    state: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True)
class ServiceView:
    stack: str
    name: str
    mode: str
    image: str | None
    replicas_desired: int
    replicas_running: int
    spec_hash: str
    ports: tuple[PortView, ...] = ()
    #: Rolling update state: none | updating | paused | completed | rolled_back | rolling_back.
    update_state: str = "none"
    update_message: str = ""
    #: Slots whose restart policy gave up (max_attempts used up): they stay down until a deploy.
    replicas_given_up: int = 0
    given_up_reason: str = ""
    #: A job's (Swarm only, mode *-job): its tasks that ran to completion in its current run;
    #: replicas_desired is then the completions wanted.
    replicas_completed: int = 0


@dataclass(frozen=True, slots=True)
class ReplicaCount:
    """One service's replicas as the daemon last saw them: what `/metrics` reports."""

    stack: str
    service: str
    desired: int
    running: int


@dataclass(frozen=True, slots=True)
class TaskView:
    """One container of a slot, the `ps` row (current task first, then its history)."""

    stack: str
    service: str
    slot: int
    task_id: str
    container_id: str
    name: str
    image: str | None
    #: TaskState value: new | created | starting | running | complete | failed | shutdown | rejected
    state: str
    desired_state: DesiredTaskState
    since: float
    exit_code: int | None = None
    error: str = ""
    health: str | None = None
    current: bool = True
    #: Swarm backend: the node the task is on and Swarm's own state of it ("" on one engine).
    node: str = ""
    swarm_state: str = ""


@dataclass(frozen=True, slots=True)
class HealthView:
    engine: bool
    redis: bool
    engine_error: str = ""
    redis_error: str = ""
    #: The engine keeps containers running through a dockerd restart (None: not known).
    live_restore: bool | None = None


@dataclass(frozen=True, slots=True)
class LogLine:
    slot: int
    task_id: str
    stream: Literal["stdout", "stderr"]
    text: str
    extra: Mapping[str, str] = field(default_factory=dict)


async def probe_health(
    engine: Callable[[], Awaitable[object]],
    redis_ping: Callable[[], Awaitable[object]],
    live_restore: Callable[[], Awaitable[bool | None]] | None = None,
) -> HealthView:
    """Ask the engine and Redis (2 s at most); any failure is "unreachable", its text the reason.
    `live_restore`: whether the engine keeps containers through its own restart (one engine)."""
    engine_error = redis_error = ""
    restores: bool | None = None
    try:
        await engine()
        if live_restore is not None:
            restores = await live_restore()
    except Exception as exc:  # noqa: BLE001 - reported as text
        engine_error = str(exc) or type(exc).__name__
    try:
        async with asyncio.timeout(2):
            await redis_ping()
    except Exception as exc:  # noqa: BLE001
        redis_error = str(exc) or type(exc).__name__
    return HealthView(not engine_error, not redis_error, engine_error, redis_error, restores)


def log_prefix(stack: str, service: str, slot: int, task_id: str) -> str:
    """`<stack>_<service>.<slot>.<task>`, as `docker service logs` names a replica."""
    return f"{stack}_{service}.{slot}.{task_id}"


def log_line_text(stack: str, service: str, line: Mapping[str, Any]) -> str:
    """A log line as text, prefixed with its replica: the API's plain-text logs and the CLI's."""
    text = line["text"] if line["text"].endswith("\n") else line["text"] + "\n"
    return f"{log_prefix(stack, service, line['slot'], line['task_id'])} | {text}"


class Control(Protocol):
    async def deploy(self, spec: StackSpec) -> DeployOutcome: ...

    async def remove(self, stack: str, *, volumes: bool = False) -> RemoveOutcome:
        """Raises UnknownStack. Durable once it returns: the daemon finishes what is left."""

    async def scale(self, stack: str, counts: Mapping[str, int]) -> None:
        """Raises UnknownStack / UnknownService (nothing changes when any name is unknown);
        Conflict while the stack is being removed (as deploy and rollback)."""

    async def rollback(self, stack: str, service: str) -> None: ...

    def stacks(self) -> Sequence[StackView]: ...

    def stack_spec(self, stack: str) -> StackSpec:
        """Raises UnknownStack."""

    async def services(self, stack: str) -> Sequence[ServiceView]: ...

    def replica_counts(self) -> Sequence[ReplicaCount]:
        """Every service's replicas from the daemon's last look, with no call to the engine: a
        scrape of `/metrics` costs the engine nothing, however many stacks there are."""

    async def tasks(self, stack: str, *, include_history: bool = True) -> Sequence[TaskView]: ...

    def logs(
        self, stack: str, service: str, *, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[LogLine]: ...

    async def health(self) -> HealthView: ...
