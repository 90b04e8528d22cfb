"""The loop at the heart of the daemon: wait for work, then observe → plan → execute → publish.

Level-triggered (DESIGN.md): an engine event only marks its stack (and its slot) dirty, and
one that brings no news (a signal; the create or start of an action of ours) not even that. A pass
lists the stack's containers by label (after events, only the slots they named: listing.py),
plans from that view with the pure planner, hands the actions to the executor (which never
blocks the loop) and reports what changed. Work comes from four places: engine events, the
executor finishing a slot, a restart delay running out (the plan's `wake_at`) or a published
port's next bind attempt, and a slow periodic resync that relists everything as a safety net.
Dirty stacks are served in the order they were marked (dirty_queue.py), so a big stack marked
by every event of its converge never starves another.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import Callable, Iterable, Mapping, Sequence

import structlog

from orchestrator import metrics
from orchestrator.backend import Backend
from orchestrator.errors import EngineError, EngineUnavailable
from orchestrator.ingress.readiness import PortReadiness
from orchestrator.ingress.routes import IngressRoutes
from orchestrator.loop.desired import DesiredState
from orchestrator.loop.executor import Executor
from orchestrator.loop.dirty_queue import DirtyQueue
from orchestrator.loop.listing import ListingCache, Scope
from orchestrator.loop.intake import ContainerEvent, Disconnected, EventIntake, Resync
from orchestrator.loop.progress import Progress
from orchestrator.loop.reports import PassReports
from orchestrator.loop.tracker import TaskTracker
from orchestrator.model.observed import ContainerState, SlotKey
from orchestrator.model.plan import UpdateStatus
from orchestrator.model.spec import ServiceSpec, StackSpec
from orchestrator.planning import planner
from orchestrator.planning.restarts import RestartBook
from orchestrator.publishing import events
from orchestrator.publishing.events import Event
from orchestrator.settings import Settings

log = structlog.stdlib.get_logger()

#: Hands one state change to the publisher; never blocks.
Emit = Callable[[Event], None]

#: Engine actions after which a replica takes no new connections.
_GONE_ACTIONS = frozenset({"die", "kill", "stop", "destroy", "oom"})
#: Engine actions that need no pass: a signal (`kill`) changes nothing a pass sees until the
#: container dies, and `die` comes (before `stop`) if it does. With the ingress, though, a
#: `kill` took the replica out of rotation at once, and a pass puts back one that outlived it.
_NO_NEWS = frozenset({"kill", "stop"})
#: Engine actions that only the executor's own creates and starts cause. While the slot's action
#: is in flight, its end will mark the slot (and a pass before that plans nothing for a busy
#: slot); once it has the engine's answer, it has marked the slot. Either way the event is no
#: news: without this, a replacement cost two engine lists more, and a converge one per replica
#: (issue 18). A `die` in a busy slot still asks for a pass: the update monitor counts a new
#: task's failure from it while the old task's stop takes its grace period.
_OWN_ACTIONS = frozenset({"create", "start"})
#: After a failed pass (engine gone), try that stack again this much later.
RETRY_AFTER_FAILURE = 1.0
#: Passes over different stacks in flight at once. A pass is mostly one list call's wait for the
#: engine; a few at once keep many stacks' passes from queueing behind each other, without
#: flooding a busy engine with lists.
PASSES_IN_FLIGHT = 8


class Reconciler:
    """Built by the daemon (`daemon.build_loop`) from parts it does not own: the desired state
    (read here; written only through `DesiredState`), the executor, the tracker, the book."""

    def __init__(
        self,
        backend: Backend,
        desired: DesiredState,
        executor: Executor,
        tracker: TaskTracker,
        book: RestartBook,
        progress: Progress,
        reports: PassReports,
        settings: Settings,
        emit: Emit,
        routes: IngressRoutes | None = None,
    ) -> None:
        self._backend = backend
        self._desired = desired
        self._executor = executor
        self._tracker = tracker
        self._book = book
        self._progress = progress
        self._reports = reports
        self._settings = settings
        self._emit = emit
        self._routes = routes
        #: Replicas behind the ingress wait for their port to accept before they count as ready.
        self._readiness = PortReadiness(settings.readiness_window) if routes else None
        self._routes_lock = asyncio.Lock()
        #: Each stack's listing between passes; a pass after an event relists only its slot.
        self.listing = ListingCache()
        #: Last relist of each stack: the views (ps, services) read it.
        self.observed: dict[str, list[ContainerState]] = {}
        # and the stacks whose tasks the tracker still follows: a daemon killed right after an
        # `rm` deleted the record has their `removed` still to report
        #: The passes in flight, by stack: one per stack at a time, up to PASSES_IN_FLIGHT.
        self._passing: dict[str, asyncio.Task[None]] = {}
        self._dirty = DirtyQueue([*desired, *sorted(tracker.stacks() - set(desired))])
        self._wake = asyncio.Event()
        self._wake_at: dict[str, float] = {}
        self._next_resync = time.monotonic() + settings.resync_interval
        self.passes = 0
        #: Passes in a row that raised, per stack: their retries back off.
        self._failed_passes: dict[str, int] = {}

    # work intake --------------------------------------------------------------------------
    def mark_dirty(self, stack: str | None = None) -> None:
        """Ask for a pass over one stack, or over every stack (None), that lists it whole."""
        stacks = list(self._desired) if stack is None else [stack]
        for name in stacks:
            self.listing.touch(name)
        self._dirty.update(stacks)
        self._wake.set()

    def mark_slot_dirty(self, key: SlotKey) -> None:
        """Ask for a pass over `key`'s stack after a change in that slot only (an engine event,
        an action finished): the pass relists the slot, not the stack (listing.py)."""
        self.listing.touch(key.stack, key)
        self._dirty.add(key.stack)
        self._wake.set()

    async def follow(self, intake: EventIntake) -> None:
        """Engine events only mark (our own) stacks dirty; every (re)connect relists everything."""
        disconnected = False
        probes: asyncio.Task[None] | None = None
        try:
            async with contextlib.aclosing(intake.stream()) as items:
                async for item in items:
                    disconnected = self._take(item, disconnected)
                    if isinstance(item, Resync):  # dockerd may have restarted, keeping the replicas
                        if probes is not None:
                            probes.cancel()
                        probes = asyncio.get_running_loop().create_task(self._restart_health_probes())
        finally:
            if probes is not None:
                probes.cancel()

    async def _restart_health_probes(self) -> None:
        try:
            await self._backend.restart_health_probes()
        except (EngineError, EngineUnavailable) as exc:
            log.warning("health_probes_not_restarted", error=str(exc))
        except Exception:  # noqa: BLE001 - a background task: a bug is logged, not lost at exit
            log.exception("health_probes_not_restarted")

    def _take(self, item: ContainerEvent | Resync | Disconnected, disconnected: bool) -> bool:
        """One item of the intake: a container event marks its slot (or stack) dirty, a resync
        every stack. Returns whether the backend is disconnected now."""
        match item:
            case ContainerEvent() if item.stack not in self._desired:
                pass  # another daemon's stack on a shared engine: not ours to watch
            case ContainerEvent():
                if self._routes and (item.action in _GONE_ACTIONS or item.health == "unhealthy"):
                    self._routes.container_gone(item.container_id)
                if item.action == "die" and item.exit_code is not None:
                    # Published now rather than after the pass (docs/events.md, latency).
                    self._tracker.exited(item.task_id, item.exit_code)
                if item.action in ("die", "destroy"):  # its next start is ours only if answered anew
                    self._executor.forget_answers(item.container_id)
                if item.slot is not None and item.service:
                    key = SlotKey(item.stack, item.service, item.slot)
                    if not self._covered(key, item):
                        self.mark_slot_dirty(key)
                else:
                    self.mark_dirty(item.stack)
            case Resync():
                if disconnected:
                    self._emit(events.engine_reconnected())
                self._executor.forget_images()
                self._backend.forget_live_restore()  # dockerd may have restarted
                self.mark_dirty()
                return False
            case Disconnected():
                if not disconnected:
                    self._emit(events.engine_disconnected(str(item.error)))
                return True
        return disconnected

    def _covered(self, key: SlotKey, item: ContainerEvent) -> bool:
        """Whether the event's news comes anyway: with its `die`, or with the end of an action
        of ours (whose remembered answer this event uses up)."""
        if item.action in _NO_NEWS:
            return item.action != "kill" or self._routes is None
        if item.action not in _OWN_ACTIONS:
            return False
        return self._executor.caused(item.container_id, item.action) or self._executor.is_busy(key)

    async def run(self) -> None:
        """Forever: wait for work, then pass over the dirty stacks, each in a task of its own:
        a pass mostly waits for the engine's list, and one stack's must not hold up another's
        (200 stacks deployed at once had their first passes one engine round trip apart)."""
        try:
            while True:
                await self._wait_for_work()
                while len(self._passing) < PASSES_IN_FLIGHT:
                    name = self._dirty.pop_first(excluding=self._passing)
                    if name is None:
                        break  # the dirty stacks left have a pass in flight: they go after it
                    task = asyncio.create_task(self.reconcile_guarded(name), name=f"pass {name}")
                    self._passing[name] = task
                    task.add_done_callback(functools.partial(self._pass_ended, name))
        finally:
            passes = list(self._passing.values())
            for task in passes:
                task.cancel()
            await asyncio.gather(*passes, return_exceptions=True)

    async def _update_routes(self, name: str, spec: StackSpec | None, observed: Sequence[ContainerState]) -> None:
        assert self._routes is not None
        async with self._routes_lock:  # a port may pass from one stack to another: one at a time
            await self._routes.update(name, spec, observed)

    def _pass_ended(self, name: str, _task: asyncio.Task[None]) -> None:
        self._passing.pop(name, None)
        self._wake.set()  # a slot is free, and the stack may have been marked again meanwhile

    @property
    def idle(self) -> bool:
        """No pass running and none asked for (work scheduled for later aside)."""
        return not self._passing and not self._dirty

    def _can_start_a_pass(self) -> bool:
        return len(self._passing) < PASSES_IN_FLIGHT and self._dirty.has_any(excluding=self._passing)

    async def _wait_for_work(self) -> None:
        if not self._can_start_a_pass():
            deadlines = [self._next_resync - time.monotonic()]
            now = time.time()
            deadlines += [at - now for at in self._wake_at.values()]
            try:
                async with asyncio.timeout(max(0.0, min(deadlines))):
                    await self._wake.wait()
            except TimeoutError:
                pass
        self._wake.clear()
        now = time.time()
        for name, at in list(self._wake_at.items()):
            if at <= now:
                del self._wake_at[name]
                self._dirty.add(name)
        if time.monotonic() >= self._next_resync:  # the safety net: every stack listed whole
            self._next_resync = time.monotonic() + self._settings.resync_interval
            self.listing.touch_all()
            self._dirty.update(self._desired)

    # one pass -----------------------------------------------------------------------------
    async def reconcile_guarded(self, name: str) -> None:
        try:
            await self.reconcile(name)
        except asyncio.CancelledError:
            raise
        except EngineUnavailable as exc:
            log.warning("reconcile_deferred_engine_unavailable", stack=name, error=str(exc))
            self._wake_at[name] = time.time() + RETRY_AFTER_FAILURE
        except Exception as exc:  # noqa: BLE001 - a bug or an unforeseen value: contained, backed off
            failures = self._failed_passes[name] = self._failed_passes.get(name, 0) + 1
            delay = max(RETRY_AFTER_FAILURE, self._book.backoff(failures))
            if failures == 1:  # the traceback once per run of failures, not every retry
                log.exception("reconcile_failed", stack=name, retry_in_s=delay)
            else:
                log.warning("reconcile_failed", stack=name, failures=failures, retry_in_s=delay,
                            error=f"{type(exc).__name__}: {exc}"[:500])
            self._wake_at[name] = time.time() + delay
        else:
            self._failed_passes.pop(name, None)

    async def reconcile(self, name: str) -> None:
        """Observe → plan → execute for one stack."""
        with metrics.RECONCILE_PASS_SECONDS.time():
            await self._reconcile(name)

    async def _reconcile(self, name: str) -> None:
        if name not in self._desired and not self._tracker.tracks(name):
            # Not ours (another daemon's stack on this engine), or removed and fully reported:
            # nothing to plan and nothing to publish.
            self.observed.pop(name, None)
            self.listing.forget(name)
            if self._routes:
                await self._update_routes(name, None, ())
            return
        removing = self._desired.get(name)
        if removing is not None and removing.removing:
            # `rm` owns the stack (removal.py): it lists, stops and removes, and the tasks' ends
            # come from its stops and the `die` events. A relist here would inspect containers
            # the engine is removing, waiting for their locks, and every other stack's pass
            # would wait behind it. The pass after the removal lists the stack whole.
            self.listing.touch(name)
            if self._routes:
                await self._update_routes(name, None, ())
            return
        mark = self._tracker.mark()
        # A slot busy at any time during the relist may show a half-made container.
        busy_before = self._executor.busy()
        scope = self.listing.take(name)
        try:
            fresh = await self._list(scope)
        except BaseException:
            self.listing.giveback(scope)
            raise
        listed = self.listing.merge(scope, fresh)
        observed = self.tasks_of(listed)  # the planner alone sees the standbys
        reported = observed if scope.whole else self.tasks_of(fresh)  # what the tracker judges
        record = self._desired.get(name)  # after the relist: a deploy may have come meanwhile
        if record is None:  # a removed stack: only the end of the tasks it had is reported
            observed = [c for c in observed if self._tracker.knows(c.task_id)]
            reported = [c for c in reported if self._tracker.knows(c.task_id)]
        self._tracker.observe(name, reported, mark, scope.slots)
        self.observed[name] = observed
        self.passes += 1
        if record is None or record.removing:
            if self._routes:
                await self._update_routes(name, None, ())
            return
        now = time.time()
        wakes: list[float | None] = []
        if self._readiness is not None:  # still starting, for the plan, the ingress and the counts
            held, probe_again = await self._readiness.hold(record.spec, listed, now)
            listed = [held.get(c.id, c) for c in listed]
            observed = [held.get(c.id, c) for c in observed]
            wakes.append(probe_again)
        plan = planner.plan(
            record.spec,
            record.replicas(),
            listed,
            self._book,
            now,
            busy=busy_before | self._executor.busy(),
            history_limit=self._settings.history_limit,
            update_status=record.updates,
            stopped=self._tracker.stopped_on_purpose(),
        )
        self._record_updates(name, plan.updates, plan.rollbacks)
        wakes.append(plan.wake_at)
        if self._routes:  # before acting: a start-first replacement is in before the old leaves
            await self._update_routes(name, record.spec, observed)
            wakes.append(self._routes.retry_at(name))  # a published port to try binding again
        wake_at = min((at for at in wakes if at is not None), default=None)
        if wake_at is not None:
            self._wake_at[name] = wake_at
        else:
            self._wake_at.pop(name, None)
        current = self._desired.get(name)
        if current is None or current.removing:  # `rm` began meanwhile: nothing to start
            return
        if plan.actions:
            log.info("plan_computed", stack=name, actions=len(plan.actions))
            self._executor.submit(record, plan.actions)
        self._reports.decisions(name, plan.notes, observed, now)
        self._reports.services(record, observed)
        await self._progress.save()

    async def _list(self, scope: Scope) -> list[ContainerState]:
        """The pass's relist: the whole stack, or each changed slot (one call per slot)."""
        if scope.slots is None:
            return await self._backend.list_containers(scope.stack)
        parts = await asyncio.gather(*(
            self._backend.list_containers(scope.stack, slot=key) for key in scope.slots
        ))  # fmt: skip
        return [c for part in parts for c in part]

    def _record_updates(
        self,
        name: str,
        statuses: Mapping[str, UpdateStatus],
        rollbacks: Mapping[str, ServiceSpec],
    ) -> None:
        """Keep the updates' new statuses (and a rollback's spec) in the desired state; publish
        their state changes. A rollback is planned from the next pass."""
        changed = self._desired.record_plan_updates(name, statuses, rollbacks)
        if changed is None:
            return
        before, after = changed
        replicas = after.replicas()
        for service, status in statuses.items():
            event = events.update_transition(
                name, service, before.updates.get(service), status, replicas.get(service, 0)
            )
            if event is not None:
                self._emit(event)
                log.info("update_state_changed", stack=name, service=service, state=status.state,
                         reason=status.reason)
        if rollbacks:
            self.mark_dirty(name)

    async def report_removed(self, stack: str) -> None:
        """A last pass over a stack whose record is gone: publishes `removed` for each task."""
        await self.reconcile_guarded(stack)
        self.observed.pop(stack, None)

    def tasks_of(self, listed: Iterable[ContainerState]) -> list[ContainerState]:
        """The listed containers that are tasks. A standby is none until started
        (docs/standby.md); one whose start has begun is, though the list may still say created."""
        return [c for c in listed if not c.is_standby or self._tracker.knows(c.task_id)]


__all__ = ["Emit", "Reconciler"]
