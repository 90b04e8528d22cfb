"""The plan being built for one service (`Draft`), what deciding about it needs
(`ServiceContext`), and the decision for one classified slot: restart, replace, stop, remove,
wait. `planner.py` walks the services and slots and calls these. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from orchestrator.model.observed import ContainerState, SlotKey
from orchestrator.model.plan import (
    REASON_DUPLICATE,
    REASON_HISTORY,
    REASON_NEVER_STARTED,
    REASON_RESTART,
    REASON_STANDBY_STALE,
    REASON_UNHEALTHY,
    REASON_UPDATE,
    Action,
    CreateTask,
    Plan,
    PlanNote,
    PrepareStandby,
    RemoveContainer,
    StopTask,
    UpdateStatus,
)
from orchestrator.model.spec import ServiceSpec
from orchestrator.planning import updates
from orchestrator.planning.restarts import RestartBook
from orchestrator.planning.slots import SlotKind, SlotView


@dataclass(slots=True)
class Draft:
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
class ServiceContext:
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

def decide(
    draft: Draft, ctx: ServiceContext, view: SlotView, standby: ContainerState | None
) -> None:
    remove(draft, view.duplicates, REASON_DUPLICATE)
    if view.kind is SlotKind.UNHEALTHY:
        draft.stops.append(StopTask(view.key, view.current.id, REASON_UNHEALTHY))
    elif view.kind is SlotKind.STUCK:  # removed, the next pass fills the slot as new
        remove(draft, [view.current], REASON_NEVER_STARTED)
    elif view.kind is SlotKind.HANDOVER:
        draft.stops += [StopTask(view.key, c.id, REASON_UPDATE) for c in view.superseded]
    elif view.kind is SlotKind.DEAD_STALE or (
        view.kind is SlotKind.EXITED and view.current.id in ctx.stopped
    ):
        create(draft, ctx, view.key, None, REASON_UPDATE, standby)
    elif view.failed is not None:  # EXITED, or UPDATING after a failed replacement
        create(draft, ctx, view.key, view.failed, REASON_RESTART, standby)

def create(
    draft: Draft,
    ctx: ServiceContext,
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
        remove(draft, [standby], REASON_STANDBY_STALE)
    if decision.due(ctx.now):
        draft.creates.append(CreateTask(
            key, reason, decision.attempt,
            standby.id if standby else None, standby.task_id if standby else "",
        ))  # fmt: skip
    elif decision.restart:
        wait(draft, decision.not_before)
        draft.notes.append(
            PlanNote("restart_scheduled", key, failed_id, decision.reason, decision.not_before)
        )
    elif decision.gave_up:
        draft.notes.append(PlanNote("gave_up", key, failed_id, decision.reason))

def wait(draft: Draft, not_before: float | None) -> None:
    # None: not restarting at all, nothing to wake up for. A time that is not finite (an
    # update_config delay of .inf) never comes: waking for it would only hide the periodic resync.
    if not_before is not None and math.isfinite(not_before):
        draft.wakes.append(not_before)

def prune(draft: Draft, view: SlotView, history_limit: int) -> None:
    """Keep at most `history_limit` dead containers (Swarm's task history); never the newest."""
    if history_limit < 0:
        return
    dead = [c for c in view.containers if not c.alive]
    keep = max(history_limit, 1) if dead and dead[0] is view.containers[0] else history_limit
    remove(draft, dead[keep:], REASON_HISTORY)

def remove(
    draft: Draft,
    containers: Sequence[ContainerState],
    reason: str,
    busy: AbstractSet[SlotKey] = frozenset(),
) -> None:
    draft.removes += [
        RemoveContainer(c.key, c.id, reason, c.is_standby) for c in containers if c.key not in busy
    ]
