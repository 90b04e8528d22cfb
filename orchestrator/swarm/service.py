"""One service of a stack as the body of POST /services/create (a Swarm ServiceSpec).

Field by field what docker/cli's stack converter sends, from our model: the name
`<stack>_<service>`, the namespace and image labels, the container spec, the task template
(resources, restart policy, placement, networks with the service's name as an alias, log
driver), the mode, update and rollback configs and the endpoint. Lists are sorted where their
order means nothing, so the same stack file always gives the same body and a redeploy changes
nothing that did not change. docs/swarm.md has the table.
"""

from __future__ import annotations

import re
from typing import Any

from orchestrator.labels import LABEL_STACK, LABEL_SWARM_IMAGE, LABEL_SWARM_NAMESPACE
from orchestrator.model.spec import (
    FileReference,
    Healthcheck,
    PortSpec,
    ServiceSpec,
    StackSpec,
    UpdateConfig,
)
from orchestrator.swarm.bodies import drop_empty, nanoseconds
from orchestrator.swarm.mounts import convert_mounts
from orchestrator.swarm.problems import Findings

#: The mode a file gets when the stack file gives none, as docker/cli.
_DEFAULT_FILE_MODE = 0o444
#: Networks that exist on every node and take no aliases.
_BUILTIN_NETWORKS = frozenset({"bridge", "host", "none"})
#: swarmkit's placement constraint grammar: `key == value` or `key != value`.
_CONSTRAINT_KEY = re.compile(r"[a-z_][a-z0-9\-_.]+", re.IGNORECASE)
_CONSTRAINT_VALUE = re.compile(r"[a-z0-9:\-_\s.*()?+\[\]\\^$|/]+", re.IGNORECASE)


def service_body(
    stack: StackSpec, service: ServiceSpec, object_names: dict[str, dict[str, str]], findings: Findings
) -> dict[str, Any]:
    """`object_names`: "secrets"/"configs" → stack-file name → engine name."""
    image = service.image or ""
    return drop_empty({
        "Name": f"{stack.name}_{service.name}",
        "Labels": {**service.deploy_labels, LABEL_SWARM_NAMESPACE: stack.name, LABEL_SWARM_IMAGE: image,
                   LABEL_STACK: stack.name},
        "TaskTemplate": drop_empty({
            "ContainerSpec": _container_spec(stack, service, image, object_names, findings),
            "Resources": _resources(service),
            "RestartPolicy": _restart_policy(service),
            "Placement": _placement(service, findings),
            "Networks": _networks(stack, service, findings),
            "LogDriver": service.logging and drop_empty({"Name": service.logging.driver or "",
                                                        "Options": dict(service.logging.options)}),
        }),
        "Mode": _mode(service),
        # A job is not updated in place: a changed job runs again (Swarm refuses the configs).
        "UpdateConfig": None if is_job(service.mode) else _update_config(service.update_config),
        "RollbackConfig": None if is_job(service.mode) else _update_config(service.rollback_config),
        "EndpointSpec": _endpoint(service, findings),
    })


def is_job(mode: str) -> bool:
    return mode in ("replicated-job", "global-job")


def _mode(service: ServiceSpec) -> dict[str, Any]:
    """As docker/cli: a replicated job runs `replicas` tasks at once and is done after as many
    completions; a global job runs once on every node it may use."""
    match service.mode:
        case "global":
            return {"Global": {}}
        case "global-job":
            return {"GlobalJob": {}}
        case "replicated-job":
            return {"ReplicatedJob": {"MaxConcurrent": service.replicas, "TotalCompletions": service.replicas}}
    return {"Replicated": {"Replicas": service.replicas}}


