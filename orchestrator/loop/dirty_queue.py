"""The stacks waiting for a reconcile pass, served in the order they were first marked.

A set popped in hash order let one busy stack starve the others: a big stack converging is
marked dirty again by every event during its own pass, and `set.pop()` may hand it back first
every time, so a small stack's pass (its deploy, a replacement) waited for the whole converge.
Here a stack marked again while it waits keeps its place, and one marked during its own pass
queues behind every stack that was waiting meanwhile: each waits for at most one pass of each
other stack.
"""

from __future__ import annotations

from collections.abc import Container, Iterable


class DirtyQueue:
    def __init__(self, stacks: Iterable[str] = ()) -> None:
        self._order: dict[str, None] = dict.fromkeys(stacks)

    def add(self, stack: str) -> None:
        self._order.setdefault(stack, None)

    def update(self, stacks: Iterable[str]) -> None:
        for stack in stacks:
            self._order.setdefault(stack, None)

    def pop_first(self, excluding: Container[str]) -> str | None:
        """The stack that has waited longest among those not in `excluding` (their pass is in
        flight: they keep their place for after it); None when there is none."""
        for stack in self._order:
            if stack not in excluding:
                del self._order[stack]
                return stack
        return None

    def has_any(self, excluding: Container[str]) -> bool:
        return any(stack not in excluding for stack in self._order)

    def __bool__(self) -> bool:
        return bool(self._order)

    def __contains__(self, stack: object) -> bool:
        return stack in self._order

    def __len__(self) -> int:
        return len(self._order)


__all__ = ["DirtyQueue"]
