"""The daemon's answers to the HTTP API (the `Control` protocol of orchestrator/views.py).

Changes go to the commands (`loop/commands.py`, the desired state's one writer); the views here
only read: the desired state, the reconciler's last relist, the tracker's task states and the
backend's logs. Nothing here writes a record or touches the loop's parts.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace

from orchestrator.backend import Backend
from orchestrator.errors import EngineUnavailable, UnknownService
from orchestrator.ingress.routes import IngressRoutes, ingress_ports
from orchestrator.labels import spec_hash
from orchestrator.loop.commands import StackCommands
from orchestrator.loop.desired import DesiredState
from orchestrator.loop.log_stream import merged_logs
from orchestrator.loop.reconciler import Reconciler
from orchestrator.loop.reports import PassReports, running_counts
from orchestrator.loop.removal import Removals
from orchestrator.loop.store import StackRecord
from orchestrator.loop.tracker import Rejection, TaskTracker
from orchestrator.model.observed import ContainerState, SlotKey, TaskState
from orchestrator.model.plan import UpdateStatus
from orchestrator.model.spec import PortSpec, StackSpec
from orchestrator.planning.task_states import failure_reason
from orchestrator.views import (
    DesiredTaskState,
    DeployOutcome,
    HealthView,
    LogLine,
    PortView,
    RemoveOutcome,
    ReplicaCount,
    ServiceView,
    StackView,
    TaskView,
    probe_health,
)

class Controller:
    def __init__(
        self,
        commands: StackCommands,
        removals: Removals,
        desired: DesiredState,
        reconciler: Reconciler,
        reports: PassReports,
        tracker: TaskTracker,
        backend: Backend,
        redis_ping: Callable[[], Awaitable[object]],
        routes: IngressRoutes | None = None,
    ) -> None:
        self._commands = commands
        self._removals = removals
        self._desired = desired
        self._reconciler = reconciler
        self._reports = reports
        self._tracker = tracker
        self._backend = backend
        self._redis_ping = redis_ping
        self._routes = routes

    # changes: the commands ------------------------------------------------------------------
    async def deploy(self, spec: StackSpec) -> DeployOutcome:
        return await self._commands.deploy(spec)

    async def scale(self, stack: str, counts: Mapping[str, int]) -> None:
        await self._commands.scale(stack, counts)

    async def remove(self, stack: str, *, volumes: bool = False) -> RemoveOutcome:
        return await self._commands.remove(stack, volumes=volumes)

    async def rollback(self, stack: str, service: str) -> None:
        await self._commands.rollback(stack, service)

    def resume_removals(self) -> None:
        """Finish, in the background, each `rm` a previous daemon did not (its record still says
        removing): the daemon starts meanwhile."""
        self._removals.resume()

    async def close(self) -> None:
        """Stop the removals under way (they go on at the next start)."""
        await self._removals.close()

    # views --------------------------------------------------------------------------------
    def _record(self, stack: str) -> StackRecord:
        return self._commands.record(stack)

    def stacks(self) -> Sequence[StackView]:
        views = []
        for name, record in self._desired.items():
            running = running_counts(record, self._reconciler.observed.get(name, []))
            views.append(
                StackView(
                    name=name,
                    services=len(record.spec.services),
                    replicas_desired=sum(_desired(record).values()),
                    replicas_running=sum(running.values()),
                    deployed_at=record.deployed_at,
                    generation=record.generation,
                    state="removing" if record.removing else "deployed",
                    message=self._removals.reason(name) if record.removing else "",
                )
            )
        return views

    def stack_spec(self, stack: str) -> StackSpec:
        return self._record(stack).spec

    def replica_counts(self) -> Sequence[ReplicaCount]:
        counts = []
        for name, record in self._desired.items():
            running = running_counts(record, self._reconciler.observed.get(name, []))
            counts += [ReplicaCount(name, service, desired, running.get(service, 0))
                       for service, desired in sorted(_desired(record).items())]
        return counts

    async def services(self, stack: str) -> Sequence[ServiceView]:
        record = self._record(stack)
        observed = await self._backend.list_containers(stack)
        running = running_counts(record, observed)
        desired = _desired(record)
        given_up = self._reports.given_up(stack)
        return [
            ServiceView(
                stack=stack,
                name=name,
                mode=svc.mode,
                image=svc.image,
                replicas_desired=desired[name],
                replicas_running=running.get(name, 0),
                spec_hash=spec_hash(svc),
                ports=tuple(self._port_view(p) for p in svc.ports),
                **_update_view(record.updates.get(name)),
                replicas_given_up=len(given_up.get(name, ())),
                given_up_reason=given_up.get(name, [""])[0],
                replicas_completed=0,  # jobs run only on Swarm
            )
            for name, svc in sorted(record.spec.services.items())
        ]

    def _port_view(self, port: PortSpec) -> PortView:
        view = PortView(port.published, port.target, port.protocol, port.mode)
        if self._routes is None or not ingress_ports([port]):
            return view
        state, error = self._routes.port_state((port.published, port.protocol))  # type: ignore[arg-type]
        return replace(view, state=state, error=error)

    async def tasks(self, stack: str, *, include_history: bool = True) -> Sequence[TaskView]:
        """Per slot its newest task first (`current`), then the older ones (history)."""
        record = self._record(stack)
        observed = await self._backend.list_containers(stack)
        # (when the task began, its row) per slot; a rejection has no container to list.
        rows: dict[SlotKey, list[tuple[float, TaskView]]] = {}
        for c in self._reconciler.tasks_of(observed):
            rows.setdefault(c.key, []).append((c.created_at, self._container_row(record, c)))
        for key, rejection in self._tracker.rejections(stack).items():
            if key.service in record.spec.services:
                rows.setdefault(key, []).append((rejection.at, _rejected_row(record, key, rejection)))
        replicas = _desired(record)
        views: list[TaskView] = []
        for key in sorted(rows, key=lambda k: (k.service, k.slot)):
            wanted = key.slot <= replicas.get(key.service, 0)
            newest_first = sorted(rows[key], key=lambda row: row[0], reverse=True)
            for index, (_, row) in enumerate(newest_first):
                if index and not include_history:
                    break
                current = index == 0
                desired: DesiredTaskState = "running" if current and wanted else "shutdown"
                views.append(replace(row, current=current, desired_state=desired))
        return views

    def _container_row(self, record: StackRecord, c: ContainerState) -> TaskView:
        svc = record.spec.services.get(c.key.service)
        state = self._tracker.state_of(c)
        since = c.finished_at if not c.alive and c.finished_at else (c.started_at or c.created_at)
        return TaskView(
            stack=c.key.stack,
            service=c.key.service,
            slot=c.key.slot,
            task_id=c.task_id,
            container_id=c.id,
            name=c.name,
            image=svc.image if svc else None,
            state=state.value,
            desired_state="running",
            since=since,
            exit_code=c.exit_code if not c.alive else None,
            error=failure_reason(c) if state is TaskState.FAILED else c.error,
            health=c.health,
        )

    async def logs(
        self, stack: str, service: str, *, follow: bool = False, tail: int | None = None
    ) -> AsyncIterator[LogLine]:
        record = self._record(stack)
        if service not in record.spec.services:
            raise UnknownService(stack, service)
        listed = await self._backend.list_containers(stack)
        containers = [c for c in self._reconciler.tasks_of(listed) if c.key.service == service]
        async for line in merged_logs(self._backend, containers, follow=follow, tail=tail):
            yield line

    async def health(self) -> HealthView:
        return await probe_health(self._engine_answers, self._redis_ping, self._backend.live_restore)

    async def _engine_answers(self) -> None:
        """A ping, and no call left unanswered lately (a deadlocked engine still answers pings)."""
        await self._backend.ping()
        if stalled := self._backend.stalled():
            raise EngineUnavailable(stalled)


def _desired(record: StackRecord) -> dict[str, int]:
    """Replicas wanted per service: none of a stack being removed."""
    return {name: 0 for name in record.spec.services} if record.removing else record.replicas()


def _rejected_row(record: StackRecord, key: SlotKey, rejection: Rejection) -> TaskView:
    svc = record.spec.services[key.service]
    return TaskView(
        stack=key.stack,
        service=key.service,
        slot=key.slot,
        task_id=rejection.task_id,
        container_id="",
        name=f"{key.stack}_{key.service}.{key.slot}.{rejection.task_id}",
        image=svc.image,
        state=TaskState.REJECTED.value,
        desired_state="running",
        since=rejection.at,
        error=rejection.reason,
    )


def _update_view(status: UpdateStatus | None) -> dict[str, str]:
    if status is None:
        return {}
    message = "; ".join(part for part in (status.reason, status.message) if part)
    return {"update_state": status.state, "update_message": message}