def _container_spec(
    stack: StackSpec, service: ServiceSpec, image: str, object_names: dict[str, dict[str, str]], findings: Findings
) -> dict[str, Any]:
    return drop_empty({
        "Image": image,
        "Command": _list(service.entrypoint),
        "Args": _list(service.command),
        "Env": sorted(name if value is None else f"{name}={value}" for name, value in service.environment.items()),
        "Labels": {**service.labels, LABEL_SWARM_NAMESPACE: stack.name},
        "Hostname": service.hostname,
        "User": service.user,
        "Dir": service.working_dir,
        "Init": service.init,
        "ReadOnly": service.read_only or None,
        "StopSignal": service.stop_signal,
        "StopGracePeriod": nanoseconds(service.stop_grace_period),
        "Healthcheck": service.healthcheck and _healthcheck(service.healthcheck, f"services.{service.name}", findings),
        "Mounts": convert_mounts(stack, service, findings),
        "Secrets": _file_refs(service.secrets, object_names["secrets"], "Secret"),
        "Configs": _file_refs(service.configs, object_names["configs"], "Config"),
        "CapabilityAdd": _capabilities(service.cap_add),
        "CapabilityDrop": _capabilities(service.cap_drop),
        "Ulimits": [{"Name": u.name, "Soft": u.soft, "Hard": u.hard} for u in sorted(service.ulimits, key=lambda u: u.name)],
        "Sysctls": dict(service.sysctls),
        "DNSConfig": drop_empty({"Nameservers": list(service.dns), "Search": list(service.dns_search),
                                 "Options": list(service.dns_options)}),
        "TTY": service.tty or None,
        "OpenStdin": service.stdin_open or None,
        # "host:ip" → swarmkit's "ip host", in the stack file's order.
        "Hosts": [f"{ip} {host}" for host, _, ip in (entry.partition(":") for entry in service.extra_hosts)],
    })


def _placement(service: ServiceSpec, findings: Findings) -> dict[str, Any]:
    placement, path = service.placement, f"services.{service.name}.deploy.placement"
    for index, constraint in enumerate(placement.constraints):
        problem = _constraint_problem(constraint)
        if problem:
            findings.error(f"{path}.constraints[{index}]", problem)
    if placement.max_replicas_per_node is not None and service.mode in ("global", "global-job"):
        findings.error(f"{path}.max_replicas_per_node", "applies only to mode: replicated")
    return drop_empty({
        "Constraints": list(placement.constraints),
        "Preferences": [{"Spread": {"SpreadDescriptor": spread}} for spread in placement.preferences],
        "MaxReplicas": placement.max_replicas_per_node,
    })


def _constraint_problem(constraint: str) -> str | None:
    operator = next((op for op in ("==", "!=") if op in constraint), None)
    if operator is None:
        return f"{constraint!r} needs an operator, == or != (e.g. node.role == manager)"
    key, _, value = (part.strip() for part in constraint.partition(operator))
    if not _CONSTRAINT_KEY.fullmatch(key):
        return f"{constraint!r}: the key {key!r} is not valid (letters, digits, '-', '_', '.')"
    if not _CONSTRAINT_VALUE.fullmatch(value):
        return f"{constraint!r}: the value {value!r} is not valid"
    return None


def _list(value: tuple[str, ...] | None) -> list[str] | None:
    return None if value is None else list(value)


def _healthcheck(check: Healthcheck, path: str, findings: Findings) -> dict[str, Any]:
    if check.start_interval is not None:
        findings.warn(f"{path}.healthcheck.start_interval", "needs engine 25.0 (API 1.44) on every node; older "
                                                            "engines ignore it")
    return drop_empty({
        "Test": _list(check.test),
        "Interval": nanoseconds(check.interval),
        "Timeout": nanoseconds(check.timeout),
        "Retries": check.retries,
        "StartPeriod": nanoseconds(check.start_period),
        "StartInterval": nanoseconds(check.start_interval),
    })


def _file_refs(refs: tuple[FileReference, ...], names: dict[str, str], kind: str) -> list[dict[str, Any]]:
    """Secret/config references by name; the ids are filled in once the objects exist
    (objects.with_object_ids)."""
    converted = [{
        "File": {"Name": ref.target, "UID": ref.uid or "0", "GID": ref.gid or "0",
                 "Mode": _DEFAULT_FILE_MODE if ref.mode is None else ref.mode},
        f"{kind}Name": names[ref.source],
    } for ref in refs if ref.source in names]
    return sorted(converted, key=lambda ref: (ref[f"{kind}Name"], ref["File"]["Name"]))


