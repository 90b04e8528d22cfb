"""The planner: one stack's desired state + what the engine shows → the actions to converge.

Pure: no I/O, no clock (`now` is a parameter); the restart book is only asked, never told.

Slots work as swarmkit's replicated orchestrator (SEMANTICS.md 2.2):
- A slot is the set of containers labelled with its number; its *current* container is the
  alive one (the newest alive with the current spec hash, else the newest alive), or, when none
  is alive, the newest. Slots are never renumbered.
- Scale-down (more occupied slots than replicas): rank the slots, running first and then by
  lower number, keep the first N and remove every container of the others. So failed or pending
  slots go first, then the highest numbers. Scale-up fills the lowest free numbers from 1, so a
  converged service holds slots 1..N unless a scale-down dropped a low non-running slot.
- A slot whose current container is gone (exited, failed to start) asks the restart book;
  a refused create is retried through the book as well, so never in a tight loop.
- A running replica that turned unhealthy is stopped; the book then counts it as a failure.
- Alive containers with an old spec hash are replaced by a rolling update: `updates.step` says
  how many may start now (parallelism, delay, failure_action; see updates.py) and `_roll` picks
  them; dead ones are replaced at once. A slot whose newest container the daemon stopped on
  purpose (an update's stop whose replacement was refused) is refilled at once as well.
- Two alive containers in one slot: an older-spec one waits until the other is ready (a
  start-first handover) then is stopped; any other extra is removed at once.
- Dead containers beyond `history_limit` per slot (the newest always kept) are removed.
- Containers of services no longer in the spec are removed.
- A service with no container yet waits for its `depends_on` conditions.
Slots in `busy` (an action in flight) are left alone this pass but still count as occupied.

Standbys (docs/standby.md): a created, never started container labelled as a slot's standby is
no task: it is left out of the slot's classification. A restart or replacement in the slot
starts it (CreateTask.standby_id) when it has the current spec hash; stale or surplus standbys,
those of dropped slots and those of services that get none are removed. A slot with a running
current container and no standby gets one (PrepareStandby) only when the rest of the stack is
converged, so standbys never compete with the creates of a deploy, a scale-up or an update.
"""

from __future__ import annotations

import enum
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from orchestrator import labels
from orchestrator.model.observed import ContainerState, SlotKey
from orchestrator.model.plan import (
    Action,
    CreateTask,
    Plan,
    PlanNote,
    PrepareStandby,
    RemoveContainer,
    StopTask,
    UpdateStatus,
)
from orchestrator.model.spec import DependsOn, ServiceSpec, StackSpec
from orchestrator.planning import updates
from orchestrator.planning.restarts import RestartBook
from orchestrator.planning.task_states import ready

REASON_EMPTY = "empty slot"
REASON_RESTART = "restart"
REASON_UPDATE = "update"
REASON_UNHEALTHY = "unhealthy"
REASON_SCALE_DOWN = "scale down"
REASON_DUPLICATE = "duplicate"
REASON_HISTORY = "history limit"
REASON_SERVICE_REMOVED = "service removed"
REASON_NEVER_STARTED = "never started"
REASON_STANDBY_STALE = "standby not needed"

# Containers of one service: slot number -> containers, newest first.
Slots = Mapping[int, Sequence[ContainerState]]


class SlotKind(enum.Enum):
    OK = "ok"
    EXITED = "exited"  # nothing alive; the newest has the current spec: the restart policy decides
    DEAD_STALE = "dead-stale"  # nothing alive; the newest has an old spec: replace
    UNHEALTHY = "unhealthy"  # the current container runs but is unhealthy: stop it
    STALE = "stale"  # alive with an old spec: waits for the rolling update
    UPDATING = "updating"  # mid-update: the replacement is not ready, or failed
    HANDOVER = "handover"  # the replacement is ready: stop the superseded old one
    STUCK = "stuck"  # created but never started, and nobody is starting it (a daemon died)


@dataclass(frozen=True, slots=True)
class SlotView:
    """One slot, classified before anything is decided (as swarmkit's updatableAndDeadSlots)."""

    key: SlotKey
    kind: SlotKind
    containers: tuple[ContainerState, ...]  # newest first
    current: ContainerState
    duplicates: tuple[ContainerState, ...] = ()  # extra alive ones to remove now
    superseded: tuple[ContainerState, ...] = ()  # older-spec alive ones of a start-first update
    failed: ContainerState | None = None  # the dead container the restart policy judges


