"""How many replicas the daemon takes on: per service, and for all stacks together.

A replica costs a container, its slot state and its events; a request for 10**12 of them must be
refused before anything is saved (a saved record would bring the daemon down again at its next
start). Pure: the controller passes the stack's counts before and after the change and what the
other stacks hold.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.errors import LimitExceeded


def check_replicas(stack: str, before: Mapping[str, int], after: Mapping[str, int], others: int, *,
                   per_service: int, total: int, path: str = "{}") -> None:
    """Raise LimitExceeded if a service the change grows would run more than `per_service`
    replicas, or all stacks together more than `total`. A change that grows nothing always
    passes, so a daemon over a limit that was lowered can still shrink. `path` formats a
    service's key path in the request."""
    for service, count in after.items():
        if count > per_service and count > before.get(service, 0):
            raise LimitExceeded(
                f"{stack}_{service}: {count} replicas is over the limit of {per_service} per "
                "service (setting max_replicas, ORCHESTRATOR_MAX_REPLICAS)", path.format(service))
    grown = others + sum(after.values())
    if grown > total and grown > others + sum(before.values()):
        raise LimitExceeded(
            f"stack {stack}: the daemon would run {grown} replicas in all, over the limit of "
            f"{total} (setting max_replicas_total, ORCHESTRATOR_MAX_REPLICAS_TOTAL)")


def saved_stack_over_limits(replicas: Mapping[str, int], *, per_service: int,
                            services: int) -> str | None:
    """Why a saved stack cannot be taken on at start (a record an older daemon let in, or limits
    lowered since), or None. Loading it would bring the daemon down again; the record is set
    aside instead, with this reason, and can be moved back once the limit is raised."""
    if len(replicas) > services:
        return (f"its {len(replicas)} services are over the limit of {services} per stack "
                "(setting max_services, ORCHESTRATOR_MAX_SERVICES)")
    for service, count in replicas.items():
        if count > per_service:
            return (f"service {service} has {count} replicas, over the limit of {per_service} "
                    "per service (setting max_replicas, ORCHESTRATOR_MAX_REPLICAS)")
    return None
