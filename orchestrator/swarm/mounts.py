"""A service's volumes, binds and tmpfs as Swarm mounts (ContainerSpec.Mounts).

Named volumes keep their engine name (`<stack>_<name>`, or `name:`/external) and, unless
external, carry the stack's namespace label and driver, so each node creates the volume the same
way when a task first lands there (Swarm has no cluster-wide volumes for us). Service-level
`tmpfs:` entries (`/path[:size=…,mode=…]`) become tmpfs mounts, which `docker stack deploy`
silently drops.
"""

from __future__ import annotations

from typing import Any

from orchestrator.labels import LABEL_SWARM_NAMESPACE
from orchestrator.model.spec import MountSpec, ServiceSpec, StackSpec
from orchestrator.stackfile.units import parse_bytes, parse_mode
from orchestrator.swarm.bodies import drop_empty
from orchestrator.swarm.problems import Findings


def convert_mounts(stack: StackSpec, service: ServiceSpec, findings: Findings) -> list[dict[str, Any]]:
    path = f"services.{service.name}"
    mounts = [_mount(stack, mount, f"{path}.volumes[{index}]", findings) for index, mount in enumerate(service.volumes)]
    mounts += [_tmpfs_entry(entry, f"{path}.tmpfs[{index}]", findings) for index, entry in enumerate(service.tmpfs)]
    return mounts


def _mount(stack: StackSpec, mount: MountSpec, path: str, findings: Findings) -> dict[str, Any]:
    result: dict[str, Any] = {"Type": mount.type, "Target": mount.target}
    if mount.read_only:
        result["ReadOnly"] = True
    if mount.type == "volume":
        result.update(_volume(stack, mount))
    elif mount.type == "bind":
        result["Source"] = mount.source
        if mount.bind_propagation:
            result["BindOptions"] = {"Propagation": mount.bind_propagation}
        findings.warn(path, f"Swarm does not create a missing bind source: {mount.source} must exist on every "
                            "node a task of this service may run on")
    else:
        result["TmpfsOptions"] = drop_empty({"SizeBytes": mount.tmpfs_size, "Mode": mount.tmpfs_mode})
    return drop_empty(result)


def _volume(stack: StackSpec, mount: MountSpec) -> dict[str, Any]:
    options: dict[str, Any] = {"NoCopy": True} if mount.volume_nocopy else {}
    if mount.source is None:  # anonymous: each task gets a fresh one
        return {"VolumeOptions": options}
    volume = stack.volumes[mount.source]
    if not volume.external:
        options["Labels"] = {**volume.labels, LABEL_SWARM_NAMESPACE: stack.name}
        if volume.driver or volume.driver_opts:
            options["DriverConfig"] = drop_empty({"Name": volume.driver, "Options": dict(volume.driver_opts)})
    return {"Source": volume.engine_name, "VolumeOptions": options}


def _tmpfs_entry(entry: str, path: str, findings: Findings) -> dict[str, Any]:
    target, _, text = entry.partition(":")
    options: dict[str, Any] = {}
    for option in filter(None, text.split(",")):
        key, _, value = option.partition("=")
        try:
            if key == "size":
                options["SizeBytes"] = parse_bytes(value)
            elif key == "mode":
                options["Mode"] = parse_mode(value)
            else:
                findings.warn(path, f"tmpfs option {option!r} has no Swarm equivalent; ignored")
        except ValueError as exc:
            findings.error(path, str(exc))
    return drop_empty({"Type": "tmpfs", "Target": target, "TmpfsOptions": options})

