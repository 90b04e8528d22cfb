"""Stacks applied to a Swarm manager: deploy, scale, rollback, remove.

Swarm keeps the desired state (in its Raft store) and schedules the tasks; this module only
sends what `docker stack deploy`, `docker service scale/rollback` and `docker stack rm` send,
from the conversion in swarm/convert.py. Each step is idempotent by name and label, so a daemon
killed half-way through a deploy or a removal leaves objects that the next deploy reuses, or the
next `rm` removes (docs/swarm.md, "Crash safety"):

deploy: networks (overlay, attachable) → secrets and configs under versioned names → services
created, or updated when their body changed (our `orchestrator.spec-hash` label says so; an
unchanged service is not touched, so a redeploy starts no rolling update) → services of the
stack gone from the file removed (our engine backend does the same; `docker stack deploy` needs
`--prune`) → object versions no service uses any more removed (Swarm refuses one still in use:
tried again at the next deploy).

What Swarm refuses comes back as the engine's own words (EngineError), nothing more is sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from orchestrator.views import DeployOutcome, RemoveOutcome
from orchestrator.errors import Conflict, EngineError, UnknownService, UnknownStack, UserError
from orchestrator.labels import LABEL_SPEC_HASH, LABEL_SWARM_NAMESPACE
from orchestrator.model.spec import StackSpec
from orchestrator.planning.replica_limits import check_replicas
from orchestrator.swarm.convert import SwarmStack, convert_stack
from orchestrator.swarm.files import read_file_data
from orchestrator.engine.swarm import SwarmManager, namespace_filter
from orchestrator.swarm.objects import stale_objects, with_object_ids
from orchestrator.swarm.observed import service_mode, service_replicas

log = structlog.stdlib.get_logger()

#: A service update that raced another writer ("update out of sequence") is tried this often.
_VERSION_RETRIES = 5
#: How long `rm` waits for the removed services' tasks to leave their networks.
REMOVE_WAIT = 60.0


@dataclass(frozen=True, slots=True)
class ReplicaBudget:
    per_service: int
    total: int


def body_hash(body: Mapping[str, Any]) -> str:
    """The converted body's own hash, kept as a service label: what we sent last, whatever
    defaults the manager filled in since."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class SwarmStacks:
    def __init__(self, manager: SwarmManager, budget: ReplicaBudget) -> None:
        self._m = manager
        self._budget = budget
        self._lock = asyncio.Lock()

    async def services_of(self, stack: str | None = None) -> dict[str, dict[str, Any]]:
        """Listed services by Swarm name (`<stack>_<service>`)."""
        listed = await self._m.services(namespace_filter(stack))
        return {service["Spec"]["Name"]: service for service in listed}

    # ------------------------------------------------------------------------------ deploy

    async def deploy(self, spec: StackSpec) -> DeployOutcome:
        # The files are read off the loop (bounded by swarm/files.py), converted before
        # anything is sent: a stack Swarm cannot run is refused whole.
        swarm = convert_stack(spec, await asyncio.to_thread(read_file_data, spec))
        async with self._lock:
            existing = await self.services_of(spec.name)
            new_stack = not existing
            await self._check_replicas(spec, existing)
            await self._check_external_networks(swarm)
            await self._create_networks(swarm)
            secret_ids = await self._create_objects("secrets", swarm.secrets, swarm.secret_names)
            config_ids = await self._create_objects("configs", swarm.configs, swarm.config_names)
            changed = []
            for name, converted in swarm.services.items():
                digest = body_hash(converted)
                body = with_object_ids(converted, secret_ids, config_ids)
                body["Labels"] = {**body.get("Labels", {}), LABEL_SPEC_HASH: digest}
                current = existing.pop(body["Name"], None)
                if current is None:
                    await self._m.create_service(body)
                    changed.append(name)
                elif (current["Spec"].get("Labels") or {}).get(LABEL_SPEC_HASH) != digest:
                    await self._update(current, body)
                    changed.append(name)
            for gone in existing.values():  # services no longer in the file
                await self._m.delete_service(gone["ID"])
                log.info("swarm_service_removed", stack=spec.name, service=gone["Spec"]["Name"])
            await self._remove_stale_objects(spec.name, swarm)
        result = "created" if new_stack else ("unchanged" if not changed and not existing else "updated")
        log.info("swarm_stack_deployed", stack=spec.name, result=result, changed=changed)
        return DeployOutcome(spec.name, result, tuple(sorted(changed)), swarm.warnings)  # type: ignore[arg-type]

    async def _check_replicas(self, spec: StackSpec, existing: Mapping[str, Mapping[str, Any]]) -> None:
        everything = await self.services_of()
        before = {name[len(spec.name) + 1:]: service_replicas(s) or 0 for name, s in existing.items()}
        others = sum(service_replicas(s) or 0 for name, s in everything.items()
                     if (s["Spec"].get("Labels") or {}).get(LABEL_SWARM_NAMESPACE) != spec.name)
        after = {name: 0 if s.mode in ("global", "global-job") else s.replicas for name, s in spec.services.items()}
        check_replicas(spec.name, before, after, others, per_service=self._budget.per_service,
                       total=self._budget.total, path="services.{}.deploy.replicas")

    async def _check_external_networks(self, swarm: SwarmStack) -> None:
        for name in swarm.external_networks:
            found = [n for n in await self._m.listed("networks", {"name": [name]}) if n.get("Name") == name]
            if not found:
                raise UserError(f"network {name} is declared external but does not exist: create it on a "
                                "manager (docker network create --driver overlay --attachable ...)")
            if found[0].get("Scope") != "swarm":
                raise UserError(f"network {name} is declared external but is not swarm-scoped (its scope is "
                                f"{found[0].get('Scope')}): services can only join swarm-scoped networks")

    async def _create_networks(self, swarm: SwarmStack) -> None:
        listed = {n["Name"] for n in await self._m.listed("networks", namespace_filter(swarm.namespace))}
        for name, body in swarm.networks.items():
            if name not in listed:
                await self._m.create("networks", body)

    async def _create_objects(self, kind: str, bodies: Mapping[str, Mapping[str, Any]],
                              names: Mapping[str, str]) -> dict[str, str]:
        """Engine name → id of every object the stack uses, created when missing (a versioned
        name that exists has that content already)."""
        wanted = set(names.values())
        ids = {}
        for name in wanted:
            for item in await self._m.listed(kind, {"name": [name]}):
                if item["Spec"]["Name"] == name:
                    ids[name] = item["ID"]
        for body in bodies.values():
            if body["Name"] not in ids:
                ids[body["Name"]] = await self._m.create(kind, body)
        missing = sorted(wanted - set(ids))
        if missing:
            raise UserError(f"{kind} declared external but missing on the Swarm: {', '.join(missing)}")
        return ids

    async def _update(self, current: Mapping[str, Any], body: dict[str, Any]) -> None:
        # As docker/cli: a `docker service update --force` counter survives a redeploy.
        force = (current["Spec"].get("TaskTemplate") or {}).get("ForceUpdate")
        if force:
            body["TaskTemplate"]["ForceUpdate"] = force
        await self._m.update_service(current["ID"], current["Version"]["Index"], body)

    async def _remove_stale_objects(self, stack: str, swarm: SwarmStack) -> None:
        for kind, names in (("secrets", swarm.secret_names), ("configs", swarm.config_names)):
            listed = await self._m.listed(kind, namespace_filter(stack))
            for object_id in stale_objects(stack, listed, names.values()):
                try:
                    await self._m.delete(kind, object_id)
                except EngineError as exc:  # still used by a task being replaced
                    log.info("swarm_object_kept", kind=kind, id=object_id, reason=exc.message)

    # ------------------------------------------------------------------------------ scale, rollback

    async def scale(self, stack: str, counts: Mapping[str, int]) -> None:
        async with self._lock:
            services = await self._stack_services(stack)
            everything = await self.services_of()
            before = {}
            for service, count in counts.items():
                current = services.get(service)
                if current is None:
                    raise UnknownService(stack, service)
                if service_replicas(current) is None or service_mode(current) != "replicated":
                    raise UserError(f"{stack}_{service}: scale can only be used with replicated mode "
                                    "(a job runs again when a deploy changes it)")
                if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                    raise UserError(f"{stack}_{service}: replicas must be a non-negative integer, got {count!r}")
                before[service] = service_replicas(current) or 0
            stack_now = {name: service_replicas(s) or 0 for name, s in services.items()}
            others = sum(service_replicas(s) or 0 for s in everything.values()) - sum(stack_now.values())
            check_replicas(stack, stack_now, {**stack_now, **counts}, others,
                           per_service=self._budget.per_service, total=self._budget.total)
            for service, count in counts.items():
                await self._retry_update(services[service]["ID"], lambda spec, c=count: _with_replicas(spec, c))

    async def rollback(self, stack: str, service: str) -> None:
        """Swarm's own rollback to the service's previous spec (`docker service rollback`)."""
        async with self._lock:
            current = (await self._stack_services(stack)).get(service)
            if current is None:
                raise UnknownService(stack, service)
            if current.get("PreviousSpec") is None:
                raise Conflict(f"{stack}_{service}: there is no previous version to roll back to")
            await self._m.update_service(current["ID"], current["Version"]["Index"], current["Spec"],
                                         rollback=True)

    async def _retry_update(self, service_id: str, change: Any) -> None:
        for attempt in range(_VERSION_RETRIES):
            current = await self._m.service(service_id)
            try:
                await self._m.update_service(service_id, current["Version"]["Index"], change(current["Spec"]))
                return
            except EngineError as exc:
                if "out of sequence" not in exc.message or attempt == _VERSION_RETRIES - 1:
                    raise

    async def _stack_services(self, stack: str) -> dict[str, dict[str, Any]]:
        """The stack's services by their name in the stack; UnknownStack when it has none."""
        services = {name[len(stack) + 1:]: s for name, s in (await self.services_of(stack)).items()}
        if not services:
            raise UnknownStack(stack)
        return services

    # ------------------------------------------------------------------------------ remove

    async def remove(self, stack: str, *, volumes: bool = False) -> RemoveOutcome:
        """As `docker stack rm`: services, then networks once their tasks left them, secrets,
        configs. Everything is found by the namespace label, so a removal cut short is finished
        by the next one. `volumes`: the stack's named volumes on the manager's own engine
        (volumes live on each node; Swarm has no call to remove them elsewhere)."""
        async with self._lock:
            label = namespace_filter(stack)
            services = await self._m.services(label)
            networks = await self._m.listed("networks", label)
            secrets = await self._m.listed("secrets", label)
            configs = await self._m.listed("configs", label)
            if not (services or networks or secrets or configs):
                raise UnknownStack(stack)
            for service in services:
                await self._m.delete_service(service["ID"])
            for kind, items in (("secrets", secrets), ("configs", configs)):
                for item in items:
                    await self._m.delete(kind, item["ID"])
            left = await self._remove_networks([n["Id"] for n in networks])
            if volumes:
                for volume in await self._m.listed("volumes", label):
                    try:
                        await self._m.delete("volumes", volume["Name"])
                    except EngineError as exc:
                        left = left or f"volume {volume['Name']}: {exc.message}"
        if left:
            return RemoveOutcome(stack, False, volumes, "removing", left)
        log.info("swarm_stack_removed", stack=stack)
        return RemoveOutcome(stack, True, volumes)

    async def _remove_networks(self, network_ids: list[str]) -> str:
        """"" once all are removed, else why not (a task still attached after REMOVE_WAIT)."""
        deadline = time.monotonic() + REMOVE_WAIT
        pending = list(network_ids)
        reason = ""
        while pending:
            for network_id in list(pending):
                try:
                    await self._m.delete("networks", network_id)
                    pending.remove(network_id)
                except EngineError as exc:
                    reason = f"network {network_id[:12]}: {exc.message}"
            if not pending or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        return reason if pending else ""


def _with_replicas(spec: Mapping[str, Any], replicas: int) -> dict[str, Any]:
    return {**spec, "Mode": {"Replicated": {"Replicas": replicas}}}
