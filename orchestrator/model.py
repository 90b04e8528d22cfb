"""The typed, frozen model shared by every module.

"Spec" is what the user asked for (read from a stack file); "State" is what the engine reports.
Durations are float seconds, sizes are int bytes. Mappings are plain dicts held by frozen
dataclasses: nobody mutates them after loading, and keeping them dicts makes canonical JSON (the
spec hash) trivial. No module here does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# --------------------------------------------------------------------------- ranges

# What the engine accepts for the numbers below (the stack-file loader checks every value against
# these before anything is stored; docs/stackfile.md lists them). Host-independent on purpose: a
# spec valid here is valid on any engine, so the loader needs no engine to check it.

#: The engine's numbers are Go int64 (bytes, nanoseconds, ulimits, PidsLimit).
INT64_MAX = 2**63 - 1
#: Counts that have no natural bound (retries, max_attempts, parallelism): a 32-bit int.
MAX_COUNT = 2**31 - 1
#: Durations: at most a year (the engine takes int64 nanoseconds, ~292 years; nobody waits a year).
MAX_DURATION = 365 * 24 * 3600.0
#: CPUs: the engine refuses less than 0.01 (NanoCpus 10^7) and more than the host has; 1,024 is
#: the host-independent ceiling (0 means no limit, as the engine reads it).
MIN_CPUS = 0.01
MAX_CPUS = 1024.0
#: The engine refuses a memory limit or reservation under 6 MiB (0 means none).
MIN_MEMORY = 6 << 20
#: The kernel's HOST_NAME_MAX.
MAX_HOSTNAME = 64

# --------------------------------------------------------------------------- desired state

RestartCondition = Literal["none", "on-failure", "any"]
FailureAction = Literal["pause", "continue", "rollback"]
UpdateOrder = Literal["stop-first", "start-first"]
DeployMode = Literal["replicated", "global"]


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


# --------------------------------------------------------------------------- observed state


class TaskState(enum.StrEnum):
    """A replica's life, a subset of Swarm's task states (DESIGN.md)."""

    NEW = "new"
    CREATED = "created"
    STARTING = "starting"
    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"
    SHUTDOWN = "shutdown"
    REJECTED = "rejected"
    REMOVED = "removed"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {TaskState.COMPLETE, TaskState.FAILED, TaskState.SHUTDOWN, TaskState.REJECTED, TaskState.REMOVED}
)


@dataclass(frozen=True, slots=True)
class SlotKey:
    stack: str
    service: str
    slot: int

    def __str__(self) -> str:
        return f"{self.stack}_{self.service}.{self.slot}"


EngineStatus = Literal["created", "running", "paused", "restarting", "removing", "exited", "dead"]
Health = Literal["starting", "healthy", "unhealthy"]


@dataclass(frozen=True, slots=True)
class ContainerState:
    """One container the daemon created, as the engine last reported it (read via our labels)."""

    id: str
    name: str
    key: SlotKey
    spec_hash: str
    task_id: str
    #: Creation time (epoch seconds, from our label: the engine's list only gives whole seconds).
    created_at: float
    status: EngineStatus
    health: Health | None = None
    exit_code: int | None = None
    started_at: float | None = None
    finished_at: float | None = None
    oom_killed: bool = False
    error: str = ""
    #: Published ports: "80/tcp" -> host port (on 127.0.0.1 for ingress-mode ports).
    ports: Mapping[str, int] = field(default_factory=dict)
    #: IPv4 address on its first network (running containers), for the ingress.
    address: str | None = None
    #: Created as a slot's standby (label `orchestrator.standby`; it keeps it once started).
    standby: bool = False

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def alive(self) -> bool:
        """Has (or may soon have) a process: counts as occupying its slot.

        A `created` container whose start failed (the engine sets `error`) never will."""
        if self.status == "created":
            return not self.error
        return self.status in ("running", "paused", "restarting")

    @property
    def is_standby(self) -> bool:
        """A standby never started, so no task (docs/standby.md): waiting (`created`), or on
        its way out unused (`removing`, or `dead` after a failed removal). Taken for a task
        there, it would be a slot's newest dead container: a failure of a task that never was."""
        if not self.standby or self.error:
            return False
        if self.status == "created":
            return True
        return self.status in ("removing", "dead") and self.started_at is None


