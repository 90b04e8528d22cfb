"""The changes the API may ask for: deploy, scale, rollback, remove. Each is one command here.

Every change is validated completely before anything is touched, saved through the desired state
(`loop/desired.py`, so a restarted daemon keeps it), then handed to the loop by marking the stack
dirty. Commands are serialised by the desired state's lock: two deploys of one stack never
interleave. The record is saved before the backend is asked to change anything
(docs/design-notes.md, crash safety): a deploy creates its networks and volumes after saving, and
`rm` saves `removing` and leaves the rest to `removal.Removals`. A stack being removed takes no
other change (409).

A deploy awaits the backend (external objects, ingress ports) before it writes; its record is
derived from the record as it is at the write, so the update statuses a pass wrote meanwhile are
the ones it builds on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

import structlog

from orchestrator.backend import Backend
from orchestrator.errors import Conflict, EngineError, EngineUnavailable, UnknownService, UnknownStack, UserError
from orchestrator.ingress.routes import IngressRoutes
from orchestrator.labels import spec_hash
from orchestrator.loop.desired import DesiredState
from orchestrator.loop.executor import Executor
from orchestrator.loop.port_claims import PortClaims
from orchestrator.loop.removal import Removals
from orchestrator.loop.store import StackRecord
from orchestrator.model.plan import UpdateStatus
from orchestrator.model.spec import StackSpec
from orchestrator.planning import updates
from orchestrator.planning.replica_limits import check_replicas
from orchestrator.planning.restarts import RestartBook
from orchestrator.publishing import events
from orchestrator.publishing.events import Event
from orchestrator.settings import Settings
from orchestrator.views import DeployOutcome, DeployResult, RemoveOutcome

log = structlog.stdlib.get_logger()


class StackCommands:
    def __init__(
        self,
        desired: DesiredState,
        backend: Backend,
        executor: Executor,
        book: RestartBook,
        removals: Removals,
        settings: Settings,
        emit: Callable[[Event], None],
        mark_dirty: Callable[[str], None],
        routes: IngressRoutes | None = None,
    ) -> None:
        self._desired = desired
        self._backend = backend
        self._executor = executor
        self._book = book
        self._removals = removals
        self._settings = settings
        self._emit = emit
        self._mark_dirty = mark_dirty
        self._ports = PortClaims(desired, routes)

    async def deploy(self, spec: StackSpec) -> DeployOutcome:
        async with self._desired.lock:
            first = self._desired.get(spec.name)
            if first is not None:
                self.changeable(first)
            self._ports.check(spec)
            after = StackRecord(spec=spec, scale={}).replicas()
            self._check_replica_limits(spec.name, after, "services.{}.deploy.replicas")
            await self._backend.check_external(spec)  # read-only: nothing to undo
            claimed = await self._ports.bind_new(spec, first)
            # From here to the write nothing awaits: `old` is the record as it is now, with
            # whatever update statuses a pass wrote while the checks above awaited.
            old = self._desired.get(spec.name)
            changed = _changed_services(old.spec if old else None, spec)
            now = time.time()
            record = StackRecord(
                spec=spec,
                scale={},
                generation=(old.generation + 1) if old else 1,
                deployed_at=now,
                updates=_updates_after_deploy(old, spec, changed, now),
            )
            unchanged = old is not None and old.spec == spec and not old.scale
            result: DeployResult = "created" if old is None else ("unchanged" if unchanged else "updated")
            # Saved before the backend is touched: whatever it creates from here on, a record
            # explains (and a daemon killed meanwhile carries on from it).
            try:
                self._desired.put(record)
            except BaseException:
                await self._ports.release(spec.name, claimed)
                raise
            self._executor.forget_images()
            try:
                await self._prepare_engine_objects(record, old)
            except BaseException:  # undone: the ports this deploy bound are not the stack's
                await self._ports.release(spec.name, claimed)
                raise
            # Swarm's "until the next deploy": given-up slots get a fresh history.
            self._book.reset(spec.name)
            self._emit(events.stack_deployed(spec.name, result))
            replicas = record.replicas()
            for service, status in record.updates.items():
                previous = old.updates.get(service) if old else None
                event = events.update_transition(spec.name, service, previous, status, replicas[service])
                if event is not None:
                    self._emit(event)
            self._mark_dirty(spec.name)
            log.info("stack_deployed", stack=spec.name, result=result, changed=list(changed))
            return DeployOutcome(spec.name, result, tuple(changed), spec.warnings)

    def _check_replica_limits(self, stack: str, after: Mapping[str, int], path: str = "{}") -> None:
        record = self._desired.get(stack)
        others = sum(sum(r.replicas().values()) for name, r in self._desired.items() if name != stack)
        settings = self._settings
        check_replicas(stack, record.replicas() if record else {}, after, others,
                       per_service=settings.max_replicas, total=settings.max_replicas_total, path=path)

    async def _prepare_engine_objects(self, record: StackRecord, old: StackRecord | None) -> None:
        """The stack's networks and volumes, so that the engine's refusal of one (a subnet in
        use, an unknown driver) fails the deploy. Undone when refused: an update goes back to
        the record it replaced; a new stack is removed as `rm` does, durably."""
        try:
            await self._executor.ensure_stack_objects(record.spec)
        except (EngineError, EngineUnavailable, UserError):
            name = record.spec.name
            if old is not None:
                self._desired.put(old)
            else:
                self._desired.put(replace(record, removing=True))
                self._removals.start(name)
            log.warning("deploy_undone", stack=name, new_stack=old is None)
            raise

    async def scale(self, stack: str, counts: Mapping[str, int]) -> None:
        async with self._desired.lock:
            record = self.changeable(self.record(stack))
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
            self._desired.put(record)
            for service, count in counts.items():
                self._book.reset(stack, service)
                self._emit(events.service_scaled(stack, service, count))
            self._mark_dirty(stack)

    async def remove(self, stack: str, *, volumes: bool = False) -> RemoveOutcome:
        """Durable from the moment the record says `removing` (orchestrator/loop/removal.py);
        waits until the stack is gone, or answers that the removal goes on while the engine
        refuses. Asked again, it reports on the same removal (and adds the volumes if asked now)."""
        async with self._desired.lock:
            record = self.record(stack)
            if not record.removing or (volumes and not record.remove_volumes):
                record = replace(record, removing=True, remove_volumes=record.remove_volumes or volumes)
                self._desired.put(record)
            removal = self._removals.start(stack)
        await self._removals.wait(removal)
        if removal.done.is_set():
            return RemoveOutcome(stack, True, record.remove_volumes)
        message = removal.reason or "the daemon is still removing it"
        return RemoveOutcome(stack, False, record.remove_volumes, "removing", message)

    async def rollback(self, stack: str, service: str) -> None:
        """Back to the spec the service had before its last update (swarm's `service rollback`)."""
        async with self._desired.lock:
            record = self.changeable(self.record(stack))
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
            self._desired.put(record)
            self._executor.forget_images()
            self._emit(events.update_rollback_started(stack, service, record.replicas()[service], rolled.reason))
            self._mark_dirty(stack)
            log.info("rollback_started", stack=stack, service=service)

    def record(self, stack: str) -> StackRecord:
        """The stack's record, also while it is being removed (the views show that)."""
        record = self._desired.get(stack)
        if record is None:
            raise UnknownStack(stack)
        return record

    def changeable(self, record: StackRecord) -> StackRecord:
        if record.removing:
            name = record.spec.name
            why = self._removals.reason(name)
            raise Conflict(f"stack {name} is being removed{f' ({why})' if why else ''}; "
                           "deploy it again once `orchestrator ls` no longer lists it")
        return record


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


def _changed_services(old: StackSpec | None, new: StackSpec) -> list[str]:
    """Services that get new containers: every one of a new stack, else the added ones and
    those whose spec hash changed (`deploy` prints "Creating/Updating service" for each)."""
    before = old.services if old else {}
    return sorted(
        name
        for name, svc in new.services.items()
        if name not in before or spec_hash(before[name]) != spec_hash(svc)
    )


__all__ = ["StackCommands"]
