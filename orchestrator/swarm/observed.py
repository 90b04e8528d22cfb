"""What a relist of a Swarm manager shows, and the messages that tell it: pure, no I/O.

Swarm publishes no task events (a task's container events happen on its node; a manager's event
stream has services and nodes only), so the watcher (swarm/watcher.py) lists the tasks and the
nodes again and again and compares each list with the states it last published (`Known`):

- a task whose Swarm state differs from the one last published gives one `task.state`, with
  Swarm's state (`swarm_state`) and its node kept, `from`/`to` mapped onto our states;
- a task no longer listed (its service removed, or Swarm's task history reaped it) gives one
  `task.state` to `removed`;
- a node whose state or availability changed gives one `node.state`.

The messages of one relist are ordered by Swarm's own timestamp of each task's state, so the
tasks of a slot are told in the order Swarm moved them. `Known` is what the watcher saves, so a
restarted daemon sends only what changed while it was away (never a message twice).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.publishing import events
from orchestrator.publishing.events import Event
from orchestrator.model.observed import SlotKey, TaskState

#: Swarm's task states onto ours (docs/swarm.md): everything before a container exists is `new`.
SWARM_STATES: Mapping[str, TaskState] = {
    "new": TaskState.NEW,
    "pending": TaskState.NEW,
    "assigned": TaskState.NEW,
    "accepted": TaskState.NEW,
    "preparing": TaskState.NEW,
    "ready": TaskState.CREATED,
    "starting": TaskState.STARTING,
    "running": TaskState.RUNNING,
    "complete": TaskState.COMPLETE,
    "failed": TaskState.FAILED,
    "shutdown": TaskState.SHUTDOWN,
    "rejected": TaskState.REJECTED,
    # The node was gone too long: the task is lost with it.
    "orphaned": TaskState.FAILED,
    "remove": TaskState.REMOVED,
}
_TERMINAL_SWARM = frozenset({"complete", "failed", "shutdown", "rejected", "orphaned", "remove"})


def our_state(swarm_state: str) -> TaskState:
    return SWARM_STATES.get(swarm_state, TaskState.NEW)


@dataclass(frozen=True, slots=True)
class ServiceRef:
    """A listed Swarm service of a stack: `<stack>_<name>`."""

    id: str
    stack: str
    name: str
    #: As the stack file names it (service_mode).
    mode: str = "replicated"


@dataclass(frozen=True, slots=True)
class NodeSeen:
    id: str
    hostname: str
    state: str
    availability: str
    role: str = "worker"
    message: str = ""
    created_at: str = ""


@dataclass(frozen=True, slots=True)
class TaskSeen:
    id: str
    key: SlotKey
    node: str
    swarm_state: str
    desired_state: str
    #: Swarm's time of this state (epoch seconds).
    timestamp: float
    created_at: float
    image: str = ""
    container_id: str = ""
    exit_code: int | None = None
    error: str = ""
    #: A job's task: the run of the job it belongs to (Swarm's JobIteration), None otherwise.
    job_iteration: int | None = None

    @property
    def state(self) -> TaskState:
        return our_state(self.swarm_state)

    def facts(self) -> list[Any]:
        """What `Known` keeps of it, enough to tell its removal later."""
        return [self.swarm_state, self.key.stack, self.key.service, self.key.slot, self.node]


@dataclass(slots=True)
class Known:
    """The states last published: task id → [swarm state, stack, service, slot, node];
    node id → [state, availability]. Plain lists, saved as JSON by the watcher."""

    tasks: dict[str, list[Any]] = field(default_factory=dict)
    nodes: dict[str, list[str]] = field(default_factory=dict)
    #: service id → [Swarm's UpdateStatus.State, its StartedAt]
    updates: dict[str, list[str]] = field(default_factory=dict)

    def to_plain(self) -> dict[str, Any]:
        return {"tasks": self.tasks, "nodes": self.nodes, "updates": self.updates}

    def copy(self) -> Known:
        """The message functions below replace entries, never change one in place: a shallow
        copy is enough to compute a relist's messages and keep them only once saved."""
        return Known(dict(self.tasks), dict(self.nodes), dict(self.updates))

    @classmethod
    def from_plain(cls, data: Any) -> Known:
        """Anything unreadable counts as nothing known (then every task is told once more)."""
        if not isinstance(data, dict):
            return cls()
        tasks = data.get("tasks")
        nodes = data.get("nodes")
        updates = data.get("updates")
        return cls(
            updates={k: v for k, v in updates.items() if isinstance(v, list) and len(v) == 2}
            if isinstance(updates, dict) else {},
            tasks={k: v for k, v in tasks.items() if isinstance(v, list) and len(v) == 5}
            if isinstance(tasks, dict) else {},
            nodes={k: v for k, v in nodes.items() if isinstance(v, list) and len(v) == 2}
            if isinstance(nodes, dict) else {},
        )


