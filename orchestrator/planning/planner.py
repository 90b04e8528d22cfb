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

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet

from orchestrator import labels
from orchestrator.model.observed import ContainerState, SlotKey
from orchestrator.model.plan import (
    REASON_EMPTY,
    REASON_UPDATE,
    REASON_SCALE_DOWN,
    REASON_SERVICE_REMOVED,
    REASON_STANDBY_STALE,
    CreateTask,
    Plan,
    PrepareStandby,
    StopTask,
    UpdateStatus,
)
from orchestrator.model.spec import DependsOn, ServiceSpec, StackSpec
from orchestrator.planning import updates
from orchestrator.planning.draft import Draft, ServiceContext, create, decide, prune, remove, wait
from orchestrator.planning.restarts import RestartBook
from orchestrator.planning.slots import (
    SlotKind,
    Slots,
    SlotView,
    choose_slots,
    classify,
    free_slots,
    group_by_service,
    is_in_progress,
    split_standbys,
    version,
)
from orchestrator.planning.task_states import ready


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
    draft = Draft()
    by_service = group_by_service(c for c in observed if c.key.stack == stack.name)
    for name in sorted(by_service.keys() - stack.services.keys()):
        for containers in by_service[name].values():
            remove(draft, containers, REASON_SERVICE_REMOVED, busy)
    for name, spec in sorted(stack.services.items()):
        slots = by_service.get(name, {})
        ctx = ServiceContext(
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
    draft: Draft, ctx: ServiceContext, all_slots: Slots, busy: set[int], replicas: int
) -> None:
    slots, spare = split_standbys(all_slots)
    keep, drop = choose_slots(slots, busy, replicas)
    for number in drop:
        if number not in busy:
            remove(draft, all_slots.get(number, ()), REASON_SCALE_DOWN)
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
        remove(draft, unneeded, REASON_STANDBY_STALE)
    views = [
        classify(SlotKey(ctx.stack, ctx.spec.name, n), slots[n], ctx.want)
        for n in keep
        if n in slots and n not in busy
    ]
    for view in views:
        prune(draft, view, ctx.history_limit)
        decide(draft, ctx, view, standby.get(view.key.slot))
        if view.kind is SlotKind.OK and ctx.keeps_standbys and view.key.slot not in standby:
            if view.current.status == "running":
                draft.standbys.append(view.key)
    stale = [v for v in views if v.kind is SlotKind.STALE]
    in_progress = sorted(set(busy) & set(keep) | {v.key.slot for v in views if is_in_progress(v)})
    budget = _update_budget(draft, ctx, slots, keep, stale, in_progress)
    _roll(draft, ctx, stale, budget)
    for number in filled:
        key = SlotKey(ctx.stack, ctx.spec.name, number)
        create(draft, ctx, key, None, REASON_EMPTY, standby.get(number))


def _update_budget(
    draft: Draft,
    ctx: ServiceContext,
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
        versions={n: version(slots.get(n, ())) for n in keep},
        failures=updates.task_failures(status, monitor, members, ctx.stopped, rejections, ctx.now),
    )
    result = updates.step(status, ctx.spec, progress, ctx.now)
    draft.updates[ctx.spec.name] = result.status
    wait(draft, result.wake_at)
    if result.rollback_to is not None:
        draft.rollbacks[ctx.spec.name] = result.rollback_to
        # nothing more is created from the spec being left; the next pass plans the way back
        draft.creates = [a for a in draft.creates if a.key.service != ctx.spec.name]
    return result.budget


def _roll(draft: Draft, ctx: ServiceContext, stale: list[SlotView], budget: int) -> None:
    """The rolling update: start replacing up to `budget` stale slots, in the order of
    update_config (or rollback_config). Slots whose replacement was refused go first, since
    they are mid-update too; then lowest slot first."""
    config = updates.config_of(ctx.update, ctx.spec) if ctx.update else ctx.spec.update_config
    stale = sorted(stale, key=lambda v: (ctx.book.rejection(v.key, ctx.want) is None, v.key.slot))
    for view in stale[: max(budget, 0)]:
        decision = ctx.book.decide(view.key, ctx.want, ctx.spec.restart_policy, None, ctx.now)
        if not decision.due(ctx.now):
            wait(draft, decision.not_before)
            continue
        if config.order == "stop-first":
            draft.stops.append(StopTask(view.key, view.current.id, REASON_UPDATE))
        draft.creates.append(CreateTask(view.key, REASON_UPDATE, decision.attempt))


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
