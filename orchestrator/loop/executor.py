"""Carries out planned actions against the engine without ever blocking the reconcile loop.

Actions for one slot run in order in one task (a stop-first replacement is "remove, then
create"); different slots run concurrently, at most `concurrency` creations at once, served
fairly (fair_limit.py: restarts first, then stacks and services in turn, standbys last; a stack
with more work yields to lighter work and to a deploy's networks), so no stack's bulk work holds
up another's, in the daemon's queue or in the engine's. Stops and removals have a wider bound of
their own: a stop mostly waits (for the stop signal to work, at worst out a grace period), so a
scale-down of many replicas takes one grace period, not one per `concurrency` of them, and an
`rm` of 1,000 goes at the engine's pace (as `docker rm -f` of them all does), never behind
another stack's creates.
While a slot's task runs the slot is *busy* and the planner leaves it alone; when the task ends
the stack is marked dirty so the next pass sees the result.

A stack's networks and volumes are made sure of before its first container (and again after a
deploy, an engine reconnect or a refused create): a deploy saves its record before it touches the
engine, so a daemon killed in between finds them missing (docs/design-notes.md, crash safety).

No failure of an action may turn into a hot loop (docs/design-notes.md, "Containment"):
- A create or start that fails for any reason (the engine refused it, the engine went away,
  or building the request raised: a value nobody checked, a bug) ends its task `rejected` with
  a short reason, which `ps` and the `task.state` event show, and is recorded in the restart
  book, so the slot is retried under its restart policy's backoff. An error that is not the
  engine's is named "internal error: <type>: <message>"; its traceback is logged once per slot
  and kind of error, not on every retry.
- A removal, stop or standby preparation that fails keeps its slot busy for a backoff (per
  slot, doubling up to the restart backoff's cap) before the planner may try again; a standby
  that cannot be prepared is not asked for again until the next deploy or engine reconnect.
"""

from __future__ import annotations

import asyncio
import functools
import secrets
import time
from collections import OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import structlog

from orchestrator import metrics
from orchestrator.backend import Backend
from orchestrator.labels import image_name
from orchestrator.errors import EngineError, EngineUnavailable, UserError
from orchestrator.loop.fair_limit import FairLimit, Urgency
from orchestrator.labels import spec_hash
from orchestrator.model.observed import ContainerState, SlotKey, TaskState
from orchestrator.model.plan import Action, CreateTask, PrepareStandby, RemoveContainer, StopTask
from orchestrator.model.spec import ServiceSpec, StackSpec
from orchestrator.planning.restarts import RestartBook
from orchestrator.loop.store import StackRecord
from orchestrator.model.plan import REASON_RESTART, REASON_UNHEALTHY
from orchestrator.loop.tracker import TaskTracker

log = structlog.stdlib.get_logger()

TASK_ID_BYTES = 6
#: A failure's reason (in events, `ps` and the log) is cut to this many characters.
REASON_LIMIT = 500
#: Creates and starts of ours whose engine event has not come yet, remembered (oldest forgotten
#: first): their events need no pass of their own.
ANSWERS_KEPT = 4096
#: Stops and removals waiting at once. Each holds one of the engine client's 100 pooled
#: connections (a stop for up to its grace period): this leaves room for the creations, relists
#: and inspects meanwhile.
STOPS_AT_ONCE = 64


def new_task_id() -> str:
    return secrets.token_hex(TASK_ID_BYTES)


