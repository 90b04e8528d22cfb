"""Every label key, in one place, and the spec hash (Redis names: publishing/channels.py).

The engine is the source of truth for what exists: every object the daemon creates carries
these labels, so a restarted daemon finds (and adopts) what is there by listing on them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from typing import Any

from orchestrator.model.observed import SlotKey
from orchestrator.model.spec import ServiceSpec

PREFIX = "orchestrator"
LABEL_STACK = f"{PREFIX}.stack"
LABEL_SERVICE = f"{PREFIX}.service"
LABEL_SLOT = f"{PREFIX}.slot"
LABEL_SPEC_HASH = f"{PREFIX}.spec-hash"
LABEL_TASK_ID = f"{PREFIX}.task-id"
#: Creation time in ns since the epoch: orders a slot's containers exactly.
LABEL_CREATED_NS = f"{PREFIX}.created-ns"
#: Marks a container created as a slot's standby (docs/standby.md).
LABEL_STANDBY = f"{PREFIX}.standby"
#: Marks a network or volume the daemon created for a stack.
LABEL_MANAGED = f"{PREFIX}.managed"

# On Swarm (orchestrator/swarm): the labels `docker stack deploy` puts on what it creates, so
# `docker stack ls/ps/services` shows our stacks too, and two of our own for versioned secrets
# and configs (the stack file's name of the object, and the hash of its content).
LABEL_SWARM_NAMESPACE = "com.docker.stack.namespace"
LABEL_SWARM_IMAGE = "com.docker.stack.image"
LABEL_OBJECT_NAME = f"{PREFIX}.object"
LABEL_CONTENT_HASH = f"{PREFIX}.content-hash"

# Fields of a service that do not go into its containers: changing them never recreates.
_UNHASHED_FIELDS = frozenset({"provider", "replicas", "update_config", "rollback_config", "deploy_labels", "placement",
                              "dns_search", "dns_options", "tty", "stdin_open", "generic_resources"})


def spec_hash(service: ServiceSpec) -> str:
    """sha256 of the canonical JSON of what a container is made from (12 hex chars)."""
    data = {
        f.name: _plain(getattr(service, f.name))
        for f in dataclasses.fields(service)
        if f.name not in _UNHASHED_FIELDS
    }
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    return value


def container_labels(
    key: SlotKey, spec_digest: str, task_id: str, created_ns: int, standby: bool = False
) -> dict[str, str]:
    return {
        LABEL_STACK: key.stack,
        LABEL_SERVICE: key.service,
        LABEL_SLOT: str(key.slot),
        LABEL_SPEC_HASH: spec_digest,
        LABEL_TASK_ID: task_id,
        LABEL_CREATED_NS: str(created_ns),
        **({LABEL_STANDBY: "1"} if standby else {}),
    }


def image_name(stack: str, service: ServiceSpec) -> str:
    """The service's image, or for a `build:`-only service the name its build is tagged with."""
    return service.image or f"{stack}_{service.name}"


def container_name(key: SlotKey, task_id: str) -> str:
    """`<stack>_<service>.<slot>.<task-id>`, as Swarm names task containers."""
    return f"{key.stack}_{key.service}.{key.slot}.{task_id}"


def stack_filter(stack: str | None = None) -> dict[str, list[str]]:
    """Engine list/event filter for our containers (of one stack, or all)."""
    return {"label": [f"{LABEL_STACK}={stack}" if stack else LABEL_STACK]}


def slot_filter(key: SlotKey) -> dict[str, list[str]]:
    """Engine list filter for one slot's containers (the engine ANDs its label filters)."""
    return {"label": [f"{LABEL_STACK}={key.stack}", f"{LABEL_SERVICE}={key.service}", f"{LABEL_SLOT}={key.slot}"]}


_DECIMAL = re.compile(r"-?[0-9]{1,19}")


def decimal(text: str) -> int | None:
    """A number the engine (or whoever labelled a container) wrote as text: ASCII digits only,
    at most int64's width (`str.isdigit()` also takes '²', which `int()` then refuses)."""
    return int(text) if _DECIMAL.fullmatch(text) else None
