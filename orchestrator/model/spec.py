"""The desired state as the user wrote it: a stack's spec, typed and frozen.

"Spec" is what the user asked for (read from a stack file); what the engine reports is in
`model/observed.py`, what the planner decides in `model/plan.py`. Durations are float seconds,
sizes are int bytes. Mappings are plain dicts held by frozen dataclasses: nobody mutates them
after loading, and keeping them dicts makes canonical JSON (the spec hash) trivial. No module
here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# --------------------------------------------------------------------------- desired state

RestartCondition = Literal["none", "on-failure", "any"]
FailureAction = Literal["pause", "continue", "rollback"]
UpdateOrder = Literal["stop-first", "start-first"]
#: The jobs run to completion; only Swarm runs them (docs/swarm.md).
DeployMode = Literal["replicated", "global", "replicated-job", "global-job"]


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    condition: RestartCondition = "any"
    #: Constant delay between restarts, as Swarm. None: our default, immediate then backoff.
    delay: float | None = None
    #: 0 means never give up.
    max_attempts: int = 0
    #: Sliding window for max_attempts; 0 means a lifetime cap per slot and spec version.
    window: float = 0.0


@dataclass(frozen=True, slots=True)
class UpdateConfig:
    """update_config / rollback_config, with swarmkit's defaults (SEMANTICS.md 1.1)."""

    parallelism: int = 1  # 0 = all at once
    delay: float = 0.0
    failure_action: FailureAction = "pause"
    monitor: float = 5.0
    max_failure_ratio: float = 0.0
    order: UpdateOrder = "stop-first"


@dataclass(frozen=True, slots=True)
class Resources:
    cpus_limit: float | None = None
    memory_limit: int | None = None
    pids_limit: int | None = None
    cpus_reservation: float | None = None
    memory_reservation: int | None = None


@dataclass(frozen=True, slots=True)
class GenericResource:
    """A discrete generic resource a task reserves on its node (Swarm: `kind` from the node's
    `--node-generic-resource`, e.g. gpu=2)."""

    kind: str
    value: int


@dataclass(frozen=True, slots=True)
class Healthcheck:
    #: Engine form: ("CMD", ...), ("CMD-SHELL", "..."), or ("NONE",) to disable the image's.
    test: tuple[str, ...] | None = None
    interval: float | None = None
    timeout: float | None = None
    retries: int | None = None
    start_period: float | None = None
    start_interval: float | None = None


@dataclass(frozen=True, slots=True)
class PortSpec:
    target: int
    published: int | None = None
    protocol: Literal["tcp", "udp", "sctp"] = "tcp"
    #: ingress: the daemon listens on `published` and spreads connections over replicas.
    mode: Literal["ingress", "host"] = "ingress"
    host_ip: str | None = None


@dataclass(frozen=True, slots=True)
class MountSpec:
    type: Literal["volume", "bind", "tmpfs"]
    target: str
    #: Volume: the logical volume name (a key of StackSpec.volumes) or None for anonymous;
    #: bind: an absolute host path.
    source: str | None = None
    read_only: bool = False
    bind_propagation: str | None = None
    bind_create_host_path: bool = True
    volume_nocopy: bool = False
    tmpfs_size: int | None = None
    tmpfs_mode: int | None = None


@dataclass(frozen=True, slots=True)
class NetworkAttachment:
    #: Logical network name (a key of StackSpec.networks).
    network: str
    aliases: tuple[str, ...] = ()
    ipv4_address: str | None = None
    ipv6_address: str | None = None


@dataclass(frozen=True, slots=True)
class FileReference:
    """A service's use of a top-level secret or config."""

    source: str
    target: str
    uid: str | None = None
    gid: str | None = None
    mode: int | None = None


@dataclass(frozen=True, slots=True)
class Ulimit:
    name: str
    soft: int
    hard: int


@dataclass(frozen=True, slots=True)
class LoggingSpec:
    driver: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BuildSpec:
    context: str  # absolute path or URL
    dockerfile: str | None = None
    args: Mapping[str, str | None] = field(default_factory=dict)
    target: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DependsOn:
    service: str
    condition: Literal["service_started", "service_healthy", "service_completed_successfully"] = (
        "service_started"
    )


