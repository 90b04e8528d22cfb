"""`Backend`: everything the loop needs from the thing that runs containers, as one Protocol.

The loop (reconciler, executor, intake, removal, commands, views) is written against this and
nothing else; `orchestrator.engine.Engine` (one Docker engine, through aiodocker) is its first
implementation and `tests/unit/fake_backend.py` an in-memory one that makes the loop testable in
milliseconds. A backend:

- lists what runs, by stack, as `ContainerState`s: one per *task* (a replica of a slot), carrying
  our labels' facts (stack, service, slot, spec hash, task id) and the runtime's (status, exit
  code, health, address). The planner compares them with the spec; a backend keeps no desired
  state of its own.
- carries out one action per task: create (not started) a task for a slot, start, stop with a
  grace period, remove; and the stack's shared objects: image, networks, volumes (secrets and
  configs travel with the task's create, as files the loop prepared).
- follows what changes, as a stream of `EngineEvent`s since a point in time, which the intake
  turns into "look at this stack again": events carry no truth, every (re)connect is followed by
  a full relist (Resync), so a lossy stream is enough.

docs/architecture.md says how a Swarm backend would implement it (there the unit the engine
keeps is a service, not a container).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Protocol

from orchestrator.model.observed import ContainerState, SlotKey
from orchestrator.model.spec import NetworkSpec, ServiceSpec, StackSpec, VolumeSpec


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """One change the backend reports, as the Docker engine words it."""

    type: str
    #: As the engine sends it, e.g. "die" or "health_status: unhealthy".
    action: str
    actor_id: str
    time_ns: int
    attributes: Mapping[str, str] = field(default_factory=dict)


class EventStream(Protocol):
    """One connection to the backend's event stream: `async with` it, then iterate. It ends
    (or raises EngineUnavailable) when the connection drops; the intake reconnects."""

    async def __aenter__(self) -> EventStream: ...

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def __aiter__(self) -> EventStream: ...

    async def __anext__(self) -> EngineEvent: ...


class Backend(Protocol):
    async def ping(self) -> None:
        """Return when the backend answers; raise EngineUnavailable when it does not."""

    async def close(self) -> None: ...

    def stalled(self) -> str:
        """A call the backend recently left unanswered past its deadline, in words; "" if none.
        A hung engine may still answer `ping`: health reports it unreachable while this is set."""

    async def live_restore(self) -> bool:
        """Whether containers keep running while the backend's daemon restarts (docs/dataplane.md)."""

    def forget_live_restore(self) -> None:
        """The backend reconnected: `live_restore` asks again."""

    async def restart_health_probes(self) -> int:
        """The backend reconnected (its daemon may have restarted, keeping the containers):
        make sure the health of each replica is probed again; how many needed it."""

    # observe --------------------------------------------------------------------------------
    async def list_containers(self, stack: str | None = None, slot: SlotKey | None = None) -> list[ContainerState]:
        """The tasks of one stack (or of all ours; or of one `slot` only), standbys included,
        as they are now."""

    def logs(self, container_id: str, follow: bool, tail: int | None = None) -> AsyncIterator[str]: ...

    def events(
        self, *, stack: str | None = None, actions: Sequence[str] = (), since_ns: int | None = None
    ) -> EventStream: ...

    # act on one task --------------------------------------------------------------------------
    async def create_task(
        self,
        stack: StackSpec,
        service: ServiceSpec,
        key: SlotKey,
        spec_hash: str,
        files_dir: Path,
        task_id: str | None = None,
        standby: bool = False,
    ) -> ContainerState:
        """Create, not start, a task for `key`'s slot; it carries the labels `list_containers`
        reads back (a restarted daemon adopts it through them)."""

    async def start(self, container_id: str) -> None: ...

    async def stop(self, container_id: str, timeout: float) -> int | None:
        """Stop with a grace period; the exit code, when the backend knows it."""

    async def remove(self, container_id: str) -> None: ...

    # a stack's shared objects ---------------------------------------------------------------
    async def ensure_image(self, service: ServiceSpec, stack: str | None = None) -> None: ...

    async def check_external(self, spec: StackSpec) -> None:
        """Read-only: the `external:` networks and volumes exist (UserError if not)."""

    async def ensure_network(self, stack: str, net: NetworkSpec) -> None: ...

    async def ensure_volume(self, stack: str, vol: VolumeSpec) -> None: ...

    async def remove_stack_networks(self, stack: str) -> None: ...

    async def remove_stack_volumes(self, stack: str) -> None: ...


__all__ = ["Backend", "EngineEvent", "EventStream"]
