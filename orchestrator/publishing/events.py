"""The event message that the daemon publishes on Redis (docs/events.md, event_schema.json).

An `Event` says what changed; the publisher adds the envelope (`v`, `seq`, `time`) when it sends
it, because `seq` is only known then. Build events with the functions below, one per `type`, so
each type always carries the fields the schema requires of it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from importlib import resources
from typing import Any, Literal, get_args

from orchestrator.model.observed import SlotKey, TaskState
from orchestrator.model.plan import UpdateStatus

SCHEMA_VERSION = 1

EventType = Literal[
    "stack.deployed",
    "stack.removed",
    "service.scaled",
    "service.converged",
    "service.degraded",
    "service.port_unavailable",
    "service.port_published",
    "task.state",
    "task.restart_scheduled",
    "task.gave_up",
    "task.unhealthy",
    "update.started",
    "update.completed",
    "update.paused",
    "update.rollback_started",
    "update.rolled_back",
    "engine.disconnected",
    "engine.reconnected",
    "events.dropped",
]
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    stack: str | None = None
    service: str | None = None
    slot: int | None = None
    container_id: str | None = None
    task_id: str | None = None
    from_state: TaskState | None = None
    to_state: TaskState | None = None
    exit_code: int | None = None
    reason: str | None = None
    delay_s: float | None = None
    replicas: int | None = None
    running: int | None = None
    dropped: int | None = None

    def message(self, seq: int, time: float) -> dict[str, Any]:
        """The wire form: the envelope first, then only the fields that are set."""
        body: dict[str, Any] = {"v": SCHEMA_VERSION, "seq": seq, "time": format_time(time)}
        for name in _BODY_FIELDS:
            value = getattr(self, name)
            if value is not None:
                body[_WIRE_NAMES.get(name, name)] = value
        return body

    def to_json(self, seq: int, time: float) -> str:
        return json.dumps(self.message(seq, time), separators=(",", ":"))


_BODY_FIELDS = tuple(f.name for f in fields(Event))
_WIRE_NAMES = {"from_state": "from", "to_state": "to"}


def format_time(epoch: float) -> str:
    """UTC RFC 3339 with milliseconds: `2024-05-01T12:00:00.123Z`."""
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def load_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a message, as shipped with the package."""
    text = resources.files("orchestrator.publishing").joinpath("event_schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


# --------------------------------------------------------------------------- stacks and services


def stack_deployed(stack: str, reason: str | None = None) -> Event:
    return Event("stack.deployed", stack=stack, reason=reason)


def stack_removed(stack: str, reason: str | None = None) -> Event:
    return Event("stack.removed", stack=stack, reason=reason)


def service_scaled(stack: str, service: str, replicas: int, running: int | None = None) -> Event:
    return Event("service.scaled", stack=stack, service=service, replicas=replicas, running=running)


def service_converged(stack: str, service: str, replicas: int) -> Event:
    return Event("service.converged", stack=stack, service=service, replicas=replicas, running=replicas)


def service_degraded(stack: str, service: str, replicas: int, running: int, reason: str) -> Event:
    return Event(
        "service.degraded", stack=stack, service=service, replicas=replicas, running=running, reason=reason
    )


def service_port_unavailable(stack: str, service: str, reason: str) -> Event:
    """The daemon cannot listen on one of the service's published ports (ingress mode);
    `reason` names the port and why. Binding is retried with backoff."""
    return Event("service.port_unavailable", stack=stack, service=service, reason=reason)


def service_port_published(stack: str, service: str, reason: str) -> Event:
    """A published port that was unavailable is listened on again."""
    return Event("service.port_published", stack=stack, service=service, reason=reason)


# --------------------------------------------------------------------------- tasks (replicas)


def task_state(
    key: SlotKey,
    container_id: str | None,
    task_id: str,
    from_state: TaskState,
    to_state: TaskState,
    exit_code: int | None = None,
    reason: str | None = None,
) -> Event:
    """One replica's transition; `container_id` is None while it is `new` (nothing created yet)."""
    return Event(
        "task.state", **_slot(key), container_id=container_id, task_id=task_id,
        from_state=from_state, to_state=to_state, exit_code=exit_code, reason=reason,
    )  # fmt: skip


def task_restart_scheduled(key: SlotKey, delay_s: float, reason: str, exit_code: int | None = None) -> Event:
    return Event("task.restart_scheduled", **_slot(key), delay_s=delay_s, reason=reason, exit_code=exit_code)


def task_gave_up(key: SlotKey, reason: str, exit_code: int | None = None) -> Event:
    return Event("task.gave_up", **_slot(key), reason=reason, exit_code=exit_code)


def task_unhealthy(key: SlotKey, container_id: str, task_id: str, reason: str) -> Event:
    return Event("task.unhealthy", **_slot(key), container_id=container_id, task_id=task_id, reason=reason)


def _slot(key: SlotKey) -> dict[str, Any]:
    return {"stack": key.stack, "service": key.service, "slot": key.slot}


# --------------------------------------------------------------------------- rolling updates


def update_started(stack: str, service: str, replicas: int, reason: str | None = None) -> Event:
    return Event("update.started", stack=stack, service=service, replicas=replicas, reason=reason)


def update_completed(stack: str, service: str, replicas: int) -> Event:
    return Event("update.completed", stack=stack, service=service, replicas=replicas)


def update_paused(stack: str, service: str, reason: str) -> Event:
    return Event("update.paused", stack=stack, service=service, reason=reason)


def update_rollback_started(stack: str, service: str, replicas: int, reason: str) -> Event:
    return Event("update.rollback_started", stack=stack, service=service, replicas=replicas, reason=reason)


def update_rolled_back(stack: str, service: str, reason: str) -> Event:
    return Event("update.rolled_back", stack=stack, service=service, reason=reason)


def update_transition(
    stack: str, service: str, old: UpdateStatus | None, new: UpdateStatus, replicas: int
) -> Event | None:
    """The event for an update whose state (or run: a rollback of an update) just changed."""
    if old is not None and (old.state, old.started_at) == (new.state, new.started_at):
        return None
    match new.state:
        case "updating":
            resumed = old is not None and old.state == "paused"
            return update_started(stack, service, replicas, "resumed" if resumed else "spec changed")
        case "rolling_back":
            return update_rollback_started(stack, service, replicas, new.reason or "rollback")
        case "paused":
            return update_paused(stack, service, new.reason or "paused")
        case "completed":
            return update_completed(stack, service, replicas)
        case "rolled_back":
            return update_rolled_back(stack, service, new.reason or "rolled back")
    return None


# --------------------------------------------------------------------------- the daemon itself


def engine_disconnected(reason: str) -> Event:
    return Event("engine.disconnected", reason=reason)


def engine_reconnected() -> Event:
    return Event("engine.reconnected")


def events_dropped(count: int) -> Event:
    """Sent by the publisher itself: `count` older events were dropped while Redis was away."""
    return Event("events.dropped", dropped=count, reason="publisher queue full: Redis unavailable or too slow")
