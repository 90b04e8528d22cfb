"""`Engine`: the narrow, typed gateway to one Docker engine.

The rest of the daemon sees ContainerState, EngineEvent and our errors, never aiodocker types.
How a spec becomes a create request lives in `containers`, how list/inspect JSON becomes
ContainerState in `observe`, images in `images`, networks/volumes in `objects`, the event
stream in `events`; this module holds the connection and the calls.
"""

from __future__ import annotations

import asyncio
import math
import os
import secrets
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
from aiodocker.multiplexed import multiplexed_result_stream
import structlog

from orchestrator import labels, metrics
from orchestrator.engine import containers, images, objects
from orchestrator.engine.build_context import ContextLimits
from orchestrator.engine.calls import Stalls, engine_errors, is_missing
from orchestrator.backend import EngineEvent
from orchestrator.engine.events import EventStream
from orchestrator.engine.health_probes import forgets_probes, restart_dead_probes
from orchestrator.engine.observe import Facts, FactsCache, container_state, facts_from_inspect
from orchestrator.labels import decimal
from orchestrator.errors import EngineError, EngineUnavailable, ImageUnavailable
from orchestrator.model.observed import ContainerState, SlotKey
from orchestrator.model.spec import NetworkSpec, ServiceSpec, StackSpec, VolumeSpec

log = structlog.stdlib.get_logger()

#: Plain requests: fail fast on a dead engine; streams and pulls set their own (unbounded), a stop
#: its grace period plus STOP_ANSWER_MARGIN_S.
_REQUEST_TIMEOUT = aiohttp.ClientTimeout(total=None, connect=10, sock_connect=10, sock_read=120)
#: How long past its grace period a stop may go unanswered before it is given up (and retried
#: with backoff): a healthy engine answers within a second of its SIGKILL, a deadlocked one never.
STOP_ANSWER_MARGIN_S = 60.0
#: Concurrent inspects during one list (only containers whose state changed get inspected).
_INSPECT_CONCURRENCY = 16
#: The fields of a list entry we read (DockerContainer offers only item access).
# NetworkSettings carries the address on the stack network that the ingress connects to.
_LIST_FIELDS = ("Id", "Names", "State", "Status", "Labels", "Ports", "Created", "NetworkSettings")


#: A log line longer than this (characters) is passed on in pieces of this size: a replica that
#: writes without newlines cannot make the daemon hold its whole output (docs/api.md, Logs).
MAX_LOG_LINE = 64 * 1024

