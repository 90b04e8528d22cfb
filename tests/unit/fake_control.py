"""An in-memory Control for the API's unit tests (STYLE.md allows a fake here: the real
reconciler is exercised by the integration tests). Stack files go through the real loader."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import replace

from orchestrator.views import (
    DeployOutcome,
    HealthView,
    LogLine,
    RemoveOutcome,
    ReplicaCount,
    ServiceView,
    StackView,
    TaskView,
)
from orchestrator.errors import Conflict, UnknownService, UnknownStack
from orchestrator.model.spec import ServiceSpec, StackSpec
from orchestrator.planning.replica_limits import check_replicas
from orchestrator.settings import Settings


class FakeControl:
    """Keeps specs and replica counts; every replica is "running" at once."""

    def __init__(self) -> None:
        self.specs: dict[str, StackSpec] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.previous: dict[tuple[str, str], ServiceSpec] = {}
        self.removed_volumes: list[str] = []
        #: Stacks whose removal the "engine" refuses, with its reason: `remove` answers 202.
        self.refusing_removal: dict[str, str] = {}
        self.healthy = True
        self.log_lines: list[LogLine] = []
        self.deployed_at = time.time() - 5
        #: Running counts a service reports on successive `services` calls (the last one stays).
        self.running_sequence: dict[str, list[int]] = {}
        #: The replica limits, applied by the real check as the controller applies it.
        self.limits = Settings()

    def _check_limits(self, stack: str, after: Mapping[str, int], path: str = "{}") -> None:
        others = sum(sum(c.values()) for name, c in self.counts.items() if name != stack)
        check_replicas(stack, self.counts.get(stack, {}), after, others, path=path,
                       per_service=self.limits.max_replicas, total=self.limits.max_replicas_total)

    async def deploy(self, spec: StackSpec) -> DeployOutcome:
        old = self.specs.get(spec.name)
        self._check_limits(spec.name, {n: s.replicas for n, s in spec.services.items()},
                           "services.{}.deploy.replicas")
        self.specs[spec.name] = spec
        self.counts[spec.name] = {n: s.replicas for n, s in spec.services.items()}
        if old is None:
            return DeployOutcome(spec.name, "created", tuple(spec.services))
        changed = tuple(n for n, s in spec.services.items() if old.services.get(n) != s)
        for n in changed:
            if n in old.services:
                self.previous[(spec.name, n)] = old.services[n]
        return DeployOutcome(spec.name, "updated" if changed else "unchanged", changed)

    async def remove(self, stack: str, *, volumes: bool = False) -> RemoveOutcome:
        self.stack_spec(stack)
        if stack in self.refusing_removal:
            return RemoveOutcome(stack, False, volumes, "removing", self.refusing_removal[stack])
        del self.specs[stack], self.counts[stack]
        if volumes:
            self.removed_volumes.append(stack)
        return RemoveOutcome(stack, True, volumes)

    async def scale(self, stack: str, counts: Mapping[str, int]) -> None:
        spec = self.stack_spec(stack)
        for service in counts:
            if service not in spec.services:
                raise UnknownService(stack, service)
        self._check_limits(stack, {**self.counts[stack], **counts})
        self.counts[stack].update(counts)

    async def rollback(self, stack: str, service: str) -> None:
        spec = self.stack_spec(stack)
        if service not in spec.services:
            raise UnknownService(stack, service)
        previous = self.previous.pop((stack, service), None)
        if previous is None:
            raise Conflict(f"service {stack}_{service} has no previous spec to roll back to")
        self.specs[stack] = replace(spec, services={**spec.services, service: previous})

    def stacks(self) -> Sequence[StackView]:
        return [StackView(name, len(spec.services), sum(self.counts[name].values()),
                          sum(self.counts[name].values()), self.deployed_at, 1)
                for name, spec in sorted(self.specs.items())]

    def stack_spec(self, stack: str) -> StackSpec:
        if stack not in self.specs:
            raise UnknownStack(stack)
        return self.specs[stack]

    async def services(self, stack: str) -> Sequence[ServiceView]:
        spec = self.stack_spec(stack)
        return [ServiceView(stack, n, s.mode, s.image, self.counts[stack][n],
                            self._running(stack, n), "abc123def456")
                for n, s in sorted(spec.services.items())]

    def replica_counts(self) -> Sequence[ReplicaCount]:
        return [ReplicaCount(stack, n, self.counts[stack][n], self._running(stack, n))
                for stack, spec in sorted(self.specs.items()) for n in sorted(spec.services)]

    def _running(self, stack: str, service: str) -> int:
        sequence = self.running_sequence.get(service)
        if not sequence:
            return self.counts[stack][service]
        return sequence.pop(0) if len(sequence) > 1 else sequence[0]

    async def tasks(self, stack: str, *, include_history: bool = True) -> Sequence[TaskView]:
        spec = self.stack_spec(stack)
        rows = []
        for n, s in sorted(spec.services.items()):
            for slot in range(1, self.counts[stack][n] + 1):
                task = f"t{slot:02d}{n}"[:12]
                rows.append(TaskView(stack, n, slot, task, f"c{slot:063d}", f"{stack}_{n}.{slot}.{task}",
                                     s.image, "running", "running", self.deployed_at))
                if include_history:
                    rows.append(TaskView(stack, n, slot, "old" + task, f"d{slot:063d}",
                                         f"{stack}_{n}.{slot}.old{task}", s.image, "failed",
                                         "shutdown", self.deployed_at - 60, exit_code=1,
                                         error="task: non-zero exit (1)", current=False))
        return rows

    async def logs(self, stack: str, service: str, *, follow: bool = False,
                   tail: int | None = None) -> AsyncIterator[LogLine]:
        lines = self.log_lines if tail is None else self.log_lines[len(self.log_lines) - tail:]
        for line in lines:
            yield line
        while follow:
            await asyncio.sleep(3600)

    async def health(self) -> HealthView:
        if self.healthy:
            return HealthView(engine=True, redis=True)
        return HealthView(engine=False, redis=True, engine_error="engine not reachable")
