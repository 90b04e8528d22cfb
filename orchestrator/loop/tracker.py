"""Each replica's task state, published exactly once per transition and in order.

The executor reports what it does (new → created → starting → running, rejected); each reconcile
pass reports what the engine shows (running, complete, failed, shutdown, and removed for a
container that is gone). Transitions only move forward, so a late report never publishes a state
twice or out of order. The tracker is saved with the pass so a restarted daemon does not publish
a transition again; the marks "stopped on purpose" are saved before the stop is sent
(`Reconciler.save_shutdown_marks`), so a daemon killed once the engine stopped a container still
knows that its end is a `shutdown`.

A task rejected before it had a container (image missing, create refused) leaves nothing in the
engine, so the tracker keeps the slot's last such rejection until a container replaces it: `ps`
shows it with its reason, as Swarm does. Kept in memory only: a restarted daemon retries the slot
and meets the same refusal again.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from orchestrator.model.observed import ContainerState, SlotKey, TaskState
from orchestrator.planning.task_states import task_state

#: How many removed task ids are remembered (far more than one relist can lag behind).
_ENDED_KEPT = 4096

_RANK = {
    TaskState.NEW: 0,
    TaskState.CREATED: 1,
    TaskState.STARTING: 2,
    TaskState.RUNNING: 3,
    TaskState.COMPLETE: 4,
    TaskState.FAILED: 4,
    TaskState.SHUTDOWN: 4,
    TaskState.REJECTED: 4,
    TaskState.REMOVED: 5,
}


@dataclass(frozen=True, slots=True)
class Transition:
    key: SlotKey
    task_id: str
    container_id: str | None
    from_state: TaskState
    to_state: TaskState
    exit_code: int | None = None
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Rejection:
    """A slot's last task that the engine refused before any container existed."""

    task_id: str
    reason: str
    at: float


@dataclass(slots=True)
class _Task:
    key: SlotKey
    state: TaskState
    container_id: str | None = None
    #: Tracker tick of the last report: a relist begun before it cannot judge this task.
    tick: int = 0