class Engine:
    def __init__(self, docker: aiodocker.Docker, build_limits: ContextLimits = ContextLimits()) -> None:
        """Use `await Engine.connect()`."""
        self._docker = docker
        self._build_limits = build_limits
        self._facts = FactsCache()
        #: Containers with an `oom` event and no `die` yet (the engine sends oom first).
        self._oom: set[str] = set()
        self._image_locks: dict[str, asyncio.Lock] = {}
        self._live_restore: bool | None = None
        self._stalls = Stalls()

    @classmethod
    async def connect(cls, docker_host: str | None = None, build_limits: ContextLimits = ContextLimits()) -> Engine:
        """An engine client for `docker_host`, else as the docker CLI finds it (DOCKER_HOST,
        the current context, the default socket). The engine need not be up yet.
        `build_limits` bound the `build:` contexts it sends."""
        try:
            docker = aiodocker.Docker(url=docker_host, timeout=_REQUEST_TIMEOUT)
        except (ValueError, aiodocker.DockerError) as exc:
            raise EngineUnavailable(f"no Docker engine configured: {exc}") from exc
        return cls(docker, build_limits)

    @property
    def host(self) -> str:
        return str(self._docker.docker_host)

    async def close(self) -> None:
        await self._docker.close()

    async def ping(self) -> None:
        with engine_errors(self._stalls, "the version call"):
            await self._docker.version()

    def _call(self, kind: str, what: str) -> AbstractContextManager[None]:
        """One container request of `kind`: counted (`orchestrator_engine_calls_total`, what
        the benchmarks divide by the replacements they caused), its errors made ours."""
        metrics.ENGINE_CALLS.labels(kind).inc()
        return engine_errors(self._stalls, what)

    def stalled(self) -> str:
        """A call the engine recently left unanswered past its deadline ("" if none)."""
        return self._stalls.recent()

    async def live_restore(self) -> bool:
        """Whether the engine keeps containers running while dockerd is down (`live-restore`,
        from `docker info`). Read once per engine start: it changes only with a dockerd restart,
        after which the event stream's reconnect calls `forget_live_restore`."""
        if self._live_restore is None:
            with engine_errors(self._stalls, "the info call"):
                info = await self._docker.system.info()
            self._live_restore = bool(info.get("LiveRestoreEnabled"))
        return self._live_restore

    def forget_live_restore(self) -> None:
        self._live_restore = None

    async def restart_health_probes(self) -> int:
        """After a reconnect: start again the health probes that an older engine's live-restore
        dropped (engine/health_probes.py); 0 where nothing needed it."""
        if not await self.live_restore():
            return 0
        with engine_errors(self._stalls):
            version = await self._docker.version()
        if not forgets_probes(str(version.get("Version", ""))):
            return 0
        return await restart_dead_probes(self._docker)

    # ----------------------------------------------------------------------- containers

    async def list_containers(self, stack: str | None = None, slot: SlotKey | None = None) -> list[ContainerState]:
        """Every container of ours (of one stack, or all; or of one `slot` only), exited ones
        included: one list call, plus an inspect only for a container whose state changed since
        we last looked. A slot's list is what a pass after one event needs (listing.py): the
        engine filters, so it neither builds nor sends the rest of the stack."""
        filters = labels.stack_filter(stack) if slot is None else labels.slot_filter(slot)
        with self._call("list" if slot is None else "slot_list", f"the list of {slot or stack or 'every stack'}"):
            listed = await self._docker.containers.list(all=True, filters=filters)
        entries = [{name: c[name] for name in _LIST_FIELDS if name in c} for c in listed]
        if stack is None and slot is None:
            self._facts.keep_only({entry["Id"] for entry in entries})
        fresh = await self._inspect_changed(entries)
        states = (container_state(e, fresh.get(e["Id"]) or self._facts.lookup(e)) for e in entries)
        return [state for state in states if state is not None]

    async def _inspect_changed(self, entries: list[dict[str, Any]]) -> dict[str, Facts]:
        """Inspect the containers whose cached facts do not match their listed state."""
        limit = asyncio.Semaphore(_INSPECT_CONCURRENCY)
        fresh: dict[str, Facts] = {}

        async def inspect(container_id: str) -> None:
            async with limit:
                try:
                    with self._call("inspect", f"the inspect of {container_id[:12]}"):
                        data = await self._docker.containers.container(container_id).show()
                except EngineError as exc:
                    if is_missing(exc):  # removed since the list: its entry is left without facts
                        return
                    raise
            fresh[container_id] = facts = facts_from_inspect(data)
            self._facts.store(container_id, facts)
            log.debug("container_inspected", container_id=container_id[:12])

        await asyncio.gather(*(inspect(e["Id"]) for e in entries if self._facts.needs_inspect(e)))
        return fresh

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
        """Create (not start) a fresh container for `key`'s slot, attached to all its networks."""
        task_id = task_id or secrets.token_hex(5)
        created_ns = time.time_ns()
        request = containers.create_request(
            stack, service, key, spec_hash=spec_hash, task_id=task_id, created_ns=created_ns, files_dir=files_dir,
            standby=standby,
        )
        if request.files:
            await asyncio.to_thread(_write_files, request.files)
        creating = asyncio.ensure_future(self._docker.containers.create(request.config, name=request.name))
        try:
            with self._call("create", f"the create of {request.name}"):
                created = await asyncio.shield(creating)
        except asyncio.CancelledError:
            # the engine finishes a create whose caller left: wait for it and take the container
            # back, or it stays as one nobody planned (an orphan after `rm`, a stray standby)
            await asyncio.shield(self._remove_when_created(creating))
            raise
        except EngineError as exc:
            if is_missing(exc) and "image" in exc.message.lower():
                raise ImageUnavailable(request.config["Image"], exc.message) from exc
            raise
        try:
            for network, endpoint in request.extra_networks:
                with self._call("connect", f"the connect of {request.name} to {network}"):
                    await aiodocker.networks.DockerNetwork(self._docker, network).connect(
                        {"Container": created.id, "EndpointConfig": endpoint}
                    )
        except BaseException:
            await asyncio.shield(self.remove(created.id))  # never leave a half-attached replica
            raise
        self._facts.created(created.id)  # no inspect while its start is in flight (observe.py)
        log.debug("container_created", container_id=created.id[:12], name=request.name)
        return ContainerState(
            id=created.id,
            name=request.name,
            key=key,
            spec_hash=spec_hash,
            task_id=task_id,
            created_at=created_ns / 10**9,
            status="created",
            standby=standby,
        )

    async def start(self, container_id: str) -> None:
        try:
            with self._call("start", f"the start of {container_id[:12]}"):  # 304: not an error
                await self._docker.containers.container(container_id).start()
        except BaseException:
            # No event follows a failed start and the container stays "created": facts cached
            # before it (no error yet) would hide the failure from every later list.
            self._facts.forget(container_id)
            raise
        self._facts.start_answered(container_id, time.time())

    async def stop(self, container_id: str, timeout: float) -> int | None:
        """Graceful: the stop signal, then SIGKILL after `timeout` seconds. Gone or stopped is fine.

        Returns the exit code (None if the container is gone): its `die` event's, which comes
        before the stop's answer as a rule; else an inspect's, whose facts are kept for the next
        relist. An `rm` of N replicas then costs 2N engine calls, not 3N."""
        container = self._docker.containers.container(container_id)
        deadline = aiohttp.ClientTimeout(total=math.ceil(timeout) + STOP_ANSWER_MARGIN_S)
        try:
            with self._call("stop", f"the stop of {container_id[:12]}"):
                await container.stop(t=math.ceil(timeout), timeout=deadline)
            died = self._facts.exit_of(container_id)
            if died is not None:
                return died.exit_code
            with self._call("inspect", f"the inspect of {container_id[:12]}"):
                data = await container.show()
        except EngineError as exc:
            if not is_missing(exc):
                raise
            return None
        facts = facts_from_inspect(data)
        self._facts.store(container_id, facts)
        return facts.exit_code

    async def _remove_when_created(self, creating: asyncio.Future[Any]) -> None:
        try:
            created = await creating
        except Exception:  # noqa: BLE001 - refused or failed: there is nothing to take back
            return
        try:
            await self.remove(created.id)
        except EngineError as exc:
            log.warning("abandoned_create_not_removed", container_id=created.id[:12], error=exc.message)

    async def remove(self, container_id: str) -> None:
        """Force-remove with its anonymous volumes; already gone counts as success."""
        try:
            with self._call("remove", f"the removal of {container_id[:12]}"):
                await self._docker.containers.container(container_id).delete(force=True, v=True)
        except EngineError as exc:
            if not (is_missing(exc) or "already in progress" in exc.message):
                raise
        self._facts.drop(container_id)

    async def logs(self, container_id: str, follow: bool, tail: int | None = None) -> AsyncIterator[str]:
        """stdout and stderr, line by line (without the newline), read as a stream whether
        followed or not: a replica's log is never held whole (a line longer than
        MAX_LOG_LINE comes in pieces of that size)."""
        params: dict[str, Any] = {"stdout": True, "stderr": True}
        if tail is not None:
            params["tail"] = tail
        container = self._docker.containers.container(container_id)
        pending = ""
        with engine_errors(self._stalls):
            if follow:
                chunks = container.log(follow=True, **params)
            else:
                chunks = self._unfollowed_log(container_id, params)
            async for chunk in chunks:
                *lines, pending = (pending + chunk).split("\n")
                for line in lines:
                    for start in range(0, max(len(line), 1), MAX_LOG_LINE):
                        yield line[start:start + MAX_LOG_LINE]
                while len(pending) >= MAX_LOG_LINE:  # no newline for that long (a tty, a binary)
                    yield pending[:MAX_LOG_LINE]
                    pending = pending[MAX_LOG_LINE:]
        if pending:
            yield pending

    async def _unfollowed_log(self, container_id: str, params: dict[str, Any]) -> AsyncIterator[str]:
        """The log up to now, streamed: aiodocker's `log(follow=False)` reads the whole answer
        into a list first (gigabytes for a chatty replica and `tail=all`), so the same request
        is made here and read as its follow=True form reads it."""
        inspect = await self._docker.containers.container(container_id).show()
        query = self._docker._query(  # noqa: SLF001 - no public streamed form of this request
            f"containers/{container_id}/logs", params={**params, "follow": False}, timeout=aiohttp.ClientTimeout()
        )
        async with query as response:
            async for chunk in multiplexed_result_stream(response, is_tty=bool(inspect["Config"]["Tty"])):
                yield chunk

    # ----------------------------------------------------------------------- images, networks, volumes

    async def ensure_image(self, service: ServiceSpec, stack: str | None = None) -> None:
        """Present, else pulled, else built (`build:`), else ImageUnavailable with the engine's
        reason. `stack` names the image of a `build:`-only service (`<stack>_<service>`)."""
        if service.image is None and stack is None:
            raise ValueError(f"service {service.name} has no image: pass its stack to name the build")
        image = labels.image_name(stack or "", service)
        lock = self._image_locks.setdefault(image, asyncio.Lock())
        async with lock:  # replicas of one service ask at once: one pull/build
            await images.ensure_image(self._docker, image, service.build, pullable=service.image is not None,
                                      limits=self._build_limits)

    async def check_external(self, spec: StackSpec) -> None:
        """UserError unless every `external:` network and volume of `spec` exists (read-only)."""
        await objects.check_external(self._docker, spec.networks.values(), spec.volumes.values())

    async def ensure_network(self, stack: str, net: NetworkSpec) -> None:
        await objects.ensure_network(self._docker, stack, net)

    async def ensure_volume(self, stack: str, vol: VolumeSpec) -> None:
        await objects.ensure_volume(self._docker, stack, vol)

    async def remove_stack_networks(self, stack: str) -> None:
        await objects.remove_stack_networks(self._docker, stack)

    async def remove_stack_volumes(self, stack: str) -> None:
        await objects.remove_stack_volumes(self._docker, stack)

    # ----------------------------------------------------------------------- events

    def events(
        self, *, stack: str | None = None, actions: Sequence[str] = (), since_ns: int | None = None
    ) -> EventStream:
        """One connection to the container event stream of our containers (see EventStream).
        Opening it forgets all cached inspect facts, and each event its container's: events
        are the only news of a change the list's status would not show (a restart in place).
        A `die` instead records what it tells (observe.FactsCache.died)."""
        filters = {"type": ["container"], **labels.stack_filter(stack)}
        if actions:
            filters["event"] = list(actions)
        self._facts.forget()
        self._oom.clear()
        return EventStream(self._docker, filters=filters, since_ns=since_ns, on_event=self._saw)

    def _saw(self, event: EngineEvent) -> None:
        container_id = event.actor_id
        if event.action == "oom":
            self._oom.add(container_id)
            self._facts.forget(container_id)
        elif event.action == "die":
            code = event.attributes.get("exitCode", "")
            exit_code = decimal(code)
            oom = container_id in self._oom
            self._oom.discard(container_id)
            self._facts.died(container_id, exit_code, event.time_ns / 10**9, oom_killed=oom)
        elif event.action == "start":
            self._facts.started(container_id, event.time_ns / 10**9)
        elif event.action in ("create", "kill", "stop"):
            # news to nobody: the create's answer cached its facts (a replay's: the list
            # inspects); a signal changes nothing until the container dies, and `die` (which
            # comes before `stop`) tells that
            pass
        elif event.action == "destroy":
            self._facts.drop(container_id)
            self._oom.discard(container_id)
        else:
            self._facts.forget(container_id)


def _write_files(files: Mapping[Path, tuple[str, int]]) -> None:
    """Write secret/config contents atomically; an unchanged file is left alone (running
    replicas have it bind-mounted)."""
    for path, (text, mode) in files.items():
        if path.exists() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(text)
        os.chmod(partial, mode)
        os.replace(partial, path)