def parse_time(text: str | None) -> float:
    """Swarm's RFC 3339 times carry nanoseconds; Python reads at most microseconds."""
    if not text:
        return 0.0
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(ch for ch in rest if ch.isdigit())
        zone = rest[len(digits):]
        text = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def service_ref(service: Mapping[str, Any], namespace_label: str) -> ServiceRef | None:
    """The stack and name of a listed service, None when it belongs to no stack."""
    spec = service.get("Spec") or {}
    stack = (spec.get("Labels") or {}).get(namespace_label)
    name = spec.get("Name") or ""
    if not stack or not name.startswith(f"{stack}_"):
        return None
    return ServiceRef(service["ID"], stack, name[len(stack) + 1:], service_mode(service))


def node_seen(node: Mapping[str, Any]) -> NodeSeen:
    status = node.get("Status") or {}
    spec = node.get("Spec") or {}
    return NodeSeen(
        id=node["ID"],
        hostname=(node.get("Description") or {}).get("Hostname") or node["ID"][:12],
        state=status.get("State") or "unknown",
        availability=spec.get("Availability") or "active",
        role=spec.get("Role") or "worker",
        message=status.get("Message") or "",
        created_at=node.get("CreatedAt") or "",
    )


def global_slots(nodes: Iterable[NodeSeen]) -> dict[str, int]:
    """A `mode: global` task has no slot in Swarm (one task a node): its slot here is its node's
    place among the nodes by age, 1 for the oldest, so it stays the same while nodes join."""
    ordered = sorted(nodes, key=lambda node: (node.created_at, node.id))
    return {node.id: index for index, node in enumerate(ordered, start=1)}


def task_seen(
    task: Mapping[str, Any],
    services: Mapping[str, ServiceRef],
    nodes: Mapping[str, NodeSeen],
    node_slots: Mapping[str, int],
) -> TaskSeen | None:
    """A listed task of a stack's service, None for any other task."""
    service = services.get(task.get("ServiceID") or "")
    if service is None:
        return None
    status = task.get("Status") or {}
    container = status.get("ContainerStatus") or {}
    node_id = task.get("NodeID") or ""
    if service.mode == "replicated-job":  # Swarm numbers a job's tasks from 0 (0 is left out)
        slot = (task.get("Slot") or 0) + 1
    else:
        slot = task.get("Slot") or node_slots.get(node_id) or 0
    if slot < 1:  # a global task not yet given a node
        slot = 1
    swarm_state = status.get("State") or "new"
    terminal = swarm_state in _TERMINAL_SWARM
    exit_code = container.get("ExitCode") if terminal and container.get("ContainerID") else None
    spec = (task.get("Spec") or {}).get("ContainerSpec") or {}
    return TaskSeen(
        id=task["ID"],
        key=SlotKey(service.stack, service.name, slot),
        node=nodes[node_id].hostname if node_id in nodes else node_id[:12],
        swarm_state=swarm_state,
        desired_state=task.get("DesiredState") or "",
        timestamp=parse_time(status.get("Timestamp")),
        created_at=parse_time(task.get("CreatedAt")),
        image=(spec.get("Image") or "").split("@", 1)[0],
        container_id=container.get("ContainerID") or "",
        exit_code=exit_code,
        error=status.get("Err") or "",
        job_iteration=_index(task.get("JobIteration")),
    )


def _index(version: Any) -> int | None:
    """Swarm's {"Index": n} version objects."""
    return int(version.get("Index") or 0) if isinstance(version, dict) else None