class TaskTracker:
    def __init__(self, on_transition: Callable[[Transition], None]) -> None:
        self._on_transition = on_transition
        self._tasks: dict[str, _Task] = {}
        #: Indexes of `_tasks` (a stop, a death or a slot's relist costs O(1), not O(tasks)):
        #: container id -> task id, and slot -> its task ids.
        self._by_container: dict[str, str] = {}
        self._by_slot: dict[SlotKey, set[str]] = {}
        #: Containers the daemon stops on purpose (scale-down, update, rm): they end `shutdown`.
        self._shutdown: set[str] = set()
        #: How many containers were added to `_shutdown` so far: whoever saves the tracker
        #: tells by it whether a mark is in what was saved (Reconciler.save_shutdown_marks).
        self.shutdown_marks = 0
        self._rejections: dict[SlotKey, Rejection] = {}
        #: Tasks reported removed lately: never adopted again by a late relist.
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._tick = 0
        self.changed = False
        #: Task ids and shutdown marks changed since the last `take_changes` (journal.py).
        self._unsaved_tasks: set[str] = set()
        self._unsaved_marks: set[str] = set()

    def mark(self) -> int:
        """Call before a relist; pass the result to `observe`."""
        return self._tick

    # reports ------------------------------------------------------------------------------
    def advance(
        self,
        key: SlotKey,
        task_id: str,
        to: TaskState,
        *,
        container_id: str | None = None,
        exit_code: int | None = None,
        reason: str = "",
    ) -> bool:
        """Record `to` for the task if it moves it forward; publish the transition. True if so."""
        task = self._tasks.get(task_id)
        if task is not None and _RANK[to] <= _RANK[task.state]:
            return False
        if task is None and (task_id in self._ended or to is TaskState.REMOVED):
            # Already reported removed (a relist begun before the removal still showed it), or
            # first seen on its way out ("removing"): there is no transition left to publish.
            return False
        if to is TaskState.REMOVED and task is not None:
            if not task.state.terminal:
                # removed while it ran (`docker rm -f` by hand): its death comes first, so that
                # every replica's end is one failed/shutdown message (docs/events.md)
                stopped = task.container_id in self._shutdown
                reason = reason or (
                    "container removed" if stopped else "container removed outside the orchestrator"
                )
                self.advance(key, task_id, TaskState.SHUTDOWN if stopped else TaskState.FAILED,
                             exit_code=exit_code, reason=reason)
            exit_code, reason = None, ""  # the exit code belongs to the death, not the removal
        # Every task begins as `new`; entering it is not a transition, so it is not published.
        previous = task.state if task else TaskState.NEW
        if task is None:
            task = self._tasks[task_id] = _Task(key=key, state=to)
            self._by_slot.setdefault(key, set()).add(task_id)
        self._tick += 1
        task.state = to
        task.tick = self._tick
        self._unsaved_tasks.add(task_id)
        if container_id and task.container_id != container_id:
            task.container_id = container_id
            self._by_container[container_id] = task_id
        self.changed = True
        if to is not TaskState.NEW:
            self._on_transition(
                Transition(key, task_id, task.container_id, previous, to, exit_code, reason)
            )
        if to is TaskState.CREATED:
            self._rejections.pop(key, None)  # a container stands in the slot again
        if to is TaskState.REJECTED and task.container_id is None:
            self._rejections[key] = Rejection(task_id, reason, time.time())
        if to is TaskState.REMOVED or (to is TaskState.REJECTED and task.container_id is None):
            self._drop(task_id, task)
            self._ended[task_id] = None
            if len(self._ended) > _ENDED_KEPT:
                self._ended.popitem(last=False)
            if task.container_id and task.container_id in self._shutdown:
                self._shutdown.discard(task.container_id)
                self._unsaved_marks.add(task.container_id)
        return True

    def _drop(self, task_id: str, task: _Task) -> None:
        del self._tasks[task_id]
        in_slot = self._by_slot.get(task.key)
        if in_slot is not None:
            in_slot.discard(task_id)
            if not in_slot:
                del self._by_slot[task.key]
        if task.container_id and self._by_container.get(task.container_id) == task_id:
            del self._by_container[task.container_id]

    def _task_in(self, container_id: str) -> tuple[str, _Task] | None:
        task_id = self._by_container.get(container_id)
        task = self._tasks.get(task_id) if task_id is not None else None
        return None if task is None or task_id is None else (task_id, task)

    def mark_shutdown(self, container_id: str) -> None:
        if container_id not in self._shutdown:
            self._shutdown.add(container_id)
            self._unsaved_marks.add(container_id)
            self.shutdown_marks += 1
            self.changed = True

    def ended(self, container_id: str) -> bool:
        """Has the task in this container ended already (complete, failed, …)? Its end is
        published: a stop cannot make it a `shutdown` any more."""
        found = self._task_in(container_id)
        return found is not None and found[1].state.terminal

    def rejections(self, stack: str) -> Mapping[SlotKey, Rejection]:
        return {key: r for key, r in self._rejections.items() if key.stack == stack}

    def forget_stack(self, stack: str) -> None:
        for key in [key for key in self._rejections if key.stack == stack]:
            del self._rejections[key]

    def stopped_on_purpose(self) -> frozenset[str]:
        """Containers the daemon stopped deliberately (their end is no failure)."""
        return frozenset(self._shutdown)

    def stopped(self, container_id: str, exit_code: int | None = None) -> bool:
        """A container the daemon stopped on purpose has exited: it is `shutdown` now.

        Reported by whoever stopped it, right after the stop returns, so `running → shutdown`
        is published even when the container is removed before any relist could see it exited.
        """
        found = self._task_in(container_id)
        if container_id not in self._shutdown or found is None:
            return False
        task_id, task = found
        return self.advance(task.key, task_id, TaskState.SHUTDOWN, exit_code=exit_code)

    def exited(self, task_id: str, exit_code: int) -> bool:
        """The engine says the task's container exited with `exit_code` (its `die` event).

        Publishes the end at once, before the relist that the event also asks for, when the
        event alone settles it: `shutdown` if the daemon stopped it, `failed` for a non-zero
        exit. An exit 0 is left to the relist: only an inspect tells whether the container was
        unhealthy or OOM-killed (`failed`) rather than `complete`. The relist then agrees, and
        since transitions only move forward it publishes nothing twice."""
        task = self._tasks.get(task_id)
        if task is None or task.container_id is None:
            return False  # not a task of ours, or one the relist has not met yet
        if task.container_id in self._shutdown:
            to = TaskState.SHUTDOWN
        elif exit_code != 0:
            to = TaskState.FAILED
        else:
            return False
        return self.advance(task.key, task_id, to, exit_code=exit_code)

    def tracks(self, stack: str) -> bool:
        """Does the tracker know a task of `stack` that has not been reported removed yet?"""
        return any(task.key.stack == stack for task in self._tasks.values())

    def stacks(self) -> set[str]:
        """The stacks with a task not reported removed yet."""
        return {task.key.stack for task in self._tasks.values()}

    def knows(self, task_id: str) -> bool:
        return task_id in self._tasks

    def state_of(self, container: ContainerState) -> TaskState:
        task = self._tasks.get(container.task_id)
        if task is not None and task.state is TaskState.REJECTED:
            return TaskState.REJECTED  # its start was refused: published so, shown so
        return task_state(container, stopped_by_us=container.id in self._shutdown)

    def observe(
        self,
        stack: str,
        containers: Iterable[ContainerState],
        mark: int,
        slots: AbstractSet[SlotKey] | None = None,
    ) -> None:
        """Report what one stack's relist (begun at `mark`) showed; vanished tasks are `removed`.
        `slots`: the relist covered only these slots (listing.Scope), so only their tasks can
        have vanished; None: the whole stack."""
        seen = set()
        for container in containers:
            seen.add(container.task_id)
            state = self.state_of(container)
            self.advance(
                container.key,
                container.task_id,
                state,
                container_id=container.id,
                # a `removing` container: advance() gives its exit code to the death it publishes first
                exit_code=container.exit_code if state.terminal else None,
                reason=container.error,
            )
        if slots is None:
            judged = [t for t, task in self._tasks.items() if task.key.stack == stack]
        else:
            judged = [t for key in slots for t in self._by_slot.get(key, ())]
        for task_id in judged:
            task = self._tasks[task_id]
            if task_id not in seen and task.container_id is not None and task.tick <= mark:
                self.advance(task.key, task_id, TaskState.REMOVED)

    # persistence --------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        tasks = {task_id: _task_json(t) for task_id, t in self._tasks.items()}
        return {"tasks": tasks, "shutdown": sorted(self._shutdown)}

    def take_changes(self) -> dict[str, Any]:
        """What changed since the last call, as journal.py saves it: `task:<id>` -> the task's
        record (None: forgotten), `shutdown:<container id>` -> True (None: unmarked)."""
        change: dict[str, Any] = {}
        for task_id in self._unsaved_tasks:
            task = self._tasks.get(task_id)
            change[f"task:{task_id}"] = None if task is None else _task_json(task)
        for container_id in self._unsaved_marks:
            change[f"shutdown:{container_id}"] = True if container_id in self._shutdown else None
        self._unsaved_tasks.clear()
        self._unsaved_marks.clear()
        return change

    def apply_changes(self, change: Mapping[str, Any]) -> None:
        """Replay one `take_changes` on top of a loaded document (at start, before any report)."""
        tasks: dict[str, Any] = {}
        for name, value in change.items():
            kind, _, ident = name.partition(":")
            if kind == "task":
                if value is None:
                    task = self._tasks.get(ident)
                    if task is not None:
                        self._drop(ident, task)
                else:
                    tasks[ident] = value
            elif kind == "shutdown":
                (self._shutdown.add if value else self._shutdown.discard)(ident)
        self.load_json({"tasks": tasks})

    def load_json(self, data: dict[str, Any]) -> None:
        """Inverse of `to_json`; all or nothing (a damaged document raises, loading none of it)."""
        tasks = {
            str(task_id): _Task(
                SlotKey(str(t["stack"]), str(t["service"]), int(t["slot"])),
                TaskState(t["state"]),
                None if t["container_id"] is None else str(t["container_id"]),
            )
            for task_id, t in data.get("tasks", {}).items()
        }
        shutdown = {str(container_id) for container_id in data.get("shutdown", [])}
        for task_id in tasks.keys() & self._tasks.keys():  # a journal's newer record of it
            self._drop(task_id, self._tasks[task_id])
        self._tasks.update(tasks)
        self._shutdown.update(shutdown)
        for task_id, task in tasks.items():
            self._by_slot.setdefault(task.key, set()).add(task_id)
            if task.container_id:
                self._by_container[task.container_id] = task_id


def _task_json(task: _Task) -> dict[str, Any]:
    key = task.key
    return {"stack": key.stack, "service": key.service, "slot": key.slot, "state": task.state.value,
            "container_id": task.container_id}