@dataclass(slots=True)
class _Draft:
    removes: list[RemoveContainer] = field(default_factory=list)
    stops: list[StopTask] = field(default_factory=list)
    creates: list[CreateTask] = field(default_factory=list)
    wakes: list[float] = field(default_factory=list)
    notes: list[PlanNote] = field(default_factory=list)
    updates: dict[str, UpdateStatus] = field(default_factory=dict)
    rollbacks: dict[str, ServiceSpec] = field(default_factory=dict)
    #: Running slots without a standby: they get one if the stack is otherwise converged.
    standbys: list[SlotKey] = field(default_factory=list)

    def finish(self, settled: bool) -> Plan:
        def order(a: Action) -> tuple[str, int, str]:
            return (a.key.service, a.key.slot, getattr(a, "container_id", ""))

        prepares = [PrepareStandby(k) for k in self.standbys] if settled and not (
            self.removes or self.stops or self.creates
        ) else []
        actions: list[Action] = [*self.removes, *self.stops, *self.creates, *prepares]
        kind = {RemoveContainer: 0, StopTask: 1, CreateTask: 2, PrepareStandby: 3}
        actions.sort(key=lambda a: (kind[type(a)], *order(a)))
        wake_at = min(self.wakes, default=None)
        return Plan(tuple(actions), wake_at, tuple(self.notes), self.updates, self.rollbacks)


@dataclass(frozen=True, slots=True)
class _Context:
    """What deciding about one service needs besides its slots."""

    spec: ServiceSpec
    stack: str
    want: str  # the service's current spec hash
    book: RestartBook
    now: float
    history_limit: int
    update: UpdateStatus | None = None
    #: Containers the daemon stopped on purpose.
    stopped: AbstractSet[str] = frozenset()

    @property
    def keeps_standbys(self) -> bool:
        """Only a replicated service whose containers may be restarted has standbys."""
        return self.spec.mode == "replicated" and self.spec.restart_policy.condition != "none"


def plan(
    stack: StackSpec,
    replicas: Mapping[str, int],
    observed: Sequence[ContainerState],
    book: RestartBook,
    now: float,
    busy: AbstractSet[SlotKey] = frozenset(),
    history_limit: int = 5,
    update_status: Mapping[str, UpdateStatus] | None = None,
    stopped: AbstractSet[str] = frozenset(),
) -> Plan:
    """The actions that bring `stack` towards its desired state, and when to look again.

    `replicas`: effective count per service (scale overrides applied, `mode: global` = 1);
    `observed`: every container of the stack, exited ones included; `update_status`: each
    service's rolling update, if it has one; `stopped`: containers the daemon stopped on purpose.
    """
    statuses = update_status or {}
    draft = _Draft()
    by_service = _group(c for c in observed if c.key.stack == stack.name)
    for name in sorted(by_service.keys() - stack.services.keys()):
        for containers in by_service[name].values():
            _remove(draft, containers, REASON_SERVICE_REMOVED, busy)
    for name, spec in sorted(stack.services.items()):
        slots = by_service.get(name, {})
        ctx = _Context(
            spec, stack.name, labels.spec_hash(spec), book, now, history_limit,
            statuses.get(name), stopped,
        )  # fmt: skip
        busy_slots = {k.slot for k in busy if (k.stack, k.service) == (stack.name, name)}
        first_start = not slots and not busy_slots
        if first_start and not _dependencies_met(spec, stack, replicas, by_service):
            continue
        _plan_service(draft, ctx, slots, busy_slots, _desired(stack, replicas, name))
    return draft.finish(settled=not any(k.stack == stack.name for k in busy))


