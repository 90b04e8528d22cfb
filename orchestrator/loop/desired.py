"""The desired state: the stack records (spec, scale, update statuses), with one owner.

Every change of a record goes through this object, and each is one synchronous step (read the
current record, derive the new one, save it, keep it): no `await` sits between the read and the
write, so two writers on the event loop can never interleave inside one. The writers are the
commands (`loop/commands.py`: deploy, scale, rollback, remove, serialised by `lock` because they
await the engine before their write) and the reconcile pass (`record_plan_updates`: the update
statuses and rollback specs a plan derived). A command derives its record from the record as it
is at the moment of its write, never from one it read before an `await`, so it cannot overwrite
what a pass wrote meanwhile.

Saved before kept: the store's write (atomic) comes first, so a record in memory is always one
that a restarted daemon would also find (docs/design-notes.md, crash safety).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import replace

from orchestrator.loop.store import StackRecord, Store
from orchestrator.model.plan import UpdateStatus
from orchestrator.model.spec import ServiceSpec
from orchestrator.planning.replica_limits import saved_stack_over_limits
from orchestrator.settings import Settings


class DesiredState:
    def __init__(self, store: Store, records: Mapping[str, StackRecord] | None = None) -> None:
        self._store = store
        self._records: dict[str, StackRecord] = dict(records or {})
        #: Held by a command from its first read to its write: two deploys of one stack (or a
        #: deploy and an `rm`) never interleave.
        self.lock = asyncio.Lock()

    @classmethod
    def load(cls, store: Store, settings: Settings) -> DesiredState:
        """The records the store holds; one over today's limits is set aside (store.py)."""
        records = store.load_stacks(
            lambda record: saved_stack_over_limits(
                record.replicas(), per_service=settings.max_replicas, services=settings.max_services
            )
        )
        return cls(store, records)

    # reading ------------------------------------------------------------------------------
    def get(self, stack: str) -> StackRecord | None:
        return self._records.get(stack)

    def __contains__(self, stack: object) -> bool:
        return stack in self._records

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._records))

    def items(self) -> list[tuple[str, StackRecord]]:
        return sorted(self._records.items())

    # writing ------------------------------------------------------------------------------
    def put(self, record: StackRecord) -> None:
        """Save `record` (atomically), then keep it: the one way a record changes."""
        self._store.save_stack(record)
        self._records[record.spec.name] = record

    def delete(self, stack: str) -> None:
        """Forget the stack: its record goes from disk first."""
        self._store.delete_stack(stack)
        self._records.pop(stack, None)

    def record_plan_updates(
        self, stack: str, statuses: Mapping[str, UpdateStatus], rollbacks: Mapping[str, ServiceSpec]
    ) -> tuple[StackRecord, StackRecord] | None:
        """Merge a pass's update statuses (and a rollback's spec) into the current record.
        Returns (before, after), or None when nothing changed (or the stack is gone)."""
        before = self._records.get(stack)
        if before is None:
            return None
        if all(before.updates.get(s) == st for s, st in statuses.items()) and not rollbacks:
            return None
        after = replace(
            before,
            spec=replace(before.spec, services={**before.spec.services, **rollbacks}),
            updates={**before.updates, **statuses},
        )
        self.put(after)
        return before, after


__all__ = ["DesiredState"]
