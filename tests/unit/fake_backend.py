"""An in-memory `Backend` (orchestrator/backend.py): containers are records in a dict, events go
to every open stream at once. The loop's unit tests drive the real reconciler, executor, intake,
commands and removal over it, in milliseconds; the real engine stays the proof in
tests/integration.

It behaves as the Docker engine does where the loop can tell: a create returns a `created`
container carrying its labels' facts; start/stop/remove change its status and send the engine's
events (start; die with exitCode then stop; destroy) with our labels as attributes; `die()` is a
container exiting by itself. Every action is recorded in `calls`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType

from orchestrator import labels
from orchestrator.backend import EngineEvent
from orchestrator.errors import StuckNetworks, UserError
from orchestrator.model.observed import ContainerState, SlotKey
from orchestrator.model.spec import NetworkSpec, ServiceSpec, StackSpec, VolumeSpec


class FakeEventStream:
    def __init__(self, backend: FakeBackend, stack: str | None) -> None:
        self._backend = backend
        self._stack = stack
        self._queue: asyncio.Queue[EngineEvent | None] = asyncio.Queue()

    async def __aenter__(self) -> FakeEventStream:
        self._backend._streams.append(self)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._backend._streams.remove(self)

    def __aiter__(self) -> FakeEventStream:
        return self

    async def __anext__(self) -> EngineEvent:
        event = await self._queue.get()
        if event is None:
            raise StopAsyncIteration
        return event

    def offer(self, stack: str, event: EngineEvent | None) -> None:
        if event is None or self._stack is None or self._stack == stack:
            self._queue.put_nowait(event)


class FakeBackend:
    def __init__(self) -> None:
        self.containers: dict[str, ContainerState] = {}
        self.calls: list[tuple[str, str]] = []
        #: Every list call: (stack, slot) as asked.
        self.lists: list[tuple[str | None, SlotKey | None]] = []
        #: restart_health_probes calls (one per reconnect after a disconnect).
        self.probe_restarts = 0
        self.networks: set[tuple[str, str]] = set()
        self.volumes: set[tuple[str, str]] = set()
        #: `external:` networks that exist.
        self.external_networks: set[str] = set()
        self._streams: list[FakeEventStream] = []
        #: What `stalled()` reports: set it to play an engine that left a call unanswered.
        self.stalled_call = ""
        #: Networks the engine will not remove (it counts endpoints no container holds).
        self.stuck_networks: set[str] = set()
        #: Per stack, lists of it wait until its event is set.
        self.list_gates: dict[str, asyncio.Event] = {}
        self._ids = itertools.count(1)
        self._clock_ns = time.time_ns()

    # observe --------------------------------------------------------------------------------
    async def ping(self) -> None:
        return None

    def stalled(self) -> str:
        return self.stalled_call

    async def live_restore(self) -> bool:
        return False

    def forget_live_restore(self) -> None:
        return None

    async def restart_health_probes(self) -> int:
        self.probe_restarts += 1
        return 0

    async def close(self) -> None:
        for stream in list(self._streams):
            stream.offer("", None)

    async def list_containers(self, stack: str | None = None, slot: SlotKey | None = None) -> list[ContainerState]:
        self.lists.append((stack, slot))
        if stack in self.list_gates:  # plays an engine slow to answer for this stack
            await self.list_gates[stack].wait()
        return [c for c in self.containers.values()
                if (stack is None or c.key.stack == stack) and (slot is None or c.key == slot)]

    async def logs(self, container_id: str, follow: bool, tail: int | None = None) -> AsyncIterator[str]:
        yield f"log of {container_id}"

    def events(
        self, *, stack: str | None = None, actions: Sequence[str] = (), since_ns: int | None = None
    ) -> FakeEventStream:
        return FakeEventStream(self, stack)

    # act ------------------------------------------------------------------------------------
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
        task_id = task_id or f"t{next(self._ids):04d}"
        container_id = f"c{next(self._ids):011d}"
        created = ContainerState(
            id=container_id, name=labels.container_name(key, task_id), key=key, spec_hash=spec_hash,
            task_id=task_id, created_at=self._now() / 1e9, status="created", standby=standby,
        )
        self.containers[container_id] = created
        self.calls.append(("create", f"{key}{' standby' if standby else ''}"))
        self._send(created, "create")
        return created

    async def start(self, container_id: str) -> None:
        c = self.containers[container_id]
        self.containers[container_id] = replace(c, status="running", started_at=self._now() / 1e9)
        self.calls.append(("start", str(c.key)))
        self._send(c, "start")

    async def stop(self, container_id: str, timeout: float) -> int | None:
        c = self.containers[container_id]
        self.calls.append(("stop", str(c.key)))
        if c.status != "running":
            return c.exit_code
        self._exit(container_id, 0)
        self._send(c, "stop")
        return 0

    async def remove(self, container_id: str) -> None:
        """Forced, as the engine's: a running container is killed first (`die`, exit 137)."""
        if container_id in self.containers and self.containers[container_id].status == "running":
            self._exit(container_id, 137)
        c = self.containers.pop(container_id, None)
        if c is not None:
            self.calls.append(("remove", str(c.key)))
            self._send(c, "destroy")

    def die(self, container_id: str, exit_code: int) -> None:
        """The container's process exits by itself."""
        self._exit(container_id, exit_code)

    # a stack's objects ----------------------------------------------------------------------
    async def ensure_image(self, service: ServiceSpec, stack: str | None = None) -> None:
        return None

    async def check_external(self, spec: StackSpec) -> None:
        for name, net in spec.networks.items():
            if net.external and net.engine_name not in self.external_networks:
                raise UserError(f"networks.{name}: network {net.engine_name} not found")

    async def ensure_network(self, stack: str, net: NetworkSpec) -> None:
        self.networks.add((stack, net.engine_name))

    async def ensure_volume(self, stack: str, vol: VolumeSpec) -> None:
        self.volumes.add((stack, vol.engine_name))

    async def remove_stack_networks(self, stack: str) -> None:
        kept = sorted(name for owner, name in self.networks if owner == stack and name in self.stuck_networks)
        self.networks = {n for n in self.networks if n[0] != stack or n[1] in self.stuck_networks}
        if kept:
            raise StuckNetworks(403, kept)

    async def remove_stack_volumes(self, stack: str) -> None:
        self.volumes = {v for v in self.volumes if v[0] != stack}

    # ----------------------------------------------------------------------------------------
    def _now(self) -> int:
        self._clock_ns = max(self._clock_ns + 1, time.time_ns())
        return self._clock_ns

    def _exit(self, container_id: str, exit_code: int) -> None:
        c = self.containers[container_id]
        self.containers[container_id] = replace(
            c, status="exited", exit_code=exit_code, finished_at=self._now() / 1e9
        )
        self._send(c, "die", exitCode=str(exit_code))

    def _send(self, c: ContainerState, action: str, **extra: str) -> None:
        attributes = {
            labels.LABEL_STACK: c.key.stack,
            labels.LABEL_SERVICE: c.key.service,
            labels.LABEL_SLOT: str(c.key.slot),
            labels.LABEL_TASK_ID: c.task_id,
            **extra,
        }
        event = EngineEvent("container", action, c.id, self._now(), attributes)
        for stream in list(self._streams):
            stream.offer(c.key.stack, event)