def _plan_service(
    draft: _Draft, ctx: _Context, all_slots: Slots, busy: set[int], replicas: int
) -> None:
    slots, spare = _split_standbys(all_slots)
    keep, drop = choose_slots(slots, busy, replicas)
    for number in drop:
        if number not in busy:
            _remove(draft, all_slots.get(number, ()), REASON_SCALE_DOWN)
    filled = free_slots(keep, replicas - len(keep))
    standby: dict[int, ContainerState] = {}
    for number, waiting in spare.items():
        if number in busy or number in drop:
            continue  # in flight: maybe being made or started; dropped: removed above
        usable = ctx.keeps_standbys and (number in keep or number in filled)
        # Only a waiting one can be started; one removing (the engine is at it) or dead (its
        # removal failed) is on its way out.
        first = next(
            (c for c in waiting if usable and c.status == "created" and c.spec_hash == ctx.want), None
        )
        if first is not None:
            standby[number] = first
        unneeded = [c for c in waiting if c is not first and c.status != "removing"]
        _remove(draft, unneeded, REASON_STANDBY_STALE)
    views = [
        classify(SlotKey(ctx.stack, ctx.spec.name, n), slots[n], ctx.want)
        for n in keep
        if n in slots and n not in busy
    ]
    for view in views:
        _prune(draft, view, ctx.history_limit)
        _decide(draft, ctx, view, standby.get(view.key.slot))
        if view.kind is SlotKind.OK and ctx.keeps_standbys and view.key.slot not in standby:
            if view.current.status == "running":
                draft.standbys.append(view.key)
    stale = [v for v in views if v.kind is SlotKind.STALE]
    in_progress = sorted(set(busy) & set(keep) | {v.key.slot for v in views if _in_progress(v)})
    budget = _update_budget(draft, ctx, slots, keep, stale, in_progress)
    _roll(draft, ctx, stale, budget)
    for number in filled:
        key = SlotKey(ctx.stack, ctx.spec.name, number)
        _create(draft, ctx, key, None, REASON_EMPTY, standby.get(number))


def _split_standbys(slots: Slots) -> tuple[dict[int, list[ContainerState]], dict[int, list[ContainerState]]]:
    """(the slots' tasks, their waiting standbys), both newest first; a slot holding only
    standbys is not occupied."""
    tasks: dict[int, list[ContainerState]] = {}
    spare: dict[int, list[ContainerState]] = {}
    for number, containers in slots.items():
        for c in containers:
            (spare if c.is_standby else tasks).setdefault(number, []).append(c)
    return tasks, spare


def free_slots(occupied: Iterable[int], count: int) -> list[int]:
    """The `count` lowest slot numbers (from 1) not in `occupied`."""
    taken = set(occupied)
    return [n for n in range(1, len(taken) + count + 1) if n not in taken][: max(count, 0)]


def choose_slots(
    slots: Slots, busy: AbstractSet[int], replicas: int
) -> tuple[list[int], list[int]]:
    """(slots to keep, slots to remove): swarmkit's scale-down order, running slots first and
    then lower numbers; a busy slot with no container yet counts as occupied, not running."""
    occupied = set(slots) | set(busy)

    def rank(number: int) -> tuple[bool, int]:
        running = any(c.status == "running" for c in slots.get(number, ()))
        return (not running, number)

    ranked = sorted(occupied, key=rank)
    return sorted(ranked[: max(replicas, 0)]), sorted(ranked[max(replicas, 0) :])


def classify(key: SlotKey, containers: Sequence[ContainerState], want: str) -> SlotView:
    """Sort out one slot's containers (newest first, at least one) against spec hash `want`."""
    ordered = tuple(containers)
    alive = [c for c in ordered if c.alive]
    if not alive:
        newest = ordered[0]
        if newest.spec_hash == want:
            return SlotView(key, SlotKind.EXITED, ordered, newest, failed=newest)
        return SlotView(key, SlotKind.DEAD_STALE, ordered, newest)
    current = next((c for c in alive if c.spec_hash == want), alive[0])
    extras = [c for c in alive if c is not current]
    superseded = tuple(c for c in extras if current.spec_hash == want and c.spec_hash != want)
    duplicates = tuple(c for c in extras if c not in superseded)
    kind, failed = _alive_kind(ordered[0], current, bool(superseded), want)
    return SlotView(key, kind, ordered, current, duplicates, superseded, failed)


