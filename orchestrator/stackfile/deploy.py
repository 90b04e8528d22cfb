"""A service's `deploy:` section, and the `restart:` fallback when it has no restart_policy."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.model.ranges import INT64_MAX, MIN_MEMORY
from orchestrator.model.spec import DeployMode, GenericResource, Placement, Resources, RestartPolicy, UpdateConfig
from orchestrator.stackfile.limits import over_limit
from orchestrator.stackfile.problems import quote
from orchestrator.stackfile.reader import Section, labels, to_int
from orchestrator.stackfile.values import plain

_DEPLOY_KEYS = ("mode", "replicas", "labels", "resources", "restart_policy", "update_config", "rollback_config",
                "endpoint_mode", "placement")
_PLACEMENT_KEYS = ("constraints", "preferences", "max_replicas_per_node")
_ENGINE_CONDITIONS = {"always": "any", "unless-stopped": "any", "no": "none"}
_UPDATE_KEYS = ("parallelism", "delay", "failure_action", "monitor", "max_failure_ratio", "order")


@dataclass(frozen=True, slots=True)
class Deploy:
    mode: DeployMode = "replicated"
    replicas: int | None = None  # None: not given (1, or `scale:`)
    labels: dict[str, str] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)
    restart_policy: RestartPolicy | None = None  # None: not given, `restart:` decides
    update_config: UpdateConfig = field(default_factory=UpdateConfig)
    rollback_config: UpdateConfig = field(default_factory=UpdateConfig)
    endpoint_mode: str = "vip"
    placement: Placement = field(default_factory=Placement)
    generic_resources: tuple[GenericResource, ...] = ()


def read_deploy(section: Section | None) -> Deploy:
    if section is None:
        return Deploy()
    section.check_keys(_DEPLOY_KEYS)
    mode = section.choice("mode", ("replicated", "global", "replicated-job", "global-job"), "replicated")
    if mode.endswith("-job") and section.ctx.limits.backend == "engine":
        section.error("mode", f"mode {mode!r} (run-to-completion jobs) runs only on Swarm (ORCHESTRATOR_BACKEND=swarm)")
        mode = "replicated"
    replicas = replica_count(section, "replicas")
    if replicas is not None and mode in ("global", "global-job"):
        section.error("replicas", "replicas can only be used with mode: replicated or replicated-job")
    endpoint_mode = section.choice("endpoint_mode", ("vip", "dnsrr"), "vip")
    if "endpoint_mode" in section and endpoint_mode == "vip" and section.ctx.limits.backend == "engine":
        section.warn("endpoint_mode", "no virtual IP on one engine: replicas share the service's DNS name (round robin), as with dnsrr")
    return Deploy(
        mode=mode,
        replicas=replicas,
        labels=labels(section, "labels"),
        resources=_resources(section.section("resources")),
        restart_policy=_restart_policy(section.section("restart_policy")),
        update_config=_update_config(section.section("update_config"), rollback=False),
        rollback_config=_update_config(section.section("rollback_config"), rollback=True),
        endpoint_mode=endpoint_mode,
        placement=_placement(section.section("placement")),
        generic_resources=_generic_resources(section.section("resources")),
    )


def _generic_resources(resources: Section | None) -> tuple[GenericResource, ...]:
    """`reservations.generic_resources: [{discrete_resource_spec: {kind: gpu, value: 2}}]`, read
    on Swarm (docker/cli maps the discrete ones; swarmkit's named ones have no compose form)."""
    reservations = resources.section("reservations") if resources is not None else None
    if reservations is None or reservations.ctx.limits.backend != "swarm":
        return ()
    found = []
    for item, path, where in reservations.seq("generic_resources"):
        if not hasattr(item, "get"):
            reservations.ctx.problems.error(where, path, "an item is {discrete_resource_spec: {kind: ..., value: ...}}")
            continue
        entry = Section(item, path, reservations.ctx, where)
        entry.check_keys(("discrete_resource_spec",))
        spec = entry.section("discrete_resource_spec")
        if spec is None:
            entry.error(None, "needs discrete_resource_spec: {kind: ..., value: ...}")
            continue
        spec.check_keys(("kind", "value"))
        kind, value = spec.checked("kind", plain), spec.integer("value", None, minimum=1, maximum=INT64_MAX)
        if not kind or value is None:
            spec.error(None, "needs a kind (e.g. gpu) and a value of at least 1")
            continue
        found.append(GenericResource(kind, value))
    return tuple(found)


def _placement(section: Section | None) -> Placement:
    """For Swarm's scheduler (swarm/service.py checks the constraints' grammar); read on one
    engine too, where it has no effect, so `orchestrator config` shows it."""
    if section is None:
        return Placement()
    section.check_keys(_PLACEMENT_KEYS)
    if section.ctx.limits.backend == "engine":
        section.ctx.problems.warn(section.path, "placement has no meaning on one engine; ignored")
    preferences = []
    for item, path, where in section.seq("preferences"):
        spread = item.get("spread") if hasattr(item, "get") else None
        if not isinstance(spread, str) or not spread:
            section.ctx.problems.error(where, path, "a preference is {spread: <node attribute>}")
            continue
        preferences.append(spread)
    constraints = section.raw("constraints")
    if isinstance(constraints, str):  # a common mistake: named in the message
        section.error("constraints", f"must be a list, not {quote(constraints)}")
    return Placement(
        constraints=() if isinstance(constraints, str) else section.str_list("constraints", allow_string=False),
        preferences=tuple(preferences),
        max_replicas_per_node=section.integer("max_replicas_per_node", None),
    )


def replica_count(section: Section, key: str) -> int | None:
    """`replicas` (or `scale`): 0 up to the limit of replicas per service (each one costs the
    daemon memory too, so the limit is checked before anything is planned)."""
    replicas: int | None = section.integer(key, None, maximum=None)
    limit = section.ctx.limits.max_replicas
    if replicas is not None and replicas > limit:
        section.error(key, over_limit(quote(section.raw(key)), limit, "replicas per service", "max_replicas"))
        return None
    return replicas


def _resources(section: Section | None) -> Resources:
    if section is None:
        return Resources()
    section.check_keys(("limits", "reservations"))
    limits, reservations = section.section("limits"), section.section("reservations")
    cpus_limit = memory_limit = pids_limit = cpus_reservation = memory_reservation = None
    if limits is not None:
        limits.check_keys(("cpus", "memory", "pids"))
        cpus_limit = limits.cpus("cpus")
        memory_limit = _memory(limits)
        pids_limit = limits.integer("pids", None, minimum=-1, maximum=INT64_MAX)
    if reservations is not None:
        on_swarm = section.ctx.limits.backend == "swarm"
        reservations.check_keys(
            ("cpus", "memory", *(("generic_resources",) if on_swarm else ())),
            {
                **({} if on_swarm else {"generic_resources": "generic resources are a Swarm scheduling option; ignored"}),
                "devices": "device reservations are not supported; ignored",
            },
        )
        cpus_reservation = reservations.cpus("cpus")
        if cpus_reservation is not None:
            reservations.warn("cpus", "a CPU reservation only guides Swarm's scheduler; it has no effect on one engine")
        memory_reservation = _memory(reservations)
        if memory_reservation and memory_limit and memory_reservation > memory_limit:
            reservations.error("memory", f"the reservation ({memory_reservation} bytes) is above the limit ({memory_limit} bytes)")
    return Resources(cpus_limit, memory_limit, pids_limit, cpus_reservation, memory_reservation)


def _memory(section: Section) -> int | None:
    """0 (none) or at least the engine's minimum."""
    memory: int | None = section.size("memory")
    if memory and memory < MIN_MEMORY:
        section.error("memory", f"{memory} bytes is under the engine's minimum of 6 MiB ({MIN_MEMORY} bytes)")
        return None
    return memory


def _restart_policy(section: Section | None) -> RestartPolicy | None:
    if section is None:
        return None
    section.check_keys(("condition", "delay", "max_attempts", "window"))
    defaults = RestartPolicy()
    condition = section.choice("condition", ("none", "on-failure", "any", *_ENGINE_CONDITIONS), defaults.condition)
    if condition in _ENGINE_CONDITIONS:
        # The engine's restart policy names (docker compose passes them on to the engine).
        section.warn("condition", f"{condition!r} is the engine's name; read as the Swarm condition {_ENGINE_CONDITIONS[condition]!r}")
        condition = _ENGINE_CONDITIONS[condition]
    return RestartPolicy(
        condition=condition,
        delay=section.duration("delay", defaults.delay),
        max_attempts=section.integer("max_attempts", defaults.max_attempts),
        window=section.duration("window", defaults.window),
    )


def _update_config(section: Section | None, rollback: bool) -> UpdateConfig:
    defaults = UpdateConfig()
    if section is None:
        return defaults
    section.check_keys(_UPDATE_KEYS)
    actions = ("pause", "continue") if rollback else ("pause", "continue", "rollback")
    ratio = section.number("max_failure_ratio", defaults.max_failure_ratio)
    if not 0.0 <= ratio <= 1.0:
        section.error("max_failure_ratio", f"must be between 0 and 1, not {ratio}")
    return UpdateConfig(
        parallelism=section.integer("parallelism", defaults.parallelism),
        delay=section.duration("delay", defaults.delay),
        failure_action=section.choice("failure_action", actions, defaults.failure_action),
        monitor=section.duration("monitor", defaults.monitor),
        max_failure_ratio=ratio,
        order=section.choice("order", ("stop-first", "start-first"), defaults.order),
    )


def restart_fallback(section: Section) -> RestartPolicy | None:
    """`restart:` mapped as docker/cli's convertRestartPolicy does when deploy.restart_policy is
    absent: "no"/"" -> the default policy; always/unless-stopped -> any; on-failure[:N] ->
    on-failure with max_attempts N. None when `restart:` is not given."""
    if "restart" not in section:
        return None
    text = section.text("restart", "")
    name, _colon, count = text.partition(":")
    if name in ("", "no") and not count:
        section.warn(
            "restart",
            f"restart: {quote(text)} does not stop restarts in a stack: docker stack deploy (and this "
            "daemon) then use the default restart policy (condition any); set "
            "deploy.restart_policy.condition: none for that",
        )
        return RestartPolicy()
    if name in ("always", "unless-stopped") and not count:
        return RestartPolicy(condition="any")
    if name == "on-failure":
        if count and not (count.isascii() and count.isdigit()):
            section.error("restart", f"invalid restart policy {quote(text)}: the retry count must be a number")
            return None
        try:
            attempts = to_int(count or "0")
        except ValueError as exc:
            section.error("restart", f"invalid restart policy {quote(text)}: the retry count {exc}")
            return None
        return RestartPolicy(condition="on-failure", max_attempts=attempts)
    section.error("restart", f"unknown restart policy {quote(text)} (no, always, on-failure[:N], unless-stopped)")
    return None
