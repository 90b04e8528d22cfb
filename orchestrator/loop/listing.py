"""Each stack's last listing, kept between passes and relisted only where something changed.

Every engine event names its container's slot (our labels), and every change to a container
comes with an event; so after a full listing, a pass needs to relist only the slots whose
events came since (issue 18). A `die` in a 1,000-replica stack then costs one list call that
returns that slot's few containers, not the stack's 2,000 (replicas and standbys): the engine
builds, and the daemon parses, what changed.

A pass asks `take(stack)` for its `Scope`: the slots to list, or the whole stack. The whole
stack is listed when the cache cannot be trusted to be complete: the stack's first pass, a mark
without a slot (a deploy, a scale, a restart delay running out, a resync, an engine reconnect:
events may have been missed), or more slots changed than `SLOTS_PER_PASS` (a converge: one list
of everything is then cheaper than many). `merge` puts the scope's fresh listing in place of
what it had for those slots and returns the stack's whole view, which the planner reads as it
would a full listing. The periodic resync (every `resync_interval`) relists every stack in full:
the safety net for anything an event did not say.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from orchestrator.model.observed import ContainerState, SlotKey

#: More changed slots than this in one pass: list the whole stack in one call instead.
SLOTS_PER_PASS = 8


@dataclass(frozen=True, slots=True)
class Scope:
    """What one pass lists: `slots` of the stack, or everything (`slots` None)."""

    stack: str
    slots: frozenset[SlotKey] | None = None

    @property
    def whole(self) -> bool:
        return self.slots is None

    def covers(self, key: SlotKey) -> bool:
        return self.slots is None or key in self.slots


class ListingCache:
    def __init__(self) -> None:
        #: stack -> container id -> its state as last listed.
        self._listed: dict[str, dict[str, ContainerState]] = {}
        #: stack -> slots changed since its last pass; None: list the whole stack.
        self._changed: dict[str, set[SlotKey] | None] = {}

    def touch(self, stack: str, key: SlotKey | None = None) -> None:
        """Something changed in the stack (in slot `key`; None: anywhere)."""
        if key is None or stack not in self._listed:
            self._changed[stack] = None
            return
        changed = self._changed.setdefault(stack, set())
        if changed is not None:
            changed.add(key)
            if len(changed) > SLOTS_PER_PASS:
                self._changed[stack] = None

    def touch_all(self) -> None:
        """Events may have been missed (a reconnect) or a resync is due: list everything."""
        for stack in self._listed:
            self._changed[stack] = None

    def take(self, stack: str) -> Scope:
        """What this pass over `stack` must list; the marks are cleared. A pass that nothing
        marked (a caller's own) lists everything."""
        changed = self._changed.pop(stack, None)
        if changed is None or stack not in self._listed:
            return Scope(stack)
        return Scope(stack, frozenset(changed))

    def giveback(self, scope: Scope) -> None:
        """The pass failed before `merge`: its slots are still to be listed."""
        if scope.slots is None:
            self._changed[scope.stack] = None
        else:
            for key in scope.slots:
                self.touch(scope.stack, key)

    def merge(self, scope: Scope, fresh: Iterable[ContainerState]) -> list[ContainerState]:
        """Put a pass's listing in place and return the stack's whole view."""
        if scope.slots is None:
            listed = self._listed[scope.stack] = {c.id: c for c in fresh}
        else:
            listed = self._listed.setdefault(scope.stack, {})
            for container_id in [i for i, c in listed.items() if c.key in scope.slots]:
                del listed[container_id]
            listed.update((c.id, c) for c in fresh if c.key in scope.slots)
        return list(listed.values())

    def forget(self, stack: str) -> None:
        """The stack is gone: nothing of it is kept."""
        self._listed.pop(stack, None)
        self._changed.pop(stack, None)


__all__ = ["SLOTS_PER_PASS", "ListingCache", "Scope"]
