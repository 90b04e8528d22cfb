"""ServiceSpec → the engine's container create request. Pure: no I/O, no aiodocker.

One replica = one container made from its service spec. The request is the JSON body of
`POST /containers/create` plus what must happen around it: the networks beyond the first
(API 1.41 honours only one network at create time, so the others are connected before start)
and the `content:` secrets/configs that must be written to disk before their bind mounts exist.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import labels
from orchestrator.errors import UserError
from orchestrator.model.observed import SlotKey
from orchestrator.model.spec import (
    FileObjectSpec,
    FileReference,
    Healthcheck,
    MountSpec,
    NetworkAttachment,
    PortSpec,
    ServiceSpec,
    StackSpec,
)

JSON = dict[str, Any]

#: Where the loopback-only half of an ingress-mode port is published.
INGRESS_HOST_IP = "127.0.0.1"
DEFAULT_NETWORK = "default"


@dataclass(frozen=True, slots=True)
class CreateRequest:
    name: str
    config: JSON
    #: (engine network name, EndpointConfig) to connect after create, before start.
    extra_networks: tuple[tuple[str, JSON], ...]
    #: Files to write before create: path -> (text, mode).
    files: Mapping[Path, tuple[str, int]]


def network_name(stack: StackSpec, logical: str) -> str:
    spec = stack.networks.get(logical)
    return spec.engine_name if spec else f"{stack.name}_{logical}"


def volume_name(stack: StackSpec, logical: str) -> str:
    spec = stack.volumes.get(logical)
    return spec.engine_name if spec else f"{stack.name}_{logical}"


def create_request(
    stack: StackSpec,
    service: ServiceSpec,
    key: SlotKey,
    *,
    spec_hash: str,
    task_id: str,
    created_ns: int,
    files_dir: Path,
    standby: bool = False,
) -> CreateRequest:
    attachments = service.networks or (NetworkAttachment(DEFAULT_NETWORK),)
    endpoints = [(network_name(stack, a.network), endpoint_config(service, a)) for a in attachments]
    file_mounts, files = file_object_mounts(stack, service, files_dir)
    host = host_config(stack, service, network_mode=endpoints[0][0], extra_mounts=file_mounts)
    config: JSON = {
        "Image": labels.image_name(stack.name, service),
        "Env": [k if v is None else f"{k}={v}" for k, v in service.environment.items()],
        "Labels": {
            **service.labels,
            **labels.container_labels(key, spec_hash, task_id, created_ns, standby),
        },
        "ExposedPorts": {_port_key(p): {} for p in service.ports},
        "StopTimeout": math.ceil(service.stop_grace_period),
        "HostConfig": host,
        "NetworkingConfig": {"EndpointsConfig": dict(endpoints[:1])},
    }
    optional = {
        "Cmd": list(service.command) if service.command is not None else None,
        "Entrypoint": list(service.entrypoint) if service.entrypoint is not None else None,
        "Healthcheck": healthcheck_config(service.healthcheck) if service.healthcheck else None,
        "StopSignal": service.stop_signal,
        "User": service.user,
        "WorkingDir": service.working_dir,
        "Hostname": service.hostname,
    }
    config.update({k: v for k, v in optional.items() if v is not None})
    return CreateRequest(
        name=labels.container_name(key, task_id),
        config=config,
        extra_networks=tuple(endpoints[1:]),
        files=files,
    )


def host_config(stack: StackSpec, service: ServiceSpec, *, network_mode: str, extra_mounts: list[JSON]) -> JSON:
    mounts, binds = mount_configs(stack, service)
    config: JSON = {
        "RestartPolicy": {"Name": "no"},  # the daemon restarts replicas, never the engine
        "NetworkMode": network_mode,
        "PortBindings": port_bindings(service.ports),
        "Mounts": mounts + extra_mounts,
        "Binds": binds,
        "Tmpfs": dict(_split_tmpfs(entry) for entry in service.tmpfs),
        "ReadonlyRootfs": service.read_only,
        "CapAdd": list(service.cap_add),
        "CapDrop": list(service.cap_drop),
        "Ulimits": [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in service.ulimits],
        "Sysctls": dict(service.sysctls),
        "ExtraHosts": list(service.extra_hosts),
        "Dns": list(service.dns),
        **resource_limits(service),
    }
    if service.init is not None:
        config["Init"] = service.init
    if service.logging is not None:
        config["LogConfig"] = {"Type": service.logging.driver or "", "Config": dict(service.logging.options)}
    return config


def endpoint_config(service: ServiceSpec, attachment: NetworkAttachment) -> JSON:
    """Every replica answers to `<service>` and `tasks.<service>` (as in Swarm), plus its own aliases."""
    aliases = [service.name, f"tasks.{service.name}"]
    aliases += [a for a in attachment.aliases if a not in aliases]
    config: JSON = {"Aliases": aliases}
    ipam = {
        name: value
        for name, value in (
            ("IPv4Address", attachment.ipv4_address),
            ("IPv6Address", attachment.ipv6_address),
        )
        if value
    }
    if ipam:
        config["IPAMConfig"] = ipam
    return config


def resource_limits(service: ServiceSpec) -> JSON:
    res = service.resources
    limits: JSON = {}
    if res.cpus_limit is not None:
        limits["NanoCpus"] = round(res.cpus_limit * 1e9)
    if res.memory_limit is not None:
        limits["Memory"] = res.memory_limit
    if res.pids_limit is not None:
        limits["PidsLimit"] = res.pids_limit
    if res.memory_reservation is not None:
        limits["MemoryReservation"] = res.memory_reservation
    return limits


def healthcheck_config(check: Healthcheck) -> JSON:
    """The engine takes nanoseconds, where 0 means "inherit the image's"."""
    config: JSON = {}
    if check.test is not None:
        config["Test"] = list(check.test)
    durations = {
        "Interval": check.interval,
        "Timeout": check.timeout,
        "StartPeriod": check.start_period,
        "StartInterval": check.start_interval,
    }
    config.update({k: _ns(v) for k, v in durations.items() if v is not None})
    if check.retries is not None:
        config["Retries"] = check.retries
    return config


def port_bindings(ports: tuple[PortSpec, ...]) -> dict[str, list[JSON]]:
    """Ingress ports publish the target on 127.0.0.1 with an ephemeral host port (the daemon's
    ingress proxy owns the published port); host-mode ports bind the published port directly."""
    bindings: dict[str, list[JSON]] = {}
    for port in ports:
        if port.mode == "ingress":
            binding = {"HostIp": INGRESS_HOST_IP, "HostPort": ""}
        else:
            published = "" if port.published is None else str(port.published)
            binding = {"HostIp": port.host_ip or "", "HostPort": published}
        bindings.setdefault(_port_key(port), []).append(binding)
    return bindings


def mount_configs(stack: StackSpec, service: ServiceSpec) -> tuple[list[JSON], list[str]]:
    """Mounts API entries, and legacy `Binds` for bind mounts whose missing host path the engine
    must create (the Mounts API refuses a missing bind source; the CLI's short syntax creates it)."""
    mounts: list[JSON] = []
    binds: list[str] = []
    for spec in service.volumes:
        if spec.type == "bind" and spec.bind_create_host_path:
            binds.append(_bind_string(spec))
        else:
            mounts.append(_mount(stack, spec))
    return mounts, binds


def _mount(stack: StackSpec, spec: MountSpec) -> JSON:
    mount: JSON = {"Type": spec.type, "Target": spec.target, "ReadOnly": spec.read_only}
    if spec.type == "volume":
        mount["Source"] = volume_name(stack, spec.source) if spec.source else ""
        options: JSON = {"NoCopy": spec.volume_nocopy}
        if not spec.source:  # anonymous: labelled so that cleanup by stack label finds it
            options["Labels"] = {labels.LABEL_STACK: stack.name}
        mount["VolumeOptions"] = options
    elif spec.type == "bind":
        mount["Source"] = spec.source
        if spec.bind_propagation:
            mount["BindOptions"] = {"Propagation": spec.bind_propagation}
    else:
        tmpfs = {"SizeBytes": spec.tmpfs_size, "Mode": spec.tmpfs_mode}
        mount["TmpfsOptions"] = {k: v for k, v in tmpfs.items() if v is not None}
    return mount


def _bind_string(spec: MountSpec) -> str:
    options = ["ro" if spec.read_only else "rw"]
    if spec.bind_propagation:
        options.append(spec.bind_propagation)
    return f"{spec.source}:{spec.target}:{','.join(options)}"


def file_object_mounts(
    stack: StackSpec, service: ServiceSpec, files_dir: Path
) -> tuple[list[JSON], dict[Path, tuple[str, int]]]:
    """Secrets and configs become read-only bind mounts of a file: the `file:` itself, or the
    `content:` written under files_dir. Secrets land in /run/secrets/, configs in /."""
    mounts: list[JSON] = []
    files: dict[Path, tuple[str, int]] = {}
    kinds = (
        ("secrets", service.secrets, stack.secrets, "/run/secrets/"),
        ("configs", service.configs, stack.configs, "/"),
    )
    for kind, references, declared, base in kinds:
        for ref in references:
            source = _file_source(kind, ref, declared.get(ref.source), files_dir, files)
            target = ref.target if ref.target.startswith("/") else base + ref.target
            mounts.append({"Type": "bind", "Source": str(source), "Target": target, "ReadOnly": True})
    return mounts, files


def _file_source(
    kind: str,
    ref: FileReference,
    spec: FileObjectSpec | None,
    files_dir: Path,
    files: dict[Path, tuple[str, int]],
) -> Path:
    if spec is not None and spec.file:
        return Path(spec.file)
    if spec is not None and spec.content is not None:
        path = files_dir / kind / spec.name
        files[path] = (spec.content, ref.mode if ref.mode is not None else 0o444)
        return path
    raise UserError(f"{kind} {ref.source!r} has no file or content: it cannot be mounted on one engine")


def _port_key(port: PortSpec) -> str:
    return f"{port.target}/{port.protocol}"


def _split_tmpfs(entry: str) -> tuple[str, str]:
    path, _, options = entry.partition(":")
    return path, options


def _ns(seconds: float) -> int:
    return round(seconds * 1e9)
