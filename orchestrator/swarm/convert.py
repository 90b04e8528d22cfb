"""A StackSpec as the engine API requests `docker stack deploy` would send to a Swarm manager.

Pure: no I/O, no aiodocker. The caller reads the secret and config files first
(`orchestrator.swarm.files.read_file_data`) and passes their contents in. The result holds
request bodies, in the order a deploy sends them: networks (POST /networks/create, only those a
service joins, overlay unless the file names another driver), secrets and configs (POST
/secrets/create, /configs/create, under versioned names: orchestrator/swarm/objects.py), then
services (POST /services/create; fill in the secret and config ids with
`objects.with_object_ids`). Everything is named and labelled as `docker stack deploy` names and
labels it (`<stack>_<name>`, `com.docker.stack.namespace=<stack>`), so `docker stack ls/ps/
services` on a manager shows the stack, plus our own `orchestrator.stack` label.

What cannot apply on Swarm is an error (nothing is converted; `SwarmConversionError` lists every
problem with its key path) or a warning (the key has no effect), as the loader does for one
engine. docs/swarm.md has the whole table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.labels import LABEL_STACK, LABEL_SWARM_NAMESPACE
from orchestrator.model.spec import ServiceSpec, StackSpec
from orchestrator.swarm.bodies import drop_empty
from orchestrator.swarm.objects import convert_objects
from orchestrator.swarm.problems import Findings, SwarmConversionError
from orchestrator.swarm.service import service_body

__all__ = ["SwarmConversionError", "SwarmStack", "convert_stack"]

#: swarmkit's rule for service names (a DNS name component), which `<stack>_<service>` must meet.
_SERVICE_NAME = re.compile(r"[a-zA-Z0-9](?:[-_]*[a-zA-Z0-9]+)*")
_MAX_SERVICE_NAME = 63
#: `docker stack deploy`'s network driver.
DEFAULT_NETWORK_DRIVER = "overlay"


@dataclass(frozen=True, slots=True)
class SwarmStack:
    """What to create on a Swarm manager for one stack, as engine API request bodies."""

    namespace: str
    #: Engine name → POST /networks/create body, for the networks the stack creates.
    networks: Mapping[str, dict[str, Any]]
    #: Engine names of the external networks the services join: they must exist, swarm-scoped.
    external_networks: tuple[str, ...]
    #: Stack-file name → POST /secrets/create body (its data base64: never logged, so no repr).
    secrets: Mapping[str, dict[str, Any]] = field(repr=False)
    configs: Mapping[str, dict[str, Any]] = field(repr=False)
    #: Stack-file name → engine name, for every secret/config (external ones included).
    secret_names: Mapping[str, str]
    config_names: Mapping[str, str]
    #: Service name → POST /services/create body (references without ids).
    services: Mapping[str, dict[str, Any]]
    #: "key.path: message" for each key that has no effect on Swarm.
    warnings: tuple[str, ...] = ()


def convert_stack(stack: StackSpec, file_data: Mapping[str, bytes] | None = None) -> SwarmStack:
    """The Swarm requests for `stack`. `file_data`: path → content of the secret and config
    files. Raises SwarmConversionError when the stack cannot run on Swarm."""
    findings = Findings()
    secrets, secret_names = convert_objects("secrets", stack, file_data or {}, findings)
    configs, config_names = convert_objects("configs", stack, file_data or {}, findings)
    object_names = {"secrets": secret_names, "configs": config_names}
    services = {}
    for name, service in stack.services.items():
        _check_service(stack, service, findings)
        services[name] = service_body(stack, service, object_names, findings)
    networks, external = _networks(stack, findings)
    findings.raise_if_any()
    return SwarmStack(
        namespace=stack.name,
        networks=networks,
        external_networks=external,
        secrets=secrets,
        configs=configs,
        secret_names=secret_names,
        config_names=config_names,
        services=services,
        warnings=tuple(findings.warnings),
    )


def _check_service(stack: StackSpec, service: ServiceSpec, findings: Findings) -> None:
    path = f"services.{service.name}"
    swarm_name = f"{stack.name}_{service.name}"
    if len(swarm_name) > _MAX_SERVICE_NAME or not _SERVICE_NAME.fullmatch(swarm_name):
        findings.error(path, f"the Swarm service name {swarm_name!r} is not valid: at most {_MAX_SERVICE_NAME} "
                             "letters, digits, '-' or '_' (no '.'), starting and ending with a letter or digit")
    if service.image is None:
        findings.error(f"{path}.build", "Swarm cannot build images: build it, give it as image:, and make it "
                                        "available to every node (a registry, or docker load on each)")
    elif service.build is not None:
        findings.warn(f"{path}.build", f"Swarm does not build: the image {service.image} must already be "
                                       "available to every node")
    if service.depends_on:
        findings.warn(f"{path}.depends_on", "Swarm starts services in no particular order (tasks restart until "
                                            "what they need answers)")


def _networks(stack: StackSpec, findings: Findings) -> tuple[dict[str, dict[str, Any]], tuple[str, ...]]:
    """Only the networks some service joins, as `docker stack deploy`."""
    used = sorted({attachment.network for service in stack.services.values() for attachment in service.networks})
    bodies: dict[str, dict[str, Any]] = {}
    external: list[str] = []
    for name in used:
        network = stack.networks[name]
        if network.external:
            external.append(network.engine_name)
            continue
        driver = network.driver or DEFAULT_NETWORK_DRIVER
        if driver != DEFAULT_NETWORK_DRIVER:
            findings.warn(f"networks.{name}.driver", f"services join only swarm-scoped networks; driver {driver!r} "
                                                     "must provide them")
        bodies[network.engine_name] = drop_empty({
            "Name": network.engine_name,
            "Driver": driver,
            "Scope": "swarm",
            "Attachable": network.attachable,
            "Internal": network.internal,
            "EnableIPv6": network.enable_ipv6,
            "Options": dict(network.driver_opts),
            "Labels": {**network.labels, LABEL_SWARM_NAMESPACE: stack.name, LABEL_STACK: stack.name},
            "IPAM": {"Driver": "default", "Config": [{"Subnet": subnet} for subnet in network.subnets]}
            if network.subnets else None,
            "CheckDuplicate": True,
        })
    return bodies, tuple(sorted(set(external)))
