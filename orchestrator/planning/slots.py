"""A service's slots, classified before anything is decided (as swarmkit's
updatableAndDeadSlots): which slot numbers to keep or drop on a scale, which are free, and what
state each kept slot is in (ok, exited, stale, updating, handover, stuck…). Pure: no I/O.

A slot is the set of containers labelled with its number; its *current* container is the alive
one (the newest alive with the current spec hash, else the newest alive), or, when none is
alive, the newest. Slots are never renumbered (docs/design-notes.md, point 2).
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from orchestrator.model.observed import ContainerState, SlotKey
from orchestrator.planning.task_states import ready

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

def split_standbys(slots: Slots) -> tuple[dict[int, list[ContainerState]], dict[int, list[ContainerState]]]:
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

def is_in_progress(view: SlotView) -> bool:
    """Mid-replacement: the next slot of an update waits for this one."""
    if view.kind in (SlotKind.UPDATING, SlotKind.HANDOVER, SlotKind.DEAD_STALE):
        return True
    return view.kind is SlotKind.OK and view.current.alive and not ready(view.current)

def version(containers: Sequence[ContainerState]) -> str | None:
    """The spec hash a slot runs: its newest alive container's (None: nothing alive)."""
    return next((c.spec_hash for c in containers if c.alive), None)

def group_by_service(containers: Iterable[ContainerState]) -> dict[str, dict[int, list[ContainerState]]]:
    """service -> slot -> containers, newest first."""
    grouped: dict[str, dict[int, list[ContainerState]]] = defaultdict(lambda: defaultdict(list))
    for container in containers:
        grouped[container.key.service][container.key.slot].append(container)
    for slots in grouped.values():
        for members in slots.values():
            members.sort(key=lambda c: (c.created_at, c.id), reverse=True)
    return grouped