@dataclass(frozen=True, slots=True)
class Placement:
    """deploy.placement: for Swarm's scheduler only (one engine has nothing to place, so it
    is not part of the spec hash)."""

    constraints: tuple[str, ...] = ()  # "node.role == manager"
    #: Spread descriptors ("node.labels.zone"), in order of precedence.
    preferences: tuple[str, ...] = ()
    max_replicas_per_node: int | None = None


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    name: str
    image: str | None = None
    #: compose's `provider` (a service a compose plugin runs): kept so `config` shows it; a
    #: deploy refuses it (stackfile/service.py). Not part of the spec hash.
    provider: Mapping[str, Any] | None = None
    build: BuildSpec | None = None
    command: tuple[str, ...] | None = None
    entrypoint: tuple[str, ...] | None = None
    #: Value None: passed through from the daemon's environment is not supported; kept as
    #: "name only" (the engine then leaves it unset).
    environment: Mapping[str, str | None] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[PortSpec, ...] = ()
    networks: tuple[NetworkAttachment, ...] = ()
    volumes: tuple[MountSpec, ...] = ()
    tmpfs: tuple[str, ...] = ()
    secrets: tuple[FileReference, ...] = ()
    configs: tuple[FileReference, ...] = ()
    healthcheck: Healthcheck | None = None
    depends_on: tuple[DependsOn, ...] = ()
    stop_grace_period: float = 10.0
    stop_signal: str | None = None
    hostname: str | None = None
    user: str | None = None
    working_dir: str | None = None
    init: bool | None = None
    read_only: bool = False
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    extra_hosts: tuple[str, ...] = ()  # "host:ip"
    dns: tuple[str, ...] = ()
    ulimits: tuple[Ulimit, ...] = ()
    sysctls: Mapping[str, str] = field(default_factory=dict)
    logging: LoggingSpec | None = None
    # deploy:
    mode: DeployMode = "replicated"
    replicas: int = 1
    resources: Resources = field(default_factory=Resources)
    restart_policy: RestartPolicy = field(default_factory=RestartPolicy)
    update_config: UpdateConfig = field(default_factory=UpdateConfig)
    rollback_config: UpdateConfig = field(default_factory=UpdateConfig)
    deploy_labels: Mapping[str, str] = field(default_factory=dict)
    endpoint_mode: Literal["vip", "dnsrr"] = "vip"
    placement: Placement = field(default_factory=Placement)
    # Read on Swarm only: one engine ignores them (so they stay out of the containers' hash,
    # labels.py). docs/swarm.md.
    dns_search: tuple[str, ...] = ()
    dns_options: tuple[str, ...] = ()
    tty: bool = False
    stdin_open: bool = False
    #: deploy.resources.reservations.generic_resources (discrete ones, as docker/cli maps them).
    generic_resources: tuple[GenericResource, ...] = ()


@dataclass(frozen=True, slots=True)
class NetworkSpec:
    name: str  # logical name, the key in the stack file
    engine_name: str  # `<stack>_<name>`, or `name:` / the external name
    driver: str | None = None
    driver_opts: Mapping[str, str] = field(default_factory=dict)
    external: bool = False
    internal: bool = False
    attachable: bool = False
    enable_ipv6: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    #: IPAM subnets as given (["10.5.0.0/16", ...]).
    subnets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class VolumeSpec:
    name: str
    engine_name: str
    driver: str | None = None
    driver_opts: Mapping[str, str] = field(default_factory=dict)
    external: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FileObjectSpec:
    """A top-level secret or config: on one engine only `file:` (and `content:`/`environment:`
    for configs/secrets in the compose-spec) can be honoured."""

    name: str
    file: str | None = None  # absolute path
    content: str | None = None
    external: bool = False
    #: The engine's name when `name:` is given (or the external one); None: derived from the
    #: stack and `name`. Only Swarm has secret and config objects to name.
    engine_name: str | None = None
    #: The environment variable `content` was read from (`environment:`), for `orchestrator
    #: config`, which names it rather than showing a secret.
    environment: str | None = None
    # Swarm only (the object's own labels, a secret driver plugin, a template driver).
    labels: Mapping[str, str] = field(default_factory=dict)
    driver: str | None = None
    driver_opts: Mapping[str, str] = field(default_factory=dict)
    template_driver: str | None = None


@dataclass(frozen=True, slots=True)
class StackSpec:
    name: str
    services: Mapping[str, ServiceSpec]
    networks: Mapping[str, NetworkSpec] = field(default_factory=dict)
    volumes: Mapping[str, VolumeSpec] = field(default_factory=dict)
    secrets: Mapping[str, FileObjectSpec] = field(default_factory=dict)
    configs: Mapping[str, FileObjectSpec] = field(default_factory=dict)
    #: Human-readable notes about valid keys that cannot apply on one engine.
    warnings: tuple[str, ...] = ()
