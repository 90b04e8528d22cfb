"""What Swarm's restart supervisor did and where each service stands, told as the engine backend
tells it (docs/events.md): `task.restart_scheduled`, `task.gave_up`, `service.converged`,
`service.degraded`. Pure: the watcher (watcher.py) gives it each relist.

Swarm tells no one when it restarts a task or gives up on a slot, but its task list shows both:

- its restart supervisor marks a failed (or completed, or rejected) task `desired: shutdown` and,
  in the same transaction, creates the slot's next task, which waits the policy's delay (Swarm's
  5 s when the stack file gives none) before it starts. A task seen for the first time whose
  slot's previous task ended so, and that the service's policy restarts, is such a restart:
  `task.restart_scheduled` with the policy's delay and condition and the old task's exit code;
- when the policy would restart the slot but its `max_attempts` are used up, the failed task is
  marked shutdown and no next task comes: `task.gave_up`, once;
- per service (not a job: jobs run to completion, `deploy --wait` follows them) its running tasks
  against its desired count, whenever that pair moves: `service.converged` when they meet,
  `service.degraded` ("n/m replicas running") below, as on one engine. A daemon that starts
  states each service once more, as on one engine.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.model.observed import SlotKey
from orchestrator.publishing import events
from orchestrator.publishing.events import Event
from orchestrator.swarm.observed import ServiceRef, TaskSeen, service_replicas

#: Swarm's restart delay when the policy gives none (swarmkit's default).
DEFAULT_DELAY_S = 5.0
_ENDED = frozenset({"failed", "rejected", "complete"})


class Supervision:
    def __init__(self) -> None:
        self._counts: dict[str, tuple[int, int]] = {}
        self._gave_up: set[str] = set()

    def messages(self, services: Mapping[str, Mapping[str, Any]], refs: Mapping[str, ServiceRef],
                 tasks: Iterable[TaskSeen], first_seen: set[str]) -> list[Event]:
        """`services`/`refs` by service id, `tasks` of the stacks' services as listed,
        `first_seen`: the ids of the tasks no earlier relist told."""
        slots: dict[SlotKey, list[TaskSeen]] = {}
        for task in tasks:
            slots.setdefault(task.key, []).append(task)
        policies = {(ref.stack, ref.name): _policy(services[service_id]) for service_id, ref in refs.items()
                    if service_id in services}
        messages = []
        for key, history in sorted(slots.items(), key=lambda item: (item[0].stack, item[0].service, item[0].slot)):
            policy = policies.get((key.stack, key.service))
            if policy is not None:
                messages += self._restarts(key, sorted(history, key=lambda t: t.created_at), policy, first_seen)
        self._gave_up &= {task.id for history in slots.values() for task in history}
        messages += self._service_counts(services, refs, slots)
        return messages

    def _restarts(self, key: SlotKey, history: list[TaskSeen], policy: Mapping[str, Any],
                  first_seen: set[str]) -> list[Event]:
        messages = []
        for before, task in zip(history, history[1:]):
            if task.id in first_seen and before.swarm_state in _ENDED and _restarts(policy, before):
                delay = policy.get("Delay")
                messages.append(events.task_restart_scheduled(
                    key, DEFAULT_DELAY_S if delay is None else delay / 1e9, str(policy.get("Condition") or "any"),
                    exit_code=before.exit_code))
        newest = history[-1]
        if (newest.swarm_state in ("failed", "rejected") and newest.desired_state == "shutdown"
                and _restarts(policy, newest) and newest.id not in self._gave_up):
            self._gave_up.add(newest.id)
            attempts = int(policy.get("MaxAttempts") or 0)
            window = policy.get("Window")
            reason = f"{attempts} attempts" + (f" within {window / 1e9:g}s" if window else "")
            messages.append(events.task_gave_up(key, reason, exit_code=newest.exit_code))
        return messages

    def _service_counts(self, services: Mapping[str, Mapping[str, Any]], refs: Mapping[str, ServiceRef],
                        slots: Mapping[SlotKey, list[TaskSeen]]) -> list[Event]:
        messages = []
        for service_id, ref in sorted(refs.items(), key=lambda item: (item[1].stack, item[1].name)):
            if ref.mode.endswith("-job") or service_id not in services:
                continue
            mine = [t for key, history in slots.items() if (key.stack, key.service) == (ref.stack, ref.name)
                    for t in history]
            replicas = service_replicas(services[service_id])
            want = replicas if replicas is not None else len({t.key for t in mine if t.desired_state == "running"})
            have = min(want, len({t.key for t in mine if t.swarm_state == "running" and t.desired_state == "running"}))
            if self._counts.get(service_id) == (have, want):
                continue
            self._counts[service_id] = (have, want)
            if have >= want:
                messages.append(events.service_converged(ref.stack, ref.name, want))
            else:
                messages.append(events.service_degraded(ref.stack, ref.name, want, have, f"{have}/{want} replicas running"))
        for gone in set(self._counts) - set(refs):
            del self._counts[gone]
        return messages


def _policy(service: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((service.get("Spec") or {}).get("TaskTemplate") or {}).get("RestartPolicy") or {"Condition": "any"}


def _restarts(policy: Mapping[str, Any], ended: TaskSeen) -> bool:
    """The policy starts the slot again after `ended` (its attempts aside)."""
    condition = policy.get("Condition") or "any"
    if condition == "any":
        return True
    return condition == "on-failure" and ended.swarm_state in ("failed", "rejected")