def _capabilities(names: tuple[str, ...]) -> list[str]:
    """As the engine spells them: CAP_ prefix, upper case (ALL stays ALL)."""
    normal = {name.upper() if name.upper() == "ALL" or name.upper().startswith("CAP_") else f"CAP_{name.upper()}"
              for name in names}
    return sorted(normal)


def _resources(service: ServiceSpec) -> dict[str, Any]:
    resources = service.resources
    return drop_empty({
        "Limits": drop_empty({"NanoCPUs": _nano_cpus(resources.cpus_limit), "MemoryBytes": resources.memory_limit,
                              "Pids": resources.pids_limit}),
        "Reservations": drop_empty({
            "NanoCPUs": _nano_cpus(resources.cpus_reservation),
            "MemoryBytes": resources.memory_reservation,
            "GenericResources": [{"DiscreteResourceSpec": {"Kind": r.kind, "Value": r.value}}
                                 for r in service.generic_resources],
        }),
    })


def _nano_cpus(cpus: float | None) -> int | None:
    return None if cpus is None else round(cpus * 1e9)


def _restart_policy(service: ServiceSpec) -> dict[str, Any]:
    # A job's `any` is its `on-failure`: Swarm never starts a completed job task again.
    # delay None (our backoff) is left to Swarm, which waits 5 s: docs/swarm.md.
    policy = service.restart_policy
    return drop_empty({
        "Condition": policy.condition,
        "Delay": nanoseconds(policy.delay),
        "MaxAttempts": policy.max_attempts or None,
        "Window": nanoseconds(policy.window) or None,
    })


def _update_config(config: UpdateConfig) -> dict[str, Any]:
    return {
        "Parallelism": config.parallelism,
        "Delay": nanoseconds(config.delay),
        "FailureAction": config.failure_action,
        "Monitor": nanoseconds(config.monitor),
        "MaxFailureRatio": config.max_failure_ratio,
        "Order": config.order,
    }


def _networks(stack: StackSpec, service: ServiceSpec, findings: Findings) -> list[dict[str, Any]]:
    attachments = []
    for index, attachment in enumerate(service.networks):
        network = stack.networks[attachment.network]
        aliases = list(attachment.aliases)
        if network.engine_name not in _BUILTIN_NETWORKS:
            aliases.append(service.name)
        if attachment.ipv4_address or attachment.ipv6_address:
            findings.warn(f"services.{service.name}.networks[{index}]",
                          "Swarm gives tasks addresses of its own: ipv4_address/ipv6_address ignored")
        attachments.append(drop_empty({"Target": network.engine_name, "Aliases": aliases}))
    return sorted(attachments, key=lambda attachment: attachment["Target"])


def _endpoint(service: ServiceSpec, findings: Findings) -> dict[str, Any]:
    path = f"services.{service.name}.ports"
    for index, port in enumerate(service.ports):
        if port.host_ip:
            findings.warn(f"{path}[{index}]", f"Swarm publishes on every address of a node: host_ip {port.host_ip} ignored")
        if port.mode == "ingress" and service.endpoint_mode == "dnsrr":
            findings.error(f"{path}[{index}]", "Swarm cannot publish a port in ingress mode for a service with "
                                               "endpoint_mode dnsrr: use mode: host")
    ports = [_port(port) for port in sorted(service.ports, key=_port_order)]
    return drop_empty({"Mode": service.endpoint_mode, "Ports": ports})


def _port(port: PortSpec) -> dict[str, Any]:
    return drop_empty({"Protocol": port.protocol, "TargetPort": port.target, "PublishedPort": port.published,
                       "PublishMode": port.mode})


def _port_order(port: PortSpec) -> tuple[int, int, str]:
    return (port.published or 0, port.target, port.protocol)