def _alive_kind(
    newest: ContainerState, current: ContainerState, handing_over: bool, want: str
) -> tuple[SlotKind, ContainerState | None]:
    if current.status == "created":  # the slot is not busy, so no start is coming
        return SlotKind.STUCK, None
    if current.status == "running" and current.health == "unhealthy":
        return SlotKind.UNHEALTHY, None
    if handing_over:
        return (SlotKind.HANDOVER if ready(current) else SlotKind.UPDATING), None
    if current.spec_hash != want:
        if newest is not current and newest.spec_hash == want and not newest.alive:
            return SlotKind.UPDATING, newest  # a start-first replacement died: restart policy
        return SlotKind.STALE, None
    return SlotKind.OK, None


def _in_progress(view: SlotView) -> bool:
    """Mid-replacement: the next slot of an update waits for this one."""
    if view.kind in (SlotKind.UPDATING, SlotKind.HANDOVER, SlotKind.DEAD_STALE):
        return True
    return view.kind is SlotKind.OK and view.current.alive and not ready(view.current)


def _update_budget(
    draft: _Draft,
    ctx: _Context,
    slots: Slots,
    keep: Sequence[int],
    stale: Sequence[SlotView],
    in_progress: Sequence[int],
) -> int:
    """How many stale slots may start being replaced now; records the update's new status."""
    config = ctx.spec.update_config
    if ctx.update is None:  # no recorded update (state from an older daemon): parallelism only
        tokens = len(stale) if config.parallelism <= 0 else config.parallelism - len(in_progress)
        return max(tokens, 0)
    status = ctx.update
    monitor = updates.config_of(status, ctx.spec).monitor
    members = [c for n in keep for c in slots.get(n, ())]
    rejections = {}
    for n in keep:
        key = SlotKey(ctx.stack, ctx.spec.name, n)
        at = ctx.book.rejected_at(key, status.target_hash)
        if at is not None:
            rejections[n] = (at, ctx.book.rejection(key, status.target_hash) or "")
    progress = updates.Progress(
        stale=tuple(v.key.slot for v in stale),
        in_progress=tuple(in_progress),
        versions={n: _version(slots.get(n, ())) for n in keep},
        failures=updates.task_failures(status, monitor, members, ctx.stopped, rejections, ctx.now),
    )
    result = updates.step(status, ctx.spec, progress, ctx.now)
    draft.updates[ctx.spec.name] = result.status
    _wait(draft, result.wake_at)
    if result.rollback_to is not None:
        draft.rollbacks[ctx.spec.name] = result.rollback_to
        # nothing more is created from the spec being left; the next pass plans the way back
        draft.creates = [a for a in draft.creates if a.key.service != ctx.spec.name]
    return result.budget


def _version(containers: Sequence[ContainerState]) -> str | None:
    """The spec hash a slot runs: its newest alive container's (None: nothing alive)."""
    return next((c.spec_hash for c in containers if c.alive), None)


def _decide(
    draft: _Draft, ctx: _Context, view: SlotView, standby: ContainerState | None
) -> None:
    _remove(draft, view.duplicates, REASON_DUPLICATE)
    if view.kind is SlotKind.UNHEALTHY:
        draft.stops.append(StopTask(view.key, view.current.id, REASON_UNHEALTHY))
    elif view.kind is SlotKind.STUCK:  # removed, the next pass fills the slot as new
        _remove(draft, [view.current], REASON_NEVER_STARTED)
    elif view.kind is SlotKind.HANDOVER:
        draft.stops += [StopTask(view.key, c.id, REASON_UPDATE) for c in view.superseded]
    elif view.kind is SlotKind.DEAD_STALE or (
        view.kind is SlotKind.EXITED and view.current.id in ctx.stopped
    ):
        _create(draft, ctx, view.key, None, REASON_UPDATE, standby)
    elif view.failed is not None:  # EXITED, or UPDATING after a failed replacement
        _create(draft, ctx, view.key, view.failed, REASON_RESTART, standby)