# --------------------------------------------------------------------------- plan


@dataclass(frozen=True, slots=True)
class CreateTask:
    """Create and start a fresh container in `key`'s slot."""

    key: SlotKey
    reason: str
    #: Restart attempt in the slot's current run of quick failures (0: not a restart). The
    #: executor hands it back to RestartBook.record_created / record_rejection.
    attempt: int = 0
    #: The slot's standby (container id, task id) to start instead of creating one.
    standby_id: str | None = None
    standby_task_id: str = ""


@dataclass(frozen=True, slots=True)
class StopTask:
    """Stop gracefully (stop signal, grace period) and keep the container as history."""

    key: SlotKey
    container_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RemoveContainer:
    """Stop gracefully if running, then remove. Used for scale-down, history pruning, rm."""

    key: SlotKey
    container_id: str
    reason: str
    #: A standby never started (ContainerState.is_standby): no task, so nothing to stop or report.
    standby: bool = False


@dataclass(frozen=True, slots=True)
class PrepareStandby:
    """Create (not start) a standby for `key`'s slot: its next restart is only a start."""

    key: SlotKey
    reason: str = "standby"


Action = CreateTask | StopTask | RemoveContainer | PrepareStandby


@dataclass(frozen=True, slots=True)
class PlanNote:
    """A restart decision worth telling subscribers about (published once per container)."""

    kind: Literal["restart_scheduled", "gave_up"]
    key: SlotKey
    container_id: str | None
    reason: str
    #: restart_scheduled: when the replacement will be created (epoch seconds).
    not_before: float | None = None


UpdateState = Literal["updating", "paused", "completed", "rolling_back", "rolled_back"]


@dataclass(frozen=True, slots=True)
class UpdateStatus:
    """One service's rolling update (or rollback), kept in the store so a restarted daemon
    resumes it. Times are epoch seconds. The rules are in orchestrator/updates.py."""

    state: UpdateState
    #: The spec hash the service's slots are being moved to.
    target_hash: str
    started_at: float
    #: The spec before this update began: what `rollback` returns to (None: nothing to return to).
    previous: ServiceSpec | None = None
    #: This run is a rollback: rollback_config applies and a failure pauses, never rolls back.
    rollback: bool = False
    #: Slots that were not on the target hash when the update began (the ratio's denominator).
    total: int = 0
    #: Tasks created by this update that failed (never ran, or ended within `monitor`).
    failures: tuple[str, ...] = ()
    #: A batch is under way (its slots not all replaced yet).
    batch_open: bool = False
    #: The next batch may not start before this time (update_config.delay).
    next_batch_at: float | None = None
    #: Every slot is replaced: the update completes at this time if nothing fails before.
    monitor_until: float | None = None
    finished_at: float | None = None
    #: Why it paused or rolls back.
    reason: str = ""
    #: Which slots run which spec hash, as of the last pass.
    message: str = ""

    @property
    def active(self) -> bool:
        return self.state in ("updating", "rolling_back")


@dataclass(frozen=True, slots=True)
class Plan:
    #: Every RemoveContainer and StopTask comes before every CreateTask (a stop-first update
    #: stops the old container of a slot in the same plan that creates its replacement);
    #: within each kind, sorted by (service, slot).
    actions: tuple[Action, ...] = ()
    #: Earliest epoch time at which planning again may yield new actions (a restart delay ends).
    wake_at: float | None = None
    notes: tuple[PlanNote, ...] = ()
    #: The rolling updates' statuses after this pass, by service (only services that have one).
    updates: Mapping[str, UpdateStatus] = field(default_factory=dict)
    #: Services whose update failed with failure_action rollback: the spec to go back to.
    rollbacks: Mapping[str, ServiceSpec] = field(default_factory=dict)