def task_messages(known: Known, seen: Iterable[TaskSeen], listed_ids: Iterable[str]) -> list[Event]:
    """The `task.state` messages between what was published and what is listed now; updates
    `known` to match. `listed_ids`: every task id the list had (of any service), so that a task
    is only told removed when Swarm no longer lists it at all."""
    changed: list[tuple[float, str, Event]] = []
    for task in seen:
        before = known.tasks.get(task.id)
        if before is not None and before[0] == task.swarm_state:
            continue
        from_state = our_state(before[0]) if before is not None else TaskState.NEW
        changed.append((task.timestamp, task.id, events.task_state(
            task.key, task.container_id or None, task.id, from_state, task.state,
            exit_code=task.exit_code, reason=_reason(task), node=task.node or None,
            swarm_state=task.swarm_state,
        )))
        known.tasks[task.id] = task.facts()
    listed = set(listed_ids)
    for task_id in [task_id for task_id in known.tasks if task_id not in listed]:
        swarm_state, stack, service, slot, node = known.tasks.pop(task_id)
        changed.append((float("inf"), task_id, events.task_state(
            SlotKey(stack, service, slot), None, task_id, our_state(swarm_state), TaskState.REMOVED,
            node=node or None, swarm_state="remove",
        )))
    changed.sort(key=lambda item: (item[0], item[1]))
    return [event for _, _, event in changed]


def _reason(task: TaskSeen) -> str | None:
    if task.error:
        return task.error
    if task.swarm_state in ("complete", "failed") and task.exit_code is not None:
        return f"exit {task.exit_code}"
    return None


def node_messages(known: Known, nodes: Iterable[NodeSeen]) -> list[Event]:
    """One `node.state` per node whose state or availability is not the one last published."""
    messages = []
    for node in sorted(nodes, key=lambda node: node.hostname):
        now = [node.state, node.availability]
        if known.nodes.get(node.id) == now:
            continue
        known.nodes[node.id] = now
        messages.append(events.node_state(node.hostname, node.state, node.availability, node.message))
    return messages


def update_messages(known: Known, services: Iterable[tuple[ServiceRef, Mapping[str, Any]]]) -> list[Event]:
    """One update.* message per service whose rolling update (Swarm's UpdateStatus) moved."""
    messages = []
    for ref, service in services:
        status = service.get("UpdateStatus") or {}
        state = status.get("State") or ""
        if not state:
            continue
        now = [state, status.get("StartedAt") or ""]
        if known.updates.get(ref.id) == now:
            continue
        known.updates[ref.id] = now
        event = _update_event(ref, state, status.get("Message") or state, service_replicas(service) or 0)
        if event is not None:
            messages.append(event)
    return messages


def service_replicas(service: Mapping[str, Any]) -> int | None:
    """Desired replicas of a listed service (completions of a replicated job); None for a
    global service or job."""
    mode = (service.get("Spec") or {}).get("Mode") or {}
    if "ReplicatedJob" in mode:
        return int((mode["ReplicatedJob"] or {}).get("TotalCompletions") or 0)
    replicated = mode.get("Replicated")
    return None if replicated is None else int(replicated.get("Replicas") or 0)


#: Swarm's service modes (the keys of Spec.Mode) as the stack file names them.
_MODES = {"Replicated": "replicated", "Global": "global", "ReplicatedJob": "replicated-job",
          "GlobalJob": "global-job"}


def service_mode(service: Mapping[str, Any]) -> str:
    mode = (service.get("Spec") or {}).get("Mode") or {}
    return next((name for key, name in _MODES.items() if key in mode), "replicated")


def _update_event(ref: ServiceRef, state: str, message: str, replicas: int) -> Event | None:
    match state:
        case "updating":
            return events.update_started(ref.stack, ref.name, replicas, "spec changed")
        case "paused" | "rollback_paused":
            return events.update_paused(ref.stack, ref.name, message)
        case "completed":
            return events.update_completed(ref.stack, ref.name, replicas)
        case "rollback_started":
            return events.update_rollback_started(ref.stack, ref.name, replicas, message)
        case "rollback_completed":
            return events.update_rolled_back(ref.stack, ref.name, message)
    return None
