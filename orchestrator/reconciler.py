"""The loop at the heart of the daemon: wait for work, then observe → plan → execute → publish.

Level-triggered (DESIGN.md): an engine event only marks its stack (and its slot) dirty. A pass
lists the stack's containers by label (after events, only the slots they named: listing.py),
plans from that view with the pure planner, hands the actions to the executor (which never
blocks the loop) and reports what changed. Work comes from four places:
engine events, the executor finishing a slot, a restart delay running out (the plan's
`wake_at`) or a published port's next bind attempt, and a slow periodic resync that relists
everything as a safety net. Dirty stacks are served in the order they were marked
(dirty_queue.py), so a big stack marked by every event of its converge never starves another.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import replace
from collections.abc import Callable, Iterable, Mapping, Sequence

import structlog

from orchestrator import events, metrics, planner
from orchestrator.dirty_queue import DirtyQueue
from orchestrator.engine import Engine
from orchestrator.errors import EngineUnavailable
from orchestrator.events import Event
from orchestrator.executor import Executor
from orchestrator.ingress_routes import IngressRoutes
from orchestrator.journal import Journal, open_document
from orchestrator.listing import ListingCache, Scope
from orchestrator.intake import ContainerEvent, Disconnected, EventIntake, Resync
from orchestrator.model import ContainerState, PlanNote, ServiceSpec, SlotKey, UpdateStatus
from orchestrator.replica_limits import saved_stack_over_limits
from orchestrator.restarts import RestartBook
from orchestrator.settings import Settings
from orchestrator.store import StackRecord, Store
from orchestrator.tasks import ready
from orchestrator.tracker import TaskTracker, Transition

log = structlog.stdlib.get_logger()

#: Hands one state change to the publisher; never blocks.
Emit = Callable[[Event], None]

BOOK_DOCUMENT = "restarts.json"
TRACKER_DOCUMENT = "tasks.json"
#: Engine actions after which a replica takes no new connections.
_GONE_ACTIONS = frozenset({"die", "kill", "stop", "destroy", "oom"})
#: After a failed pass (engine gone), try that stack again this much later.
RETRY_AFTER_FAILURE = 1.0


class Reconciler:
    def __init__(
        self,
        engine: Engine,
        store: Store,
        settings: Settings,
        emit: Emit,
        routes: IngressRoutes | None = None,
    ) -> None:
        self.engine = engine
        self.routes = routes
        self.store = store
        self.settings = settings
        self.emit = emit
        self.records: dict[str, StackRecord] = store.load_stacks(
            lambda record: saved_stack_over_limits(
                record.replicas(), per_service=settings.max_replicas, services=settings.max_services
            )
        )
        self.book, book_journal = open_book(store, settings)
        self.tracker = TaskTracker(self._on_transition)
        _, changes, tracker_journal = open_document(store, TRACKER_DOCUMENT, lambda d: self.tracker.load_json(d) or True)
        for change in changes:
            self.tracker.apply_changes(change)
        #: Saves write what changed since the last one (journal.py), not the whole documents.
        self._journals = {BOOK_DOCUMENT: book_journal, TRACKER_DOCUMENT: tracker_journal}
        self.executor = Executor(
            engine,
            self.tracker,
            self.book,
            concurrency=settings.concurrency,
            files_dir=store.files_dir,
            on_done=self.mark_slot_dirty,
            before_stop=routes.drain if routes else None,
            save_shutdown_marks=self.save_shutdown_marks,
        )
        #: Each stack's listing between passes; a pass after an event relists only its slot.
        self.listing = ListingCache()
        #: Last relist of each stack: the views (ps, services) read it.
        self.observed: dict[str, list[ContainerState]] = {}
        # and the stacks whose tasks the tracker still follows: a daemon killed right after an
        # `rm` deleted the record has their `removed` still to report
        self._dirty = DirtyQueue([*self.records, *sorted(self.tracker.stacks() - self.records.keys())])
        self._wake = asyncio.Event()
        self._wake_at: dict[str, float] = {}
        self._next_resync = time.monotonic() + settings.resync_interval
        self._service_status: dict[tuple[str, str], tuple[int, int]] = {}
        #: Held while the book and the tracker are written: one write at a time, each of the
        #: state at its start, so a later write never carries an older state.
        self._saving = asyncio.Lock()
        #: tracker.shutdown_marks as of the last tracker write that succeeded.
        self._shutdown_marks_saved = 0
        #: Per stack: the decisions of the last pass (so each is published once).
        self._reported: dict[str, dict[tuple[str, SlotKey, str | None], Event]] = {}
        self.passes = 0
        #: Passes in a row that raised, per stack: their retries back off.
        self._failed_passes: dict[str, int] = {}

    # work intake --------------------------------------------------------------------------
    def mark_dirty(self, stack: str | None = None) -> None:
        """Ask for a pass over one stack, or over every stack (None), that lists it whole."""
        stacks = list(self.records) if stack is None else [stack]
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
        async with contextlib.aclosing(intake.stream()) as items:
            async for item in items:
                match item:
                    case ContainerEvent() if item.stack not in self.records:
                        continue  # another daemon's stack on a shared engine: not ours to watch
                    case ContainerEvent():
                        if self.routes and (item.action in _GONE_ACTIONS or item.health == "unhealthy"):
                            self.routes.container_gone(item.container_id)
                        if item.action == "die" and item.exit_code is not None:
                            # Published now rather than after the pass (docs/events.md, latency).
                            self.tracker.exited(item.task_id, item.exit_code)
                        if item.slot is not None and item.service:
                            self.mark_slot_dirty(SlotKey(item.stack, item.service, item.slot))
                        else:
                            self.mark_dirty(item.stack)
                    case Resync():
                        if disconnected:
                            self.emit(events.engine_reconnected())
                            disconnected = False
                        self.executor.forget_images()
                        self.mark_dirty()
                    case Disconnected():
                        if not disconnected:
                            self.emit(events.engine_disconnected(str(item.error)))
                        disconnected = True

    async def run(self) -> None:
        """Forever: wait for work, then pass over each dirty stack."""
        while True:
            await self._wait_for_work()
            while self._dirty:
                name = self._dirty.pop()
                await self.reconcile_guarded(name)

    async def _wait_for_work(self) -> None:
        if not self._dirty:
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
            self._next_resync = time.monotonic() + self.settings.resync_interval
            self.listing.touch_all()
            self._dirty.update(self.records)

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
            delay = max(RETRY_AFTER_FAILURE, self.book.backoff(failures))
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
        if name not in self.records and not self.tracker.tracks(name):
            # Not ours (another daemon's stack on this engine), or removed and fully reported:
            # nothing to plan and nothing to publish.
            self.observed.pop(name, None)
            self.listing.forget(name)
            if self.routes:
                await self.routes.update(name, None, ())
            return
        mark = self.tracker.mark()
        # A slot busy at any time during the relist may show a half-made container.
        busy_before = self.executor.busy()
        scope = self.listing.take(name)
        try:
            fresh = await self._list(scope)
        except BaseException:
            self.listing.giveback(scope)
            raise
        listed = self.listing.merge(scope, fresh)
        observed = self.tasks_of(listed)  # the planner alone sees the standbys
        reported = observed if scope.whole else self.tasks_of(fresh)  # what the tracker judges
        record = self.records.get(name)  # after the relist: a deploy may have come meanwhile
        if record is None:  # a removed stack: only the end of the tasks it had is reported
            observed = [c for c in observed if self.tracker.knows(c.task_id)]
            reported = [c for c in reported if self.tracker.knows(c.task_id)]
        self.tracker.observe(name, reported, mark, scope.slots)
        self.observed[name] = observed
        self.passes += 1
        if record is None or record.removing:
            if self.routes:
                await self.routes.update(name, None, ())
            return
        now = time.time()
        plan = planner.plan(
            record.spec,
            record.replicas(),
            listed,
            self.book,
            now,
            busy=busy_before | self.executor.busy(),
            history_limit=self.settings.history_limit,
            update_status=record.updates,
            stopped=self.tracker.stopped_on_purpose(),
        )
        self._record_updates(record, plan.updates, plan.rollbacks)
        wakes = [plan.wake_at]
        if self.routes:  # before acting: a start-first replacement is in before the old leaves
            await self.routes.update(name, record.spec, observed)
            wakes.append(self.routes.retry_at(name))  # a published port to try binding again
        wake_at = min((at for at in wakes if at is not None), default=None)
        if wake_at is not None:
            self._wake_at[name] = wake_at
        else:
            self._wake_at.pop(name, None)
        current = self.records.get(name)
        if current is None or current.removing:  # `rm` began meanwhile: nothing to start
            return
        if plan.actions:
            log.info("plan_computed", stack=name, actions=len(plan.actions))
            self.executor.submit(record, plan.actions)
        self._report_decisions(name, plan.notes, observed, now)
        self._report_services(record, observed)
        await self._save_progress()

    async def _list(self, scope: Scope) -> list[ContainerState]:
        """The pass's relist: the whole stack, or each changed slot (one call per slot)."""
        if scope.slots is None:
            return await self.engine.list_containers(scope.stack)
        parts = await asyncio.gather(*(
            self.engine.list_containers(scope.stack, slot=key) for key in scope.slots
        ))  # fmt: skip
        return [c for part in parts for c in part]

    def _record_updates(
        self,
        record: StackRecord,
        statuses: Mapping[str, UpdateStatus],
        rollbacks: Mapping[str, ServiceSpec],
    ) -> None:
        """Keep the updates' new statuses (and a rollback's spec) in the store; publish their
        state changes. A rollback is planned from the next pass."""
        name = record.spec.name
        if all(record.updates.get(s) == st for s, st in statuses.items()) and not rollbacks:
            return
        changed = replace(
            record,
            spec=replace(record.spec, services={**record.spec.services, **rollbacks}),
            updates={**record.updates, **statuses},
        )
        self.store.save_stack(changed)
        self.records[name] = changed
        replicas = changed.replicas()
        for service, status in statuses.items():
            event = events.update_transition(
                name, service, record.updates.get(service), status, replicas.get(service, 0)
            )
            if event is not None:
                self.emit(event)
                log.info("update_state_changed", stack=name, service=service, state=status.state,
                         reason=status.reason)
        if rollbacks:
            self.mark_dirty(name)

    def _report_decisions(
        self, stack: str, notes: Sequence[PlanNote], observed: list[ContainerState], now: float
    ) -> None:
        """task.restart_scheduled / task.gave_up / task.unhealthy when they first appear.

        A plan repeats its notes pass after pass while they hold; only new ones are published.
        """
        current: dict[tuple[str, SlotKey, str | None], Event] = {}
        for note in notes:
            if note.kind == "restart_scheduled":
                delay = round(max(0.0, (note.not_before or now) - now), 3)
                event = events.task_restart_scheduled(note.key, delay, note.reason)
            else:
                event = events.task_gave_up(note.key, note.reason)
            current[(note.kind, note.key, note.container_id)] = replace(
                event, container_id=note.container_id
            )
        for c in observed:
            if c.status == "running" and c.health == "unhealthy":
                reason = "healthcheck failed: the replica is stopped and counts as failed"
                current[("unhealthy", c.key, c.id)] = events.task_unhealthy(c.key, c.id, c.task_id, reason)
        reported = self._reported.get(stack, {})
        for key, event in current.items():
            if key not in reported:
                self.emit(event)
        self._reported[stack] = current

    def tasks_of(self, listed: Iterable[ContainerState]) -> list[ContainerState]:
        """The listed containers that are tasks. A standby is none until started
        (docs/standby.md); one whose start has begun is, though the list may still say created."""
        return [c for c in listed if not c.is_standby or self.tracker.knows(c.task_id)]

    def given_up(self, stack: str) -> dict[str, list[str]]:
        """Per service, why its slots that will not be restarted again gave up (as the last pass
        of `stack` planned them)."""
        reasons: dict[str, list[str]] = {}
        for (kind, key, _), event in self._reported.get(stack, {}).items():
            if kind == "gave_up":
                reasons.setdefault(key.service, []).append(event.reason or "")
        return reasons

    def _report_services(self, record: StackRecord, observed: list[ContainerState]) -> None:
        """Publish service.converged / service.degraded when a service's running count moves."""
        desired = record.replicas()
        running = running_counts(record, observed)
        for service, want in desired.items():
            have = running.get(service, 0)
            key = (record.spec.name, service)
            if self._service_status.get(key) == (have, want):
                continue
            self._service_status[key] = (have, want)
            if have >= want:
                self.emit(events.service_converged(key[0], service, want))
            else:
                reason = f"{have}/{want} replicas running"
                self.emit(events.service_degraded(key[0], service, want, have, reason))

    async def _save_progress(self) -> None:
        """Save the restart book and the tracker if they changed.

        The writes fsync, which can take tens of milliseconds on a busy disk: they run in a
        thread so the loop keeps taking events and sending messages meanwhile. The snapshots
        are taken on the loop once the lock is held, so the writes follow the state's order."""
        async with self._saving:
            await self._write_progress()

    async def save_shutdown_marks(self) -> None:
        """Return once every container marked stopped-on-purpose so far is on disk.

        The executor calls it between marking a container and sending its stop: a daemon killed
        once the engine has stopped it still knows that its end is a `shutdown`, not a failure
        (nor a failed task of an update). A write begun after the caller's mark carries it, so
        the stops of a scale-down or an rm sent at once share one or two writes."""
        wanted = self.tracker.shutdown_marks
        async with self._saving:
            if self._shutdown_marks_saved < wanted:
                await self._write_progress()

    async def _write_progress(self) -> None:
        """The writes of `_save_progress`; the caller holds `_saving`."""
        saves = []  # (journal, what changed, the whole document when it is due for compaction)
        book_journal, tracker_journal = self._journals[BOOK_DOCUMENT], self._journals[TRACKER_DOCUMENT]
        if self.book.changed:
            whole = self.book.to_json() if book_journal.compaction_due else None
            saves.append((book_journal, self.book.take_changes(), whole))
            self.book.changed = False
        marks = None
        if self.tracker.changed:
            whole = self.tracker.to_json() if tracker_journal.compaction_due else None
            saves.append((tracker_journal, self.tracker.take_changes(), whole))
            marks = self.tracker.shutdown_marks
            self.tracker.changed = False
        try:
            for journal, change, whole in saves:
                await asyncio.to_thread(journal.append, change, whole)
        except BaseException:  # not written (cancelled, disk error): the next pass writes all
            for journal, _, _ in saves:
                journal.lost()
            self.book.changed = self.book.changed or any(j is book_journal for j, _, _ in saves)
            self.tracker.changed = self.tracker.changed or any(j is tracker_journal for j, _, _ in saves)
            raise
        if marks is not None:
            self._shutdown_marks_saved = marks

    def _on_transition(self, t: Transition) -> None:
        self.emit(
            events.task_state(
                t.key, t.container_id, t.task_id, t.from_state, t.to_state,
                t.exit_code, t.reason or None,
            )  # fmt: skip
        )

def running_counts(record: StackRecord, observed: list[ContainerState]) -> dict[str, int]:
    """Ready replicas per service (running, and healthy where checked), each slot counted once,
    never more than the service wants (a surplus slot waiting for removal is not a replica)."""
    replicas = record.replicas()
    slots: dict[str, set[int]] = {}
    for c in observed:
        if ready(c):
            slots.setdefault(c.key.service, set()).add(c.key.slot)
    return {service: min(len(found), replicas.get(service, 0)) for service, found in slots.items()}



def load_book(store: Store, settings: Settings) -> RestartBook:
    return open_book(store, settings)[0]


def open_book(store: Store, settings: Settings) -> tuple[RestartBook, Journal]:
    """The restart book as saved (its snapshot and journal), and the journal to save it through."""
    params = dict(
        backoff_base=settings.backoff_base,
        backoff_cap=settings.backoff_cap,
        healthy_run=settings.healthy_run,
    )
    book, changes, journal = open_document(store, BOOK_DOCUMENT, lambda data: RestartBook.from_json(data, **params))
    book = book if book is not None else RestartBook(**params)
    for change in changes:
        book.apply_changes(change)
    return book, journal


__all__ = ["Emit", "Reconciler", "running_counts"]
