"""`SwarmManager`: the narrow gateway to a Swarm manager's engine API, for the Swarm backend
(orchestrator/swarm/).

As `engine.Engine` is for one engine: the only place the Swarm backend touches aiodocker (here in
engine/, the one package that imports it). The
calls are the ones `docker stack deploy/rm/ps/services` and `docker service scale/rollback/
logs` make; failures become our errors through `engine.calls.engine_errors` (EngineUnavailable
when the manager does not answer, EngineError with the HTTP status when it refuses). Service
bodies are posted as they are: aiodocker's `services.create` rewrites some fields.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import Any, cast

import aiodocker
import aiohttp

from orchestrator.engine.calls import engine_errors
from orchestrator.engine.events import EventStream
from orchestrator.errors import EngineError, EngineUnavailable, UserError
from orchestrator.labels import LABEL_SWARM_NAMESPACE

#: Plain requests fail fast on a dead manager; log streams set none.
_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=60)
Filters = Mapping[str, Sequence[str]]


class NotAManager(UserError):
    """The engine the daemon was pointed at cannot run the Swarm backend."""


def namespace_filter(stack: str | None = None) -> dict[str, list[str]]:
    """Objects of one stack, or of every stack (`docker stack deploy`'s label)."""
    return {"label": [LABEL_SWARM_NAMESPACE if stack is None else f"{LABEL_SWARM_NAMESPACE}={stack}"]}


class SwarmManager:
    def __init__(self, docker: aiodocker.Docker) -> None:
        """Use `SwarmManager.connect()`."""
        self._docker = docker
        #: Requests sent, for the watcher's cost figures (benchmarks/bench_swarm.py).
        self.calls = 0

    @classmethod
    def connect(cls, docker_host: str | None = None) -> SwarmManager:
        try:
            return cls(aiodocker.Docker(url=docker_host or None, timeout=_REQUEST_TIMEOUT))
        except (ValueError, aiodocker.DockerError) as exc:
            raise EngineUnavailable(f"no Docker engine configured: {exc}") from exc

    async def close(self) -> None:
        await self._docker.close()

    async def _json(self, path: str, method: str = "GET", *, params: Mapping[str, Any] | None = None,
                    data: Any = None) -> Any:
        self.calls += 1
        with engine_errors():
            return await self._docker._query_json(path, method, params=dict(params) if params else None,
                                                  data=data)

    async def ping(self) -> None:
        await self._json("version")

    async def check_manager(self) -> None:
        """NotAManager unless this engine is an active Swarm manager (docs/swarm.md)."""
        info = await self._json("info")
        swarm = info.get("Swarm") or {}
        state = swarm.get("LocalNodeState") or "inactive"
        if state != "active":
            raise NotAManager(f"ORCHESTRATOR_BACKEND=swarm: the engine at {self.host} is not in a Swarm "
                              f"(its swarm state is {state}); run `docker swarm init` there, or point "
                              "DOCKER_HOST at a manager")
        if not swarm.get("ControlAvailable"):
            raise NotAManager(f"ORCHESTRATOR_BACKEND=swarm: the engine at {self.host} is a Swarm worker, not a "
                              "manager; point DOCKER_HOST at a manager (docker node ls lists them)")

    @property
    def host(self) -> str:
        return str(self._docker.docker_host)

    # ----------------------------------------------------------------------- services and tasks

    async def services(self, filters: Filters) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], await self._json("services", params={"filters": _filters(filters)}))

    async def service(self, service_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], await self._json(f"services/{service_id}"))

    async def create_service(self, body: Mapping[str, Any]) -> str:
        created = await self._json("services/create", "POST", data=dict(body))
        return str(created["ID"])

    async def update_service(self, service_id: str, version: int, body: Mapping[str, Any], *,
                             rollback: bool = False) -> None:
        params: dict[str, Any] = {"version": version}
        if rollback:
            params["rollback"] = "previous"
        await self._json(f"services/{service_id}/update", "POST", params=params, data=dict(body))

    async def delete_service(self, service_id: str) -> None:
        await _unless_missing(self._json(f"services/{service_id}", "DELETE"))

    async def tasks(self, filters: Filters | None = None) -> list[dict[str, Any]]:
        params = {"filters": _filters(filters)} if filters else None
        return cast(list[dict[str, Any]], await self._json("tasks", params=params))

    async def nodes(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], await self._json("nodes"))

    async def service_logs(self, service_id: str, *, follow: bool, tail: int | None) -> AsyncIterator[str]:
        """The service's log lines from every node, each prefixed with Swarm's details
        (`com.docker.swarm.node.id=…,com.docker.swarm.service.id=…,com.docker.swarm.task.id=… `)."""
        self.calls += 1
        lines = "all" if tail is None else str(tail)
        with engine_errors():
            if not follow:
                listed = self._docker.services.logs(service_id, stdout=True, stderr=True, details=True, tail=lines)
                for line in await cast(Awaitable[list[str]], listed):
                    yield line
                return
            stream = self._docker.services.logs(service_id, follow=True, stdout=True, stderr=True, details=True,
                                                tail=lines)
            async for line in cast(AsyncIterator[str], stream):
                yield line

    def events(self, filters: Filters) -> EventStream:
        self.calls += 1
        return EventStream(self._docker, filters=filters, since_ns=None)

    # ----------------------------------------------------------------------- objects

    async def listed(self, kind: str, filters: Filters) -> list[dict[str, Any]]:
        """`kind`: networks, secrets, configs or volumes."""
        answer = await self._json(kind, params={"filters": _filters(filters)})
        return cast(list[dict[str, Any]], (answer["Volumes"] or []) if kind == "volumes" else answer)

    async def create(self, kind: str, body: Mapping[str, Any]) -> str:
        created = await self._json(f"{kind}/create", "POST", data=dict(body))
        return str(created.get("Id") or created.get("ID") or created.get("Name"))

    async def delete(self, kind: str, object_id: str) -> None:
        await _unless_missing(self._json(f"{kind}/{object_id}", "DELETE"))


def _filters(filters: Filters | None) -> str:
    return json.dumps({key: list(values) for key, values in (filters or {}).items()})


async def _unless_missing(call: Any) -> None:
    try:
        await call
    except EngineError as exc:
        if exc.status != 404:
            raise