class Executor:
    def __init__(
        self,
        engine: Backend,
        tracker: TaskTracker,
        book: RestartBook,
        *,
        concurrency: int,
        files_dir: Callable[[str], Path],
        on_done: Callable[[SlotKey], None],
        before_stop: Callable[[str, float], Awaitable[None]] | None = None,
        save_shutdown_marks: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._engine = engine
        self._tracker = tracker
        self._book = book
        self._limit = FairLimit(concurrency)
        self._stops = asyncio.Semaphore(STOPS_AT_ONCE)
        self._files_dir = files_dir
        self._on_done = on_done
        #: Called with (container id, grace period) before a replica is stopped: the ingress
        #: takes it out of rotation and lets its connections finish.
        self._before_stop = before_stop
        #: Returns once the containers marked stopped-on-purpose are on disk (the tracker's).
        self._save_shutdown_marks = save_shutdown_marks
        self._inflight: dict[SlotKey, asyncio.Task[None]] = {}
        #: (container id, "create" or "start") the engine answered us; see `caused`.
        self._answered: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._images_present: set[str] = set()
        #: Slots whose standby the engine refused: not asked again until forget_images (a
        #: deploy or an engine reconnect), or every converged pass would ask again at once.
        self._standby_refused: set[SlotKey] = set()
        #: Per stack, the networks and volumes known to exist (as compared with its spec's).
        self._objects_ready: dict[str, object] = {}
        self._objects_locks: dict[str, asyncio.Lock] = {}
        #: Failed removals/stops in a row per slot: how long the slot is held before a retry.
        self._failures: dict[SlotKey, int] = {}
        #: (slot, exception type) whose traceback was logged: each is logged once.
        self._tracebacks_logged: set[tuple[SlotKey, str]] = set()

    def busy(self) -> frozenset[SlotKey]:
        return frozenset(self._inflight)

    def is_busy(self, key: SlotKey) -> bool:
        """Whether an action of this slot is in flight (its end marks the slot dirty)."""
        return key in self._inflight

    def caused(self, container_id: str, action: str) -> bool:
        """Whether the engine's `action` event of this container answers a create or start of
        ours, whose end marked its slot already (each is answered once)."""
        try:
            del self._answered[(container_id, action)]
        except KeyError:
            return False
        return True

    def forget_answers(self, container_id: str) -> None:
        """The container died or is gone: an answer whose event came before it (while the slot
        was busy) must not hide a later start by someone else."""
        self._answered.pop((container_id, "start"), None)
        self._answered.pop((container_id, "create"), None)

    def _answer(self, container_id: str, action: str) -> None:
        self._answered[(container_id, action)] = None
        if len(self._answered) > ANSWERS_KEPT:  # events that came before the answer left these
            self._answered.popitem(last=False)

    def submit(self, record: StackRecord, actions: Iterable[Action]) -> None:
        by_slot: dict[SlotKey, list[Action]] = defaultdict(list)
        for action in actions:
            if not (isinstance(action, PrepareStandby) and action.key in self._standby_refused):
                by_slot[action.key].append(action)
        for key, slot_actions in by_slot.items():
            if key in self._inflight:
                continue  # the planner skips busy slots; a race with a finishing task is harmless
            task = asyncio.create_task(self._run_slot(record, slot_actions), name=f"slot {key}")
            self._inflight[key] = task
            task.add_done_callback(functools.partial(self._finished, key))

    def _finished(self, key: SlotKey, _task: asyncio.Task[None] | None = None) -> None:
        self._inflight.pop(key, None)
        self._on_done(key)

    async def cancel(self, stack: str | None = None) -> None:
        """Cancel in-flight work (of one stack, or all) and wait until it has stopped."""
        tasks = [t for k, t in self._inflight.items() if stack is None or k.stack == stack]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for key in [k for k in self._failures if stack is None or k.stack == stack]:
            del self._failures[key]
        self._tracebacks_logged = {
            (k, kind) for k, kind in self._tracebacks_logged if stack is not None and k.stack != stack
        }

    async def remove_now(self, record: StackRecord, containers: Iterable[ContainerState]) -> None:
        """Stop (gracefully) and remove these containers, and wait until each is gone or
        refused: `rm`. The first refusal is raised once all have been tried."""
        results = await asyncio.gather(*(
            self._run(record, RemoveContainer(c.key, c.id, "stack removed", c.is_standby))
            for c in containers
        ), return_exceptions=True)  # fmt: skip
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _run_slot(self, record: StackRecord, actions: list[Action]) -> None:
        for action in actions:
            try:
                await self._run(record, action)
            except Exception as exc:  # noqa: BLE001 - any failure is contained (CancelledError is not one)
                await self._hold_after_failure(action, exc)
                return
        self._failures.pop(actions[0].key, None)

    async def _hold_after_failure(self, action: Action, exc: Exception) -> None:
        """A removal or stop failed: keep the slot busy for its backoff, so the next pass
        does not plan the same action again at once. (Creates and starts never get here:
        they end `rejected` and the restart book spaces their retries.)"""
        key = action.key
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = self._book.backoff(failures)
        self._log_failure(
            "action_failed", key, exc, action=type(action).__name__, retry_in_s=round(delay, 3)
        )
        await asyncio.sleep(delay)

    def _log_failure(self, event: str, key: SlotKey, exc: Exception, **fields: object) -> str:
        """Log a failure in one line and return its reason; an error that is not the engine's
        gets its traceback logged too, the first time for this slot and kind of error."""
        reason = exception_reason(exc)
        kind = type(exc).__name__
        if isinstance(exc, (EngineError, EngineUnavailable)) or (key, kind) in self._tracebacks_logged:
            log.warning(event, slot=str(key), reason=reason, **fields)
        else:
            self._tracebacks_logged.add((key, kind))
            log.error(event, slot=str(key), reason=reason, exc_info=exc, **fields)
        return reason

    async def _run(self, record: StackRecord, action: Action) -> None:
        match action:
            case CreateTask(standby_id=str()):  # a replacement's one start: always urgent
                async with self._limit.hold(action.key, Urgency.RESTART):
                    await self._start_standby(record, action)
            case CreateTask():
                async with self._limit.hold(action.key, _urgency(action)):
                    await self._create(record, action)
            case PrepareStandby():
                async with self._limit.hold(action.key, Urgency.STANDBY):
                    await self._prepare_standby(record, action)
            case RemoveContainer(standby=True):
                async with self._stops:
                    await self._engine.remove(action.container_id)  # never started: nothing to stop
                log.info("standby_removed", slot=str(action.key), reason=action.reason,
                         container_id=action.container_id[:12])
            case StopTask():
                if action.reason != REASON_UNHEALTHY:  # an unhealthy replica's stop is a failure
                    await self._mark_shutdown(action.container_id)
                await self._stop(record, action)
            case RemoveContainer():
                await self._mark_shutdown(action.container_id)
                await self._stop(record, action)  # reports its shutdown, with the exit code
                async with self._stops:
                    await self._engine.remove(action.container_id)
                log.info("container_removed", slot=str(action.key), reason=action.reason,
                         container_id=action.container_id[:12])

    async def _mark_shutdown(self, container_id: str) -> None:
        """The daemon stops this container on purpose: its end is `shutdown`, no failure. The
        mark is on disk before the stop is sent (the record first, the engine second), or a
        daemon killed once the engine stopped it would take its exit for a failure."""
        if self._tracker.ended(container_id):
            return  # it died by itself before (history, a failed slot): no write on the way
        self._tracker.mark_shutdown(container_id)
        if self._save_shutdown_marks is not None:
            await self._save_shutdown_marks()

    async def _stop(self, record: StackRecord, action: StopTask | RemoveContainer) -> None:
        grace = _grace(record.spec.services.get(action.key.service))
        if self._before_stop is not None:
            await self._before_stop(action.container_id, grace)
        async with self._stops:
            exit_code = await self._engine.stop(action.container_id, grace)
        self._tracker.stopped(action.container_id, exit_code)

    async def _create(self, record: StackRecord, action: CreateTask) -> None:
        key = action.key
        service = record.spec.services[key.service]
        digest = spec_hash(service)
        task_id = new_task_id()
        self._tracker.advance(key, task_id, TaskState.NEW, reason=action.reason)
        try:
            await self._ensure_stack_objects(record.spec)
            await self._ensure_image(key.stack, service)
            state = await self._engine.create_task(
                record.spec, service, key, digest, self._files_dir(key.stack), task_id=task_id
            )
        except Exception as exc:  # noqa: BLE001 - any failure is a rejected task
            self._images_present.discard(image_name(key.stack, service))
            self._objects_ready.pop(key.stack, None)
            self._reject(action, service, task_id, None, exc)
            return
        self._answer(state.id, "create")
        self._tracker.advance(key, task_id, TaskState.CREATED, container_id=state.id)
        self._book.record_created(
            key, digest, service.restart_policy, state.created_at, action.attempt
        )
        self._tracker.advance(key, task_id, TaskState.STARTING)
        try:
            await self._engine.start(state.id)
        except Exception as exc:  # noqa: BLE001
            self._reject(action, service, task_id, state.id, exc)
            return
        self._answer(state.id, "start")
        self._started(action, task_id, state.short_id)

    def _started(self, action: CreateTask, task_id: str, short_id: str) -> None:
        key = action.key
        # it works again: a later failure of the same kind is news, with its traceback
        self._tracebacks_logged = {(k, kind) for k, kind in self._tracebacks_logged if k != key}
        self._tracker.advance(key, task_id, TaskState.RUNNING)
        if action.reason == REASON_RESTART:
            metrics.RESTARTS.labels(key.stack, key.service).inc()
        log.info("task_started", slot=str(key), reason=action.reason, container_id=short_id,
                 standby=action.standby_id is not None)

    async def _start_standby(self, record: StackRecord, action: CreateTask) -> None:
        """The replacement's whole critical path: one start. Until now the standby was no
        task; it becomes one at `starting` and the book counts it from its start."""
        key, container_id, task_id = action.key, action.standby_id, action.standby_task_id
        assert container_id is not None
        service = record.spec.services[key.service]
        self._book.record_created(
            key, spec_hash(service), service.restart_policy, time.time(), action.attempt
        )
        self._tracker.advance(
            key, task_id, TaskState.STARTING, container_id=container_id, reason=action.reason
        )
        try:
            await self._engine.start(container_id)
        except Exception as exc:  # noqa: BLE001 - any failure is a rejected task
            self._reject(action, service, task_id, container_id, exc)
            return
        self._answer(container_id, "start")
        self._started(action, task_id, container_id[:12])

    async def _prepare_standby(self, record: StackRecord, action: PrepareStandby) -> None:
        key = action.key
        service = record.spec.services[key.service]
        try:
            await self._ensure_stack_objects(record.spec)
            await self._ensure_image(key.stack, service)
            state = await self._engine.create_task(
                record.spec, service, key, spec_hash(service), self._files_dir(key.stack),
                task_id=new_task_id(), standby=True,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - whatever it was, not asked again until a deploy
            self._standby_refused.add(key)
            self._log_failure("standby_refused", key, exc)
            return
        self._answer(state.id, "create")
        log.info("standby_prepared", slot=str(key), container_id=state.short_id)

    def _reject(
        self,
        action: CreateTask,
        service: ServiceSpec,
        task_id: str,
        container_id: str | None,
        exc: Exception,
    ) -> None:
        """The image, the create or the start failed: the task is rejected, retried with backoff.

        A container whose start the engine refused carries the engine's error, and the book
        judges it as a failed container. One that does not (the start never reached the
        engine, or the engine went away) would look like one nobody started: it is removed
        and its slot filled anew, so the book must hold the rejection to space that retry.
        Its creation already counted as the attempt: the rejection does not count again."""
        key = action.key
        reason = self._log_failure("task_rejected", key, exc)
        if container_id is None or not isinstance(exc, EngineError):
            attempt = action.attempt if container_id is None else 0
            self._book.record_rejection(
                key, spec_hash(service), service.restart_policy, time.time(), reason, attempt
            )
        self._tracker.advance(
            key, task_id, TaskState.REJECTED, container_id=container_id, reason=reason
        )

    async def _ensure_image(self, stack: str, service: ServiceSpec) -> None:
        """Present, pulled or built; remembered so a steady state asks the engine only once."""
        name = image_name(stack, service)
        if name not in self._images_present:
            await self._engine.ensure_image(service, stack)
            self._images_present.add(name)

    async def ensure_stack_objects(self, spec: StackSpec) -> None:
        """A deploy's networks and volumes, made before its record is planned: other stacks'
        bulk work yields to it (fair_limit.py), so it does not queue in the engine behind a
        big converge's creates."""
        async with self._limit.beside(spec.name):
            await self._make_stack_objects(spec)

    async def _make_stack_objects(self, spec: StackSpec) -> None:
        """Create the stack's networks and volumes that do not exist yet; remembered, so a
        stack's creates ask the engine once (per deploy or engine reconnect)."""
        wanted = (spec.networks, spec.volumes)
        if self._objects_ready.get(spec.name) == wanted:
            return
        async with self._objects_locks.setdefault(spec.name, asyncio.Lock()):
            if self._objects_ready.get(spec.name) == wanted:
                return  # another slot's create made sure meanwhile
            for network in spec.networks.values():
                await self._engine.ensure_network(spec.name, network)
            for volume in spec.volumes.values():
                await self._engine.ensure_volume(spec.name, volume)
            self._objects_ready[spec.name] = wanted

    async def _ensure_stack_objects(self, spec: StackSpec) -> None:
        try:
            await self._make_stack_objects(spec)  # under the create's permit already
        except UserError as exc:  # an external network removed since the deploy: a refusal
            raise EngineError(0, str(exc)) from exc

    def forget_stack(self, stack: str) -> None:
        """The stack is removed: its networks and volumes are gone."""
        self._objects_ready.pop(stack, None)
        self._objects_locks.pop(stack, None)

    def forget_images(self) -> None:
        """After an engine restart or a deploy: images, networks and volumes may have changed."""
        self._images_present.clear()
        self._standby_refused.clear()
        self._objects_ready.clear()


def exception_reason(exc: Exception) -> str:
    """What went wrong, in one bounded line: the engine's own words for a refusal, else the
    type and message of the error (never its traceback or local variables)."""
    if isinstance(exc, EngineError):
        text = exc.message
    elif isinstance(exc, EngineUnavailable):
        text = f"engine unavailable: {exc}"
    else:
        text = f"internal error: {type(exc).__name__}: {exc}"
    text = " ".join(text.splitlines())  # one line in `ps`, the log and the event
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


def _urgency(action: CreateTask) -> Urgency:
    """A replica that died (or was stopped unhealthy) comes back before any bulk create."""
    return Urgency.RESTART if action.reason == REASON_RESTART else Urgency.BULK


def _grace(service: ServiceSpec | None) -> float:
    return service.stop_grace_period if service is not None else 10.0
