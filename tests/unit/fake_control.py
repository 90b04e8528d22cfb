"""An in-memory Control and a tiny stack-file loader for the API's unit tests (STYLE.md allows
a fake here: the real reconciler is exercised by the integration tests).

The fake loader reads the small subset of a stack file the tests use (services with image,
deploy.replicas, ${VAR} interpolation) and reports problems with key path and line, the way
stackfile.StackFileError does (a UserError with `.problems`).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from orchestrator.control import (
    DeployOutcome,
    HealthView,
    LogLine,
    ServiceView,
    StackView,
    TaskView,
)
from orchestrator.errors import Conflict, UnknownService, UnknownStack, UserError
from orchestrator.model import ServiceSpec, StackSpec


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    line: int | None
    message: str


class FakeStackFileError(UserError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the stack file")
        self.problems = problems


_SERVICE_KEYS = {"image", "deploy", "command"}
_VAR = re.compile(r"\$\{(\w+)\}")


def fake_load(files: Sequence[tuple[str, str]], base_dir: Path, env: Mapping[str, str] | None,
              name: str | None) -> StackSpec:
    env = env or {}
    problems: list[Problem] = []
    services: dict[str, ServiceSpec] = {}
    for file_name, text in files:
        try:
            data = YAML(typ="rt").load(_VAR.sub(lambda m: env.get(m.group(1), ""), text))
        except YAMLError as exc:
            problems.append(Problem(file_name, "", None, f"not YAML: {exc}"))
            continue
        if not isinstance(data, dict) or not isinstance(data.get("services"), dict):
            problems.append(Problem(file_name, "services", 1, "a mapping of services is required"))
            continue
        for svc, body in data["services"].items():
            services[svc] = _service(file_name, svc, body or {}, problems)
    if problems:
        raise FakeStackFileError(problems)
    return StackSpec(name=name or "stack", services=services,
                     warnings=("fake warning",) if "warn" in services else ())


def _service(file_name: str, svc: str, body: Any, problems: list[Problem]) -> ServiceSpec:
    for key in body:
        if key not in _SERVICE_KEYS:
            problems.append(Problem(file_name, f"services.{svc}.{key}", body.lc.key(key)[0] + 1,
                                    "unknown field"))
    replicas = (body.get("deploy") or {}).get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        deploy = body["deploy"]
        problems.append(Problem(file_name, f"services.{svc}.deploy.replicas",
                                deploy.lc.key("replicas")[0] + 1, "must be a non-negative integer"))
        replicas = 0
    return ServiceSpec(name=svc, image=body.get("image"), replicas=replicas)


class FakeControl:
    """Keeps specs and replica counts; every replica is "running" at once."""

    def __init__(self) -> None:
        self.specs: dict[str, StackSpec] = {}
        self.counts: dict[str, dict[str, int]] = {}
        self.previous: dict[tuple[str, str], ServiceSpec] = {}
        self.removed_volumes: list[str] = []
        self.healthy = True
        self.log_lines: list[LogLine] = []
        self.deployed_at = time.time() - 5

    async def deploy(self, spec: StackSpec) -> DeployOutcome:
        old = self.specs.get(spec.name)
        self.specs[spec.name] = spec
        self.counts[spec.name] = {n: s.replicas for n, s in spec.services.items()}
        if old is None:
            return DeployOutcome(spec.name, "created", tuple(spec.services))
        changed = tuple(n for n, s in spec.services.items() if old.services.get(n) != s)
        for n in changed:
            if n in old.services:
                self.previous[(spec.name, n)] = old.services[n]
        return DeployOutcome(spec.name, "updated" if changed else "unchanged", changed)

    async def remove(self, stack: str, *, volumes: bool = False) -> None:
        self.stack_spec(stack)
        del self.specs[stack], self.counts[stack]
        if volumes:
            self.removed_volumes.append(stack)

    async def scale(self, stack: str, counts: Mapping[str, int]) -> None:
        spec = self.stack_spec(stack)
        for service in counts:
            if service not in spec.services:
                raise UnknownService(stack, service)
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
                            self.counts[stack][n], "abc123def456")
                for n, s in sorted(spec.services.items())]

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
