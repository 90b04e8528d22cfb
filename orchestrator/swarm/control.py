"""`SwarmControl`: the API's `Control` protocol (control.py) on a Swarm manager.

The same HTTP API and CLI as on one engine, answered from Swarm: changes go through
swarm/apply.py (Swarm keeps the desired state and schedules), and each is followed by an
immediate relist of the watcher, so that `ls` and the event stream see it at once. Views:

- `ls` reads the watcher's last relist (no request of its own);
- `services` and `ps` list the stack's services and tasks afresh (so `ps` agrees with
  `docker stack ps`), with the node of each task;
- `logs` reads Swarm's service logs, which the manager gathers from every node.

The stack file a stack was deployed from is kept in Swarm (swarm/records.py) for `inspect`, so
a daemon started on another manager finds it too; a stack deployed otherwise (`docker stack
deploy`) is shown with what its services say (name, image, mode, replicas). Ingress and standbys are features of
the engine backend: on Swarm, published ports are Swarm's (docs/swarm.md).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from orchestrator.publishing import events
from orchestrator.views import (
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
from orchestrator.errors import UnknownService, UnknownStack
from orchestrator.publishing.events import Event
from orchestrator.labels import LABEL_SPEC_HASH, LABEL_SWARM_NAMESPACE
from orchestrator.model.spec import ServiceSpec, StackSpec
from orchestrator.model.observed import TaskState
from orchestrator.loop.store import StackRecord
from orchestrator.swarm.apply import ReplicaBudget, SwarmStacks
from orchestrator.engine.swarm import SwarmManager, namespace_filter
from orchestrator.swarm.records import SwarmRecords
from orchestrator.swarm.observed import (
    ServiceRef,
    TaskSeen,
    global_slots,
    node_seen,
    parse_time,
    service_ref,
    service_mode,
    service_replicas,
    task_seen,
)
from orchestrator.swarm.jobs import job_progress
from orchestrator.swarm.watcher import SwarmWatcher

log = structlog.stdlib.get_logger()

#: Swarm's prefix of a task's line in a service's logs (`details=true`).
_TASK_DETAIL = "com.docker.swarm.task.id="


class SwarmControl:
    def __init__(self, manager: SwarmManager, watcher: SwarmWatcher, emit: Callable[[Event], None],
                 budget: ReplicaBudget, redis_ping: Callable[[], Awaitable[object]]) -> None:
        self._m = manager
        self._watcher = watcher
        self._emit = emit
        self._stacks = SwarmStacks(manager, budget)
        self._records = SwarmRecords(manager)
        self._specs: dict[str, StackSpec] = {}
        self._redis_ping = redis_ping

    async def load(self) -> None:
        """The stack files kept in Swarm (before the API serves)."""
        self._specs = {name: record.spec for name, record in (await self._records.load()).items()}

    # changes ------------------------------------------------------------------------------
    async def deploy(self, spec: StackSpec) -> DeployOutcome:
        outcome = await self._stacks.deploy(spec)
        self._specs[spec.name] = spec
        await self._records.save(StackRecord(spec=spec, deployed_at=time.time()))
        self._emit(events.stack_deployed(spec.name, outcome.result))
        await self._watcher.refresh()
        return outcome

    async def remove(self, stack: str, *, volumes: bool = False) -> RemoveOutcome:
        outcome = await self._stacks.remove(stack, volumes=volumes)
        await self._watcher.refresh()
        if outcome.removed:  # its record config went with the stack's configs
            self._specs.pop(stack, None)
            self._emit(events.stack_removed(stack, "orchestrator rm"))
        return outcome

    async def scale(self, stack: str, counts: Mapping[str, int]) -> None:
        await self._stacks.scale(stack, counts)
        for service, count in counts.items():
            self._emit(events.service_scaled(stack, service, count))
        await self._watcher.refresh()

    async def rollback(self, stack: str, service: str) -> None:
        await self._stacks.rollback(stack, service)
        await self._watcher.refresh()

    # views --------------------------------------------------------------------------------
    def stacks(self) -> Sequence[StackView]:
        snapshot = self._watcher.snapshot
        by_stack: dict[str, list[dict[str, Any]]] = {}
        for service_id, service in snapshot.services.items():
            by_stack.setdefault(snapshot.refs[service_id].stack, []).append(service)
        views = []
        jobs = {(ref.stack, ref.name) for ref in snapshot.refs.values() if ref.mode.endswith("-job")}
        for name, services in sorted(by_stack.items()):
            # A job's tasks run to completion: they are not replicas to keep running.
            tasks = [t for t in snapshot.tasks if t.key.stack == name and (name, t.key.service) not in jobs]
            views.append(StackView(
                name=name,
                services=len(services),
                replicas_desired=sum(_desired(s, tasks) for s in services if not service_mode(s).endswith("-job")),
                replicas_running=sum(1 for t in tasks if _running(t)),
                deployed_at=max(parse_time(s.get("UpdatedAt")) for s in services),
                generation=max(int((s.get("Version") or {}).get("Index") or 0) for s in services),
            ))
        return views

    def replica_counts(self) -> Sequence[ReplicaCount]:
        snapshot = self._watcher.snapshot
        by_service: dict[tuple[str, str], list[TaskSeen]] = {}
        for task in snapshot.tasks:  # grouped once: a scrape is O(tasks), not O(services × tasks)
            by_service.setdefault((task.key.stack, task.key.service), []).append(task)
        counts = []
        for service_id, service in snapshot.services.items():
            ref = snapshot.refs[service_id]
            mine = by_service.get((ref.stack, ref.name), [])
            job = job_progress(service, mine) if service_mode(service).endswith("-job") else None
            desired = _desired(service, mine) if job is None else job.wanted
            counts.append(ReplicaCount(ref.stack, ref.name, desired, sum(1 for t in mine if _running(t))))
        return sorted(counts, key=lambda c: (c.stack, c.service))

    def stack_spec(self, stack: str) -> StackSpec:
        if stack in self._specs:
            return self._specs[stack]
        snapshot = self._watcher.snapshot
        services = {ref.name: _spec_from_service(ref.name, snapshot.services[ref.id])
                    for ref in snapshot.refs.values() if ref.stack == stack}
        if not services:
            raise UnknownStack(stack)
        return StackSpec(name=stack, services=services)

    async def _listed(self, stack: str) -> tuple[dict[str, dict[str, Any]], list[TaskSeen]]:
        """The stack's services by name and their tasks, listed now."""
        listed = await self._m.services(namespace_filter(stack))
        refs: dict[str, ServiceRef] = {}
        for service in listed:
            ref = service_ref(service, LABEL_SWARM_NAMESPACE)
            if ref is not None and ref.stack == stack:
                refs[ref.id] = ref
        if not refs:
            raise UnknownStack(stack)
        services = {refs[s["ID"]].name: s for s in listed if s["ID"] in refs}
        raw = await self._m.tasks({"service": list(refs)})
        nodes = {node["ID"]: node_seen(node) for node in await self._m.nodes()}
        slots = global_slots(nodes.values())
        tasks = [t for t in (task_seen(task, refs, nodes, slots) for task in raw) if t is not None]
        return services, tasks

    async def services(self, stack: str) -> Sequence[ServiceView]:
        services, tasks = await self._listed(stack)
        views = []
        for name, service in sorted(services.items()):
            spec = service["Spec"]
            mine = [t for t in tasks if t.key.service == name]
            update = service.get("UpdateStatus") or {}
            mode = service_mode(service)
            job = job_progress(service, mine) if mode.endswith("-job") else None
            views.append(ServiceView(
                stack=stack,
                name=name,
                mode=mode,
                image=((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image", "").split("@")[0],
                replicas_desired=_desired(service, mine) if job is None else job.wanted,
                replicas_running=sum(1 for t in mine if _running(t)),
                replicas_completed=0 if job is None else job.completed,
                replicas_given_up=0 if job is None else job.given_up,
                given_up_reason="" if job is None else job.given_up_reason,
                spec_hash=(spec.get("Labels") or {}).get(LABEL_SPEC_HASH, ""),
                ports=tuple(PortView(p.get("PublishedPort"), p.get("TargetPort", 0), p.get("Protocol", "tcp"),
                                     p.get("PublishMode", "ingress"))
                            for p in (spec.get("EndpointSpec") or {}).get("Ports") or ()),
                update_state=_UPDATE_STATES.get(update.get("State", ""), "none"),
                update_message=update.get("Message", ""),
            ))
        return views

    async def tasks(self, stack: str, *, include_history: bool = True) -> Sequence[TaskView]:
        """Per slot the newest task first (`current`), then the older ones, as `docker stack ps`."""
        _, tasks = await self._listed(stack)
        by_slot: dict[Any, list[TaskSeen]] = {}
        for task in tasks:
            by_slot.setdefault(task.key, []).append(task)
        views = []
        for key in sorted(by_slot, key=lambda k: (k.service, k.slot)):
            newest_first = sorted(by_slot[key], key=lambda t: t.created_at, reverse=True)
            for index, task in enumerate(newest_first):
                if index and not include_history:
                    break
                views.append(TaskView(
                    stack=stack, service=key.service, slot=key.slot, task_id=task.id,
                    container_id=task.container_id, name=f"{stack}_{key.service}.{key.slot}.{task.id}",
                    image=task.image, state=task.state.value,
                    desired_state="running" if task.desired_state in ("running", "ready") else "shutdown",
                    since=task.timestamp, exit_code=task.exit_code, error=task.error,
                    current=index == 0, node=task.node, swarm_state=task.swarm_state,
                ))
        return views

    async def logs(self, stack: str, service: str, *, follow: bool = False,
                   tail: int | None = None) -> AsyncIterator[LogLine]:
        services, tasks = await self._listed(stack)
        if service not in services:
            raise UnknownService(stack, service)
        slots = {t.id: t.key.slot for t in tasks}
        async for raw in self._m.service_logs(services[service]["ID"], follow=follow, tail=tail):
            details, _, text = raw.partition(" ")
            task_id = next((part[len(_TASK_DETAIL):] for part in details.split(",")
                            if part.startswith(_TASK_DETAIL)), "")
            if task_id and task_id not in slots:  # a task newer than the list: look again
                slots.update({t.id: t.key.slot for t in (await self._listed(stack))[1]})
            yield LogLine(slots.get(task_id, 0), task_id, "stdout", text)

    async def health(self) -> HealthView:
        """The engine counts as up while it is an active Swarm manager."""
        return await probe_health(self._m.check_manager, self._redis_ping)

    async def close(self) -> None:
        """Nothing runs in the background: Swarm carries on by itself."""


#: Swarm's UpdateStatus.State → the update_state of a ServiceView.
_UPDATE_STATES = {
    "updating": "updating",
    "paused": "paused",
    "completed": "completed",
    "rollback_started": "rolling_back",
    "rollback_paused": "paused",
    "rollback_completed": "rolled_back",
}


def _running(task: TaskSeen) -> bool:
    return task.state is TaskState.RUNNING and task.desired_state == "running"


def _desired(service: Mapping[str, Any], tasks: Sequence[TaskSeen]) -> int:
    """Replicas wanted: the count of a replicated service; for a global one, the tasks Swarm
    wants running (one a node it may use)."""
    replicas = service_replicas(service)
    if replicas is not None:
        return replicas
    return sum(1 for t in tasks if t.key.service == _name_in_stack(service) and t.desired_state == "running")


def _name_in_stack(service: Mapping[str, Any]) -> str:
    spec = service["Spec"]
    stack = (spec.get("Labels") or {}).get(LABEL_SWARM_NAMESPACE, "")
    return str(spec["Name"])[len(stack) + 1:]


def _spec_from_service(name: str, service: Mapping[str, Any]) -> ServiceSpec:
    """What a service deployed by someone else says of itself, for `inspect`."""
    spec = service["Spec"]
    replicas = service_replicas(service)
    image = ((spec.get("TaskTemplate") or {}).get("ContainerSpec") or {}).get("Image", "")
    return ServiceSpec(name=name, image=image.split("@")[0] or None, mode=service_mode(service),  # type: ignore[arg-type]
                       replicas=replicas or 0)


__all__ = ["SwarmControl"]
