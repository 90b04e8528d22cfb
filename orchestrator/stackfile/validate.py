"""Checks across the whole stack, after every key was read: references to things that are not
defined, dependency cycles, ports that cannot all be bound."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping

from orchestrator import names
from orchestrator.model.spec import ServiceSpec, StackSpec
from orchestrator.stackfile.problems import Problems, Where
from orchestrator.stackfile.yamlread import YMap, YSeq


def locate(tree: YMap | YSeq, *keys: str | int) -> Where:
    """The place of the deepest existing key along `keys` (a best effort for messages)."""
    node: object = tree
    where = tree.where
    for key in keys:
        if isinstance(node, YMap) and isinstance(key, str) and key in node:
            where, node = node.key_where[key], node[key]
        elif isinstance(node, YSeq) and isinstance(key, int) and key < len(node):
            where, node = node.item_where[key], node[key]
        else:
            break
    return where


def check_stack(stack: StackSpec, tree: YMap, problems: Problems) -> None:
    for name, service in stack.services.items():
        if not names.is_service_name(name):
            problems.error(locate(tree, "services", name), f"services.{name}", f"invalid service name: use {names.SERVICE_RULE}")
        _check_references(stack, service, tree, problems)
        _check_mount_targets(service, tree, problems)
    _check_cycles(stack.services, tree, problems)
    _check_ports(stack.services, tree, problems)


def _check_references(stack: StackSpec, service: ServiceSpec, tree: YMap, problems: Problems) -> None:
    """References to what the stack does not define. A name the file defines but that could
    not be read is not reported again here: its own problem says what is wrong with it."""
    base = ("services", service.name)

    def missing(key: str, index: int | str, what: str, name: str) -> None:
        problems.error(locate(tree, *base, key, index), f"services.{service.name}.{key}", f"{what} {name!r} is not defined")

    def defined(kind: str, read: Mapping[str, object]) -> set[str]:
        written = tree.get(kind)
        return set(read) | (set(written) if isinstance(written, YMap) else set())

    networks, volumes = defined("networks", stack.networks), defined("volumes", stack.volumes)
    for attachment in service.networks:
        if attachment.network not in networks:
            missing("networks", attachment.network, "network", attachment.network)
    for index, mount in enumerate(service.volumes):
        if mount.type == "volume" and mount.source and mount.source not in volumes:
            missing("volumes", index, "volume", mount.source)
    for key in ("secrets", "configs"):
        known = defined(key, getattr(stack, key))
        for index, ref in enumerate(getattr(service, key)):
            if ref.source not in known:
                missing(key, index, key[:-1], ref.source)
    services = defined("services", stack.services)
    for index, dependency in enumerate(service.depends_on):
        if dependency.service not in services:
            missing("depends_on", index if _is_list(tree, *base, "depends_on") else dependency.service, "service", dependency.service)
        elif dependency.service == service.name:
            problems.error(locate(tree, *base, "depends_on"), f"services.{service.name}.depends_on", "a service cannot depend on itself")


def _check_mount_targets(service: ServiceSpec, tree: YMap, problems: Problems) -> None:
    """Two mounts at one container path: the engine refuses the container ("duplicate mount
    point"); compose-go refuses the file."""
    seen: dict[str, str] = {}
    targets = [(f"tmpfs[{i}]", entry.partition(":")[0]) for i, entry in enumerate(service.tmpfs)]
    targets += [(f"volumes[{i}]", mount.target) for i, mount in enumerate(service.volumes)]
    for place, target in targets:
        clean = posixpath.normpath(target)
        if clean in seen:
            key, index = place.rstrip("]").split("[")
            problems.error(
                locate(tree, "services", service.name, key, int(index)),
                f"services.{service.name}.{place}",
                f"container path {clean} is already mounted by services.{service.name}.{seen[clean]}",
            )
        seen.setdefault(clean, place)


def _is_list(tree: YMap, *keys: str) -> bool:
    node: object = tree
    for key in keys:
        node = node.get(key) if isinstance(node, YMap) else None
    return isinstance(node, YSeq)


def _check_cycles(services: Mapping[str, ServiceSpec], tree: YMap, problems: Problems) -> None:
    """Depth-first over depends_on with an explicit stack: a chain may be as long as the stack
    has services, far deeper than Python's recursion allows."""
    done: set[str] = set()
    reported: set[frozenset[str]] = set()
    for start in services:
        if start in done:
            continue
        trail = [start]  # the current path; on_trail mirrors it for membership tests
        on_trail = {start}
        pending = [iter(_dependencies(services, start))]
        while pending:
            target = next(pending[-1], None)
            if target is None:
                pending.pop()
                finished = trail.pop()
                on_trail.discard(finished)
                done.add(finished)
                continue
            if target in on_trail:
                cycle = trail[trail.index(target) :] + [target]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    problems.error(
                        locate(tree, "services", cycle[0], "depends_on"),
                        f"services.{cycle[0]}.depends_on",
                        "dependency cycle: " + " -> ".join(cycle),
                    )
            elif target not in done:
                trail.append(target)
                on_trail.add(target)
                pending.append(iter(_dependencies(services, target)))


def _dependencies(services: Mapping[str, ServiceSpec], name: str) -> list[str]:
    """The services `name` depends on that exist and are not itself (those are reported apart)."""
    return [d.service for d in services[name].depends_on if d.service in services and d.service != name]


def _check_ports(services: Mapping[str, ServiceSpec], tree: YMap, problems: Problems) -> None:
    seen: dict[tuple[str, int, str], str] = {}
    for service in services.values():
        for port in service.ports:
            if port.published is None:
                continue
            path = f"services.{service.name}.ports"
            where = locate(tree, "services", service.name, "ports")
            key = (port.host_ip or "0.0.0.0", port.published, port.protocol)
            if key in seen:
                problems.error(where, path, f"published port {port.published}/{port.protocol} is already used by service {seen[key]!r}")
            seen.setdefault(key, service.name)
            if port.mode == "host" and service.replicas > 1:
                problems.error(
                    where,
                    path,
                    f"host-mode port {port.published} cannot be bound by {service.replicas} replicas on one"
                    " engine; use mode: ingress or replicas: 1",
                )
