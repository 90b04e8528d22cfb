"""A stack's networks and named volumes: created before its first container (labelled as ours),
reused when they exist, required when external, removed by label."""

from __future__ import annotations

from collections.abc import Iterable

import aiodocker
import structlog

from orchestrator import labels
from orchestrator.engine.calls import engine_errors, is_missing
from orchestrator.errors import EngineError, StuckNetworks, UserError
from orchestrator.model.spec import NetworkSpec, VolumeSpec

log = structlog.stdlib.get_logger()

_CONFLICT = 409


def _ours(stack: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    return {**(extra or {}), labels.LABEL_STACK: stack, labels.LABEL_MANAGED: "true"}


def _managed_filter(stack: str) -> dict[str, list[str]]:
    return {"label": [f"{labels.LABEL_STACK}={stack}", f"{labels.LABEL_MANAGED}=true"]}


async def check_external(
    docker: aiodocker.Docker, networks: Iterable[NetworkSpec], volumes: Iterable[VolumeSpec]
) -> None:
    """Read-only: UserError when an `external:` network or volume does not exist."""
    for net in networks:
        if net.external and not await _network_exists(docker, net.engine_name):
            raise UserError(f"network {net.engine_name!r} is declared external but does not exist on the engine")
    for vol in volumes:
        if vol.external:
            await _external_volume(docker, vol)


async def ensure_network(docker: aiodocker.Docker, stack: str, net: NetworkSpec) -> None:
    if await _network_exists(docker, net.engine_name):
        return
    if net.external:
        raise UserError(f"network {net.engine_name!r} is declared external but does not exist on the engine")
    config = {
        "Name": net.engine_name,
        "CheckDuplicate": True,
        "Driver": net.driver or "bridge",
        "Options": dict(net.driver_opts),
        "Internal": net.internal,
        "Attachable": net.attachable,
        "EnableIPv6": net.enable_ipv6,
        "Labels": _ours(stack, dict(net.labels)),
    }
    if net.subnets:
        config["IPAM"] = {"Driver": "default", "Config": [{"Subnet": s} for s in net.subnets]}
    try:
        with engine_errors():
            await docker.networks.create(config)
    except EngineError as exc:
        if exc.status != _CONFLICT:  # created meanwhile by a concurrent pass: fine
            raise
    log.info("network_created", stack=stack, network=net.engine_name)


async def _network_exists(docker: aiodocker.Docker, name: str) -> bool:
    # The name filter matches substrings, and a lookup by name also matches id prefixes.
    with engine_errors():
        found = await docker.networks.list(filters={"name": [name]})
    return any(network["Name"] == name for network in found)


async def ensure_volume(docker: aiodocker.Docker, stack: str, vol: VolumeSpec) -> None:
    if vol.external:
        await _external_volume(docker, vol)
        return
    config = {
        "Name": vol.engine_name,
        "Driver": vol.driver or "local",
        "DriverOpts": dict(vol.driver_opts),
        "Labels": _ours(stack, dict(vol.labels)),
    }
    with engine_errors():  # creating an existing volume returns it unchanged
        await docker.volumes.create(config)


async def _external_volume(docker: aiodocker.Docker, vol: VolumeSpec) -> None:
    try:
        with engine_errors():
            await docker.volumes.get(vol.engine_name)
    except EngineError as exc:
        if is_missing(exc):
            raise UserError(
                f"volume {vol.engine_name!r} is declared external but does not exist on the engine"
            ) from exc
        raise


async def remove_stack_networks(docker: aiodocker.Docker, stack: str) -> None:
    """Every network of the stack; EngineError naming what still holds one, else StuckNetworks
    for those the engine keeps with nothing attached (the others are removed all the same)."""
    with engine_errors():
        networks = await docker.networks.list(filters=_managed_filter(stack))
    stuck: list[str] = []
    status = 0
    for network in networks:
        handle = aiodocker.networks.DockerNetwork(docker, network["Id"])
        try:
            await _ignore_missing(handle.delete())
        except EngineError as exc:
            if "active endpoints" not in exc.message:
                raise
            holders = await _release_stale_endpoints(docker, handle)
            if holders:
                raise EngineError(exc.status, f"network {network['Name']} has active endpoints: "
                                  f"{', '.join(holders)} still attached") from exc
            try:
                await _ignore_missing(handle.delete())
            except EngineError as again:
                if "active endpoints" not in again.message:
                    raise
                stuck.append(network["Name"])
                status = again.status
                continue
        log.info("network_removed", stack=stack, network=network["Name"])
    if stuck:
        raise StuckNetworks(status, stuck)


async def _release_stale_endpoints(
    docker: aiodocker.Docker, network: aiodocker.networks.DockerNetwork
) -> list[str]:
    """Force off the network each endpoint whose container no longer exists (a stale endpoint
    the engine keeps for good, moby#42119: `docker network disconnect -f`); the names of the
    containers that do exist, which are left alone (not ours to disconnect)."""
    with engine_errors():
        attached = (await network.show()).get("Containers") or {}
    holders = []
    for container_id, endpoint in attached.items():
        try:
            with engine_errors():
                await docker.containers.container(container_id).show()
        except EngineError as exc:
            if not is_missing(exc):
                raise
            await _ignore_missing(network.disconnect({"Container": container_id, "Force": True}))
            log.warning("stale_endpoint_released", network=network.id[:12], container_id=container_id[:12])
            continue
        holders.append(str(endpoint.get("Name") or container_id[:12]))
    return holders


async def remove_stack_volumes(docker: aiodocker.Docker, stack: str) -> None:
    with engine_errors():
        volumes = (await docker.volumes.list(filters=_managed_filter(stack))).get("Volumes") or []
    for volume in volumes:
        await _ignore_missing(aiodocker.volumes.DockerVolume(docker, volume["Name"]).delete())
        log.info("volume_removed", stack=stack, volume=volume["Name"])


async def _ignore_missing(removal: object) -> None:
    try:
        with engine_errors():
            await removal  # type: ignore[misc]
    except EngineError as exc:
        if not is_missing(exc):
            raise
