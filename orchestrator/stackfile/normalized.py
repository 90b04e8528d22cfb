"""A StackSpec written back as a compose file: what `orchestrator config` prints, as `docker
compose config` prints the normalized project.

The output loads again to the same StackSpec (a unit test checks it over every fixture): every
value is in its long, explicit form (ports, volumes, secrets, depends_on as mappings; durations
as Go durations; engine names as `name:`), relative paths are already absolute, `extends` and
`include` are already applied, and a `$` in a value is written `$$` so that loading it again
does not interpolate it. A secret read from an environment variable shows the variable's name,
never the secret.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.model.spec import (
    FileObjectSpec,
    FileReference,
    Healthcheck,
    MountSpec,
    NetworkSpec,
    PortSpec,
    RestartPolicy,
    ServiceSpec,
    StackSpec,
    UpdateConfig,
    VolumeSpec,
)


def stack_to_compose(stack: StackSpec) -> dict[str, Any]:
    data: dict[str, Any] = {"name": stack.name, "services": {n: _service(s) for n, s in stack.services.items()}}
    converters: tuple[tuple[str, Mapping[str, Any], Callable[[Any], dict[str, Any]]], ...] = (
        ("networks", stack.networks, _network),
        ("volumes", stack.volumes, _volume),
        ("secrets", stack.secrets, _file_object),
        ("configs", stack.configs, _file_object),
    )
    for key, objects, convert in converters:
        if objects:
            data[key] = {name: convert(spec) for name, spec in objects.items()}
    escaped: dict[str, Any] = _escaped(data)
    return escaped


def _service(service: ServiceSpec) -> dict[str, Any]:
    data = _compact({
        "image": service.image,
        "provider": dict(service.provider) if service.provider is not None else None,
        "build": _compact({
            "context": service.build.context, "dockerfile": service.build.dockerfile,
            "args": dict(service.build.args), "target": service.build.target, "labels": dict(service.build.labels),
        }) if service.build else None,
        "command": _list(service.command),
        "entrypoint": _list(service.entrypoint),
        "environment": dict(service.environment),
        "labels": dict(service.labels),
        "ports": [_port(port) for port in service.ports],
        "networks": {a.network: _compact({"aliases": list(a.aliases), "ipv4_address": a.ipv4_address, "ipv6_address": a.ipv6_address}) or None
                     for a in service.networks},
        "volumes": [_mount(mount) for mount in service.volumes],
        "tmpfs": list(service.tmpfs),
        "secrets": [_reference(ref) for ref in service.secrets],
        "configs": [_reference(ref) for ref in service.configs],
        "healthcheck": _healthcheck(service.healthcheck) if service.healthcheck else None,
        "depends_on": {d.service: {"condition": d.condition} for d in service.depends_on},
        "stop_grace_period": duration(service.stop_grace_period),
        "stop_signal": service.stop_signal,
        "hostname": service.hostname,
        "user": service.user,
        "working_dir": service.working_dir,
        "init": service.init,
        "read_only": service.read_only or None,
        "cap_add": list(service.cap_add),
        "cap_drop": list(service.cap_drop),
        "extra_hosts": [entry.replace(":", "=", 1) for entry in service.extra_hosts],
        "dns": list(service.dns),
        "dns_search": list(service.dns_search),
        "dns_opt": list(service.dns_options),
        "tty": service.tty or None,
        "stdin_open": service.stdin_open or None,
        "ulimits": {u.name: u.soft if u.soft == u.hard else {"soft": u.soft, "hard": u.hard} for u in service.ulimits},
        "sysctls": dict(service.sysctls),
        "logging": _compact({"driver": service.logging.driver, "options": dict(service.logging.options)}) if service.logging else None,
    }, keep=("command", "entrypoint", "healthcheck", "logging"))  # given but empty is not the same as absent
    data["deploy"] = _compact({
        "mode": service.mode,
        "replicas": service.replicas if service.mode in ("replicated", "replicated-job") else None,
        "labels": dict(service.deploy_labels),
        "resources": _resources(service),
        "restart_policy": _restart_policy(service.restart_policy),
        "update_config": _update_config(service.update_config),
        "rollback_config": _update_config(service.rollback_config),
        "endpoint_mode": service.endpoint_mode if service.endpoint_mode != "vip" else None,
        "placement": _compact({
            "constraints": list(service.placement.constraints),
            "preferences": [{"spread": spread} for spread in service.placement.preferences],
            "max_replicas_per_node": service.placement.max_replicas_per_node,
        }),
    })
    return data


def _port(port: PortSpec) -> dict[str, Any]:
    return _compact({"target": port.target, "published": port.published, "protocol": port.protocol,
                     "mode": port.mode, "host_ip": port.host_ip})


def _mount(mount: MountSpec) -> dict[str, Any]:
    return _compact({
        "type": mount.type,
        "source": mount.source,
        "target": mount.target,
        "read_only": mount.read_only or None,
        "bind": _compact({"propagation": mount.bind_propagation,
                          "create_host_path": None if mount.bind_create_host_path else False}) if mount.type == "bind" else None,
        "volume": {"nocopy": True} if mount.volume_nocopy else None,
        "tmpfs": _compact({"size": mount.tmpfs_size, "mode": _mode(mount.tmpfs_mode)}) if mount.type == "tmpfs" else None,
    })


def _reference(ref: FileReference) -> dict[str, Any]:
    return _compact({"source": ref.source, "target": ref.target, "uid": ref.uid, "gid": ref.gid, "mode": _mode(ref.mode)})


def _healthcheck(check: Healthcheck) -> dict[str, Any]:
    return _compact({
        "test": _list(check.test),
        "interval": duration(check.interval),
        "timeout": duration(check.timeout),
        "retries": check.retries,
        "start_period": duration(check.start_period),
        "start_interval": duration(check.start_interval),
    })


def _resources(service: ServiceSpec) -> dict[str, Any]:
    resources = service.resources
    return _compact({
        "limits": _compact({"cpus": resources.cpus_limit, "memory": resources.memory_limit, "pids": resources.pids_limit}),
        "reservations": _compact({
            "cpus": resources.cpus_reservation, "memory": resources.memory_reservation,
            "generic_resources": [{"discrete_resource_spec": {"kind": r.kind, "value": r.value}}
                                  for r in service.generic_resources],
        }),
    })


def _restart_policy(policy: RestartPolicy) -> dict[str, Any]:
    return _compact({"condition": policy.condition, "delay": duration(policy.delay),
                     "max_attempts": policy.max_attempts, "window": duration(policy.window)})


def _update_config(config: UpdateConfig) -> dict[str, Any]:
    return {
        "parallelism": config.parallelism, "delay": duration(config.delay), "failure_action": config.failure_action,
        "monitor": duration(config.monitor), "max_failure_ratio": config.max_failure_ratio, "order": config.order,
    }


def _network(network: NetworkSpec) -> dict[str, Any]:
    if network.external:
        return {"external": True, "name": network.engine_name}
    return _compact({
        "name": network.engine_name,
        "driver": network.driver,
        "driver_opts": dict(network.driver_opts),
        "internal": network.internal or None,
        "attachable": network.attachable or None,
        "enable_ipv6": network.enable_ipv6 or None,
        "labels": dict(network.labels),
        "ipam": {"config": [{"subnet": subnet} for subnet in network.subnets]} if network.subnets else None,
    })


def _volume(volume: VolumeSpec) -> dict[str, Any]:
    if volume.external:
        return {"external": True, "name": volume.engine_name}
    return _compact({"name": volume.engine_name, "driver": volume.driver,
                     "driver_opts": dict(volume.driver_opts), "labels": dict(volume.labels)})


def _file_object(spec: FileObjectSpec) -> dict[str, Any]:
    if spec.external:
        return {"external": True}
    swarm = _compact({"labels": dict(spec.labels), "template_driver": spec.template_driver})
    if spec.driver is not None:
        return {"driver": spec.driver, **_compact({"driver_opts": dict(spec.driver_opts)}), **swarm}
    if spec.file is not None:
        return {"file": spec.file, **swarm}
    if spec.environment is not None:
        return {"environment": spec.environment, **swarm}
    return {"content": spec.content or "", **swarm}


def duration(seconds: float | None) -> str | None:
    """Seconds as a Go duration in the largest unit that keeps it exact: 90.0 -> "90s",
    0.5 -> "500ms"."""
    if seconds is None:
        return None
    nanoseconds = round(seconds * 1e9)
    if nanoseconds == 0:
        return "0s"
    for unit, size in (("h", 3600 * 10**9), ("m", 60 * 10**9), ("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if nanoseconds % size == 0:
            return f"{nanoseconds // size}{unit}"
    return f"{nanoseconds}ns"


def _mode(mode: int | None) -> str | None:
    return None if mode is None else f"0{mode:o}"


def _list(items: tuple[str, ...] | None) -> list[str] | None:
    return None if items is None else list(items)


def _compact(data: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """Without unset values (None, and empty collections but for the keys in `keep`): what the
    loader's defaults give back."""
    return {key: value for key, value in data.items() if value is not None and (key in keep or value not in ({}, []))}


def _escaped(value: Any) -> Any:
    """Every `$` as `$$`, so that loading the output does not interpolate it again."""
    if isinstance(value, dict):
        return {key: _escaped(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_escaped(item) for item in value]
    return value.replace("$", "$$") if isinstance(value, str) else value