def _roll(draft: _Draft, ctx: _Context, stale: list[SlotView], budget: int) -> None:
    """The rolling update: start replacing up to `budget` stale slots, in the order of
    update_config (or rollback_config). Slots whose replacement was refused go first, since
    they are mid-update too; then lowest slot first."""
    config = updates.config_of(ctx.update, ctx.spec) if ctx.update else ctx.spec.update_config
    stale = sorted(stale, key=lambda v: (ctx.book.rejection(v.key, ctx.want) is None, v.key.slot))
    for view in stale[: max(budget, 0)]:
        decision = ctx.book.decide(view.key, ctx.want, ctx.spec.restart_policy, None, ctx.now)
        if not decision.due(ctx.now):
            _wait(draft, decision.not_before)
            continue
        if config.order == "stop-first":
            draft.stops.append(StopTask(view.key, view.current.id, REASON_UPDATE))
        draft.creates.append(CreateTask(view.key, REASON_UPDATE, decision.attempt))


def _create(
    draft: _Draft,
    ctx: _Context,
    key: SlotKey,
    failed: ContainerState | None,
    reason: str,
    standby: ContainerState | None = None,
) -> None:
    """Create in `key` now, later (wake_at) or never, as the restart book says; by starting
    the slot's `standby` if it has one. A slot that will not restart loses its standby."""
    decision = ctx.book.decide(key, ctx.want, ctx.spec.restart_policy, failed, ctx.now)
    failed_id = failed.id if failed else None
    if standby is not None and not decision.restart:
        _remove(draft, [standby], REASON_STANDBY_STALE)
    if decision.due(ctx.now):
        draft.creates.append(CreateTask(
            key, reason, decision.attempt,
            standby.id if standby else None, standby.task_id if standby else "",
        ))  # fmt: skip
    elif decision.restart:
        _wait(draft, decision.not_before)
        draft.notes.append(
            PlanNote("restart_scheduled", key, failed_id, decision.reason, decision.not_before)
        )
    elif decision.gave_up:
        draft.notes.append(PlanNote("gave_up", key, failed_id, decision.reason))


def _wait(draft: _Draft, not_before: float | None) -> None:
    # None: not restarting at all, nothing to wake up for. A time that is not finite (an
    # update_config delay of .inf) never comes: waking for it would only hide the periodic resync.
    if not_before is not None and math.isfinite(not_before):
        draft.wakes.append(not_before)


def _prune(draft: _Draft, view: SlotView, history_limit: int) -> None:
    """Keep at most `history_limit` dead containers (Swarm's task history); never the newest."""
    if history_limit < 0:
        return
    dead = [c for c in view.containers if not c.alive]
    keep = max(history_limit, 1) if dead and dead[0] is view.containers[0] else history_limit
    _remove(draft, dead[keep:], REASON_HISTORY)


def _remove(
    draft: _Draft,
    containers: Sequence[ContainerState],
    reason: str,
    busy: AbstractSet[SlotKey] = frozenset(),
) -> None:
    draft.removes += [
        RemoveContainer(c.key, c.id, reason, c.is_standby) for c in containers if c.key not in busy
    ]


def _group(containers: Iterable[ContainerState]) -> dict[str, dict[int, list[ContainerState]]]:
    """service -> slot -> containers, newest first."""
    grouped: dict[str, dict[int, list[ContainerState]]] = defaultdict(lambda: defaultdict(list))
    for container in containers:
        grouped[container.key.service][container.key.slot].append(container)
    for slots in grouped.values():
        for members in slots.values():
            members.sort(key=lambda c: (c.created_at, c.id), reverse=True)
    return grouped


def _desired(stack: StackSpec, replicas: Mapping[str, int], name: str) -> int:
    spec = stack.services.get(name)
    if spec is None:
        return 0
    default = 1 if spec.mode == "global" else spec.replicas
    return max(replicas.get(name, default), 0)


def _dependencies_met(
    spec: ServiceSpec,
    stack: StackSpec,
    replicas: Mapping[str, int],
    by_service: Mapping[str, Slots],
) -> bool:
    """depends_on, for a service's first start. A dependency with no replicas wanted (scaled to
    0, or not in the stack: the stack file validator's business) does not hold anyone back."""
    return all(
        _desired(stack, replicas, dep.service) == 0
        or any(_satisfies(dep, c) for cs in by_service.get(dep.service, {}).values() for c in cs)
        for dep in spec.depends_on
    )


def _satisfies(dep: DependsOn, container: ContainerState) -> bool:
    if dep.condition == "service_completed_successfully":
        return container.status == "exited" and container.exit_code == 0
    if dep.condition == "service_healthy":
        return ready(container)
    return container.status == "running"
