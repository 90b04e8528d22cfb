"""The daemon's answers to the HTTP API (the `Control` protocol): deploy, scale, remove, views.

Every change is validated completely before anything is touched, saved to the store (so a
restarted daemon keeps it), then handed to the reconciler by marking the stack dirty. Changes are
serialised by one lock: two deploys of one stack never interleave. The record is saved before
the engine is asked to change anything (docs/design-notes.md, crash safety): a deploy creates
its networks and volumes after saving, and `rm` saves `removing` and leaves the rest to
`removal.Removals`. A stack being removed takes no other change (409).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import replace

import structlog

from orchestrator import events, updates
from orchestrator.control import (
    DeployOutcome,
    HealthView,
    LogLine,
    PortView,
    RemoveOutcome,
    ServiceView,
    StackView,
    TaskView,
)
from orchestrator.errors import (
    Conflict,
    EngineError,
    EngineUnavailable,
    UnknownService,
    UnknownStack,
    UserError,
)
from orchestrator.ingress import IngressError
from orchestrator.ingress_routes import PortKey, ingress_ports
from orchestrator.labels import spec_hash
from orchestrator.model import ContainerState, PortSpec, SlotKey, StackSpec, TaskState, UpdateStatus
from orchestrator.reconciler import Reconciler, running_counts
from orchestrator.replica_limits import check_replicas
from orchestrator.removal import Removals
from orchestrator.store import StackRecord
from orchestrator.tasks import failure_reason
from orchestrator.tracker import Rejection

log = structlog.stdlib.get_logger()


class Controller:
    def __init__(self, reconciler: Reconciler, redis_ping: Callable[[], Awaitable[object]]) -> None:
        self._r = reconciler
        self._redis_ping = redis_ping
        self._lock = asyncio.Lock()
        self._removals = Removals(reconciler, self._lock)

    # changes ------------------------------------------------------------------------------
    async def deploy(self, spec: StackSpec) -> DeployOutcome:
        async with self._lock:
            old = self._r.records.get(spec.name)
            if old is not None:
                self._changeable(old)
            self._check_published_ports(spec)
            after = StackRecord(spec=spec, scale={}).replicas()
            self._check_replica_limits(spec.name, after, "services.{}.deploy.replicas")
            changed = _changed_services(old.spec if old else None, spec)
            await self._r.engine.check_external(spec)  # read-only: nothing to undo
            claimed = await self._bind_new_ingress_ports(spec, old)
            now = time.time()
            record = StackRecord(
                spec=spec,
                scale={},
                generation=(old.generation + 1) if old else 1,
                deployed_at=now,
                updates=_updates_after_deploy(old, spec, changed, now),
            )
            result = "created" if old is None else ("unchanged" if old.spec == spec and not old.scale else "updated")
            # Saved before the engine is touched: whatever it creates from here on, a record
            # explains (and a daemon killed meanwhile carries on from it).
            try:
                self._r.store.save_stack(record)
            except BaseException:
                await self._release_ingress_ports(spec.name, claimed)
                raise
            self._r.records[spec.name] = record
            self._r.executor.forget_images()
            try:
                await self._prepare_engine_objects(record, old)
            except BaseException:  # undone: the ports this deploy bound are not the stack's
                await self._release_ingress_ports(spec.name, claimed)
                raise
            # Swarm's "until the next deploy": given-up slots get a fresh history.
            self._r.book.reset(spec.name)
            self._r.emit(events.stack_deployed(spec.name, result))
            replicas = record.replicas()
            for service, status in record.updates.items():
                previous = old.updates.get(service) if old else None
                event = events.update_transition(spec.name, service, previous, status, replicas[service])
                if event is not None:
                    self._r.emit(event)
            self._r.mark_dirty(spec.name)
            log.info("stack_deployed", stack=spec.name, result=result, changed=list(changed))
            return DeployOutcome(spec.name, result, tuple(changed), spec.warnings)  # type: ignore[arg-type]

    def _check_published_ports(self, spec: StackSpec) -> None:
        """Ingress ports are the daemon's own listeners: TCP or UDP, and one stack per port."""
        taken = {
            (p.published, p.protocol): name
            for name, record in self._r.records.items()
            if name != spec.name
            for svc in record.spec.services.values()
            for p in ingress_ports(svc.ports)
        }
        for svc in spec.services.values():
            for p in ingress_ports(svc.ports):
                where = f"services.{svc.name}.ports ({p.published}:{p.target}/{p.protocol})"
                if p.protocol not in ("tcp", "udp"):
                    raise UserError(f"{where}: the ingress relays TCP and UDP only; publish it with mode: host")
                if (p.published, p.protocol) in taken:
                    other = taken[(p.published, p.protocol)]
                    raise Conflict(f"{where}: port {p.published} is already published by stack {other}")

    async def _bind_new_ingress_ports(self, spec: StackSpec, old: StackRecord | None) -> list[PortKey]:
        """Listen on the ingress ports this deploy adds, so that one the daemon cannot bind
        (another program has it, it needs privileges) fails the deploy with a 409 instead of
        going unpublished. Ports the stack already publishes are the loop's to (re)bind.
        Returns the listeners opened, for `_release_ingress_ports`."""
        routes = self._r.routes
        if routes is None:
            return []
        before = set() if old is None else {
            (p.published, p.protocol) for svc in old.spec.services.values() for p in ingress_ports(svc.ports)
        }  # fmt: skip
        opened: list[PortKey] = []
        for svc in spec.services.values():
            for p in ingress_ports(svc.ports):
                key = (p.published, p.protocol)
                if key in before:
                    continue
                try:
                    if await routes.claim(spec.name, key):  # type: ignore[arg-type]
                        opened.append(key)  # type: ignore[arg-type]
                except IngressError as exc:
                    await routes.release(spec.name, opened)
                    raise Conflict(
                        f"services.{svc.name}.ports ({p.published}:{p.target}/{p.protocol}): {exc}",
                        path=f"services.{svc.name}.ports",
                    ) from None
        return opened

    async def _release_ingress_ports(self, stack: str, ports: list[PortKey]) -> None:
        if self._r.routes is not None and ports:
            await self._r.routes.release(stack, ports)

    def _check_replica_limits(self, stack: str, after: Mapping[str, int], path: str = "{}") -> None:
        record = self._r.records.get(stack)
        others = sum(sum(r.replicas().values()) for name, r in self._r.records.items() if name != stack)
        settings = self._r.settings
        check_replicas(stack, record.replicas() if record else {}, after, others,
                       per_service=settings.max_replicas, total=settings.max_replicas_total, path=path)

    async def _prepare_engine_objects(self, record: StackRecord, old: StackRecord | None) -> None:
        """The stack's networks and volumes, so that the engine's refusal of one (a subnet in
        use, an unknown driver) fails the deploy. Undone when refused: an update goes back to
        the record it replaced; a new stack is removed as `rm` does, durably."""
        try:
            await self._r.executor.ensure_stack_objects(record.spec)
        except (EngineError, EngineUnavailable, UserError):
            name = record.spec.name
            if old is not None:
                self._r.store.save_stack(old)
                self._r.records[name] = old
            else:
                undo = replace(record, removing=True)
                self._r.store.save_stack(undo)
                self._r.records[name] = undo
                self._removals.start(name)
            log.warning("deploy_undone", stack=name, new_stack=old is None)
            raise

    async def scale(self, stack: str, counts: Mapping[str, int]) -> None:
        async with self._lock:
            record = self._changeable(self._record(stack))
            for service, count in counts.items():
                svc = record.spec.services.get(service)
                if svc is None:
                    raise UnknownService(stack, service)
                if svc.mode == "global":
                    raise UserError(f"{stack}_{service}: scale can only be used with replicated mode")
                if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                    raise UserError(f"{stack}_{service}: replicas must be a non-negative integer, got {count!r}")
            self._check_replica_limits(stack, {**record.replicas(), **counts})
            record = replace(
                record, scale={**record.scale, **counts}, generation=record.generation + 1
            )
            self._r.store.save_stack(record)
            self._r.records[stack] = record
            for service, count in counts.items():
                self._r.book.reset(stack, service)
                self._r.emit(events.service_scaled(stack, service, count))
            self._r.mark_dirty(stack)

    async def remove(self, stack: str, *, volumes: bool = False) -> RemoveOutcome:
        """Durable from the moment the record says `removing` (orchestrator/removal.py); waits
        until the stack is gone, or answers that the removal goes on while the engine refuses.
        Asked again, it reports on the same removal (and adds the volumes if asked now)."""
        async with self._lock:
            record = self._record(stack)
            if not record.removing or (volumes and not record.remove_volumes):
                record = replace(record, removing=True, remove_volumes=record.remove_volumes or volumes)
                self._r.store.save_stack(record)
                self._r.records[stack] = record
            removal = self._removals.start(stack)
        await self._removals.wait(removal)
        if removal.done.is_set():
            return RemoveOutcome(stack, True, record.remove_volumes)
        message = removal.reason or "the daemon is still removing it"
        return RemoveOutcome(stack, False, record.remove_volumes, "removing", message)

    def resume_removals(self) -> None:
        """Finish, in the background, each `rm` a previous daemon did not (its record still says
        removing): the daemon starts meanwhile."""
        self._removals.resume()

    async def close(self) -> None:
        """Stop the removals under way (they go on at the next start)."""
        await self._removals.close()

    async def rollback(self, stack: str, service: str) -> None:
        """Back to the spec the service had before its last update (swarm's `service rollback`)."""
        async with self._lock:
            record = self._changeable(self._record(stack))
            current = record.spec.services.get(service)
            if current is None:
                raise UnknownService(stack, service)
            status = record.updates.get(service)
            if status is None or status.previous is None:
                raise Conflict(f"{stack}_{service}: there is no previous version to roll back to")
            back, rolled = updates.start_rollback(status, current, time.time(), updates.REASON_MANUAL)
            record = replace(
                record,
                spec=replace(record.spec, services={**record.spec.services, service: back}),
                updates={**record.updates, service: rolled},
                generation=record.generation + 1,
            )
            self._r.store.save_stack(record)
            self._r.records[stack] = record
            self._r.executor.forget_images()
            self._r.emit(events.update_rollback_started(stack, service, record.replicas()[service], rolled.reason))
            self._r.mark_dirty(stack)
            log.info("rollback_started", stack=stack, service=service)

    # views --------------------------------------------------------------------------------
    def _record(self, stack: str) -> StackRecord:
        """The stack's record, also while it is being removed (the views show that)."""
        record = self._r.records.get(stack)
        if record is None:
            raise UnknownStack(stack)
        return record

    def _changeable(self, record: StackRecord) -> StackRecord:
        if record.removing:
            name = record.spec.name
            why = self._removals.reason(name)
            raise Conflict(f"stack {name} is being removed{f' ({why})' if why else ''}; "
                           "deploy it again once `orchestrator ls` no longer lists it")
        return record

    def stacks(self) -> Sequence[StackView]:
        views = []
        for name, record in sorted(self._r.records.items()):
            running = running_counts(record, self._r.observed.get(name, []))
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

    async def services(self, stack: str) -> Sequence[ServiceView]:
        record = self._record(stack)
        observed = await self._r.engine.list_containers(stack)
        running = running_counts(record, observed)
        desired = _desired(record)
        given_up = self._r.given_up(stack)
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
            )
            for name, svc in sorted(record.spec.services.items())
        ]

    def _port_view(self, port: PortSpec) -> PortView:
        view = PortView(port.published, port.target, port.protocol, port.mode)
        if self._r.routes is None or not ingress_ports([port]):
            return view
        state, error = self._r.routes.port_state((port.published, port.protocol))  # type: ignore[arg-type]
        return replace(view, state=state, error=error)

    async def tasks(self, stack: str, *, include_history: bool = True) -> Sequence[TaskView]:
        """Per slot its newest task first (`current`), then the older ones (history)."""
        record = self._record(stack)
        observed = await self._r.engine.list_containers(stack)
        # (when the task began, its row) per slot; a rejection has no container to list.
        rows: dict[SlotKey, list[tuple[float, TaskView]]] = {}
        for c in self._r.tasks_of(observed):
            rows.setdefault(c.key, []).append((c.created_at, self._container_row(record, c)))
        for key, rejection in self._r.tracker.rejections(stack).items():
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
                desired = "running" if current and wanted else "shutdown"
                views.append(replace(row, current=current, desired_state=desired))
        return views

    def _container_row(self, record: StackRecord, c: ContainerState) -> TaskView:
        svc = record.spec.services.get(c.key.service)
        state = self._r.tracker.state_of(c)
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
        listed = await self._r.engine.list_containers(stack)
        containers = [c for c in self._r.tasks_of(listed) if c.key.service == service]
        queue: asyncio.Queue[LogLine | None] = asyncio.Queue(maxsize=1000)

        async def pump(c: ContainerState) -> None:
            try:
                async for text in self._r.engine.logs(c.id, follow=follow, tail=tail):
                    await queue.put(LogLine(c.key.slot, c.task_id, "stdout", text))
            finally:
                await queue.put(None)

        pumps = [asyncio.create_task(pump(c)) for c in containers]
        try:
            remaining = len(pumps)
            while remaining:
                line = await queue.get()
                if line is None:
                    remaining -= 1
                else:
                    yield line
        finally:
            for task in pumps:
                task.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)

    async def health(self) -> HealthView:
        engine_error = redis_error = ""
        live_restore = None
        try:
            await self._r.engine.ping()
            live_restore = await self._r.engine.live_restore()
        except Exception as exc:  # noqa: BLE001 - any failure is "unreachable", reported as text
            engine_error = str(exc) or type(exc).__name__
        try:
            await asyncio.wait_for(self._redis_ping(), timeout=2)
        except Exception as exc:  # noqa: BLE001
            redis_error = str(exc) or type(exc).__name__
        return HealthView(not engine_error, not redis_error, engine_error, redis_error, live_restore)


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


def _updates_after_deploy(
    old: StackRecord | None, spec: StackSpec, changed: Sequence[str], now: float
) -> dict[str, UpdateStatus]:
    """A changed service starts an update from its spec so far; an unchanged one keeps its
    status, and a paused one carries on (a deploy is how a paused update is resumed)."""
    if old is None:
        return {}
    result = {}
    for name in spec.services:
        status = old.updates.get(name)
        if name in changed:
            result[name] = updates.begin(old.spec.services[name], spec.services[name], now)
        elif status is not None:
            result[name] = updates.resume(status, now) if status.state == "paused" else status
    return result


def _update_view(status: UpdateStatus | None) -> dict[str, str]:
    if status is None:
        return {}
    message = "; ".join(part for part in (status.reason, status.message) if part)
    return {"update_state": status.state, "update_message": message}


def _changed_services(old: StackSpec | None, new: StackSpec) -> list[str]:
    """Services that get new containers: every one of a new stack, else the added ones and
    those whose spec hash changed (`deploy` prints "Creating/Updating service" for each)."""
    before = old.services if old else {}
    return sorted(
        name
        for name, svc in new.services.items()
        if name not in before or spec_hash(before[name]) != spec_hash(svc)
    )
