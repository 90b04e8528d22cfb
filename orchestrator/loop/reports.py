"""What a pass reports besides task states: its decisions (a restart scheduled, a slot given
up, an unhealthy replica) each once while it holds, and each service's running count when it moves
(service.converged / service.degraded). The views read the slots given up from here."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace

from orchestrator.loop.store import StackRecord
from orchestrator.model.observed import ContainerState, SlotKey
from orchestrator.model.plan import PlanNote
from orchestrator.planning.task_states import ready
from orchestrator.publishing import events
from orchestrator.publishing.events import Event


class PassReports:
    def __init__(self, emit: Callable[[Event], None]) -> None:
        self._emit = emit
        self._service_status: dict[tuple[str, str], tuple[int, int]] = {}
        #: Per stack: the decisions of the last pass (so each is published once).
        self._reported: dict[str, dict[tuple[str, SlotKey, str | None], Event]] = {}

    def decisions(
        self, stack: str, notes: Sequence[PlanNote], observed: list[ContainerState], now: float
    ) -> None:
        """task.restart_scheduled / task.gave_up / task.unhealthy when they first appear.

        A plan repeats its notes pass after pass while they hold; only new ones are published.
        """
        current: dict[tuple[str, SlotKey, str | None], Event] = {}
        for note in notes:
            if note.kind == "restart_scheduled":
                delay = round(max(0.0, (note.not_before or now) - now), 3)
                event = events.task_restart_scheduled(note.key, delay, note.reason)
            else:
                event = events.task_gave_up(note.key, note.reason)
            current[(note.kind, note.key, note.container_id)] = replace(
                event, container_id=note.container_id
            )
        for c in observed:
            if c.status == "running" and c.health == "unhealthy":
                reason = "healthcheck failed: the replica is stopped and counts as failed"
                current[("unhealthy", c.key, c.id)] = events.task_unhealthy(c.key, c.id, c.task_id, reason)
        reported = self._reported.get(stack, {})
        for key, event in current.items():
            if key not in reported:
                self._emit(event)
        self._reported[stack] = current

    def given_up(self, stack: str) -> dict[str, list[str]]:
        """Per service, why its slots that will not be restarted again gave up (as the last pass
        of `stack` planned them)."""
        reasons: dict[str, list[str]] = {}
        for (kind, key, _), event in self._reported.get(stack, {}).items():
            if kind == "gave_up":
                reasons.setdefault(key.service, []).append(event.reason or "")
        return reasons

    def services(self, record: StackRecord, observed: list[ContainerState]) -> None:
        """Publish service.converged / service.degraded when a service's running count moves."""
        desired = record.replicas()
        running = running_counts(record, observed)
        for service, want in desired.items():
            have = running.get(service, 0)
            key = (record.spec.name, service)
            if self._service_status.get(key) == (have, want):
                continue
            self._service_status[key] = (have, want)
            if have >= want:
                self._emit(events.service_converged(key[0], service, want))
            else:
                reason = f"{have}/{want} replicas running"
                self._emit(events.service_degraded(key[0], service, want, have, reason))


def running_counts(record: StackRecord, observed: list[ContainerState]) -> dict[str, int]:
    """Ready replicas per service (running, and healthy where checked), each slot counted once,
    never more than the service wants (a surplus slot waiting for removal is not a replica)."""
    replicas = record.replicas()
    slots: dict[str, set[int]] = {}
    for c in observed:
        if ready(c):
            slots.setdefault(c.key.service, set()).add(c.key.slot)
    return {service: min(len(found), replicas.get(service, 0)) for service, found in slots.items()}


__all__ = ["PassReports", "running_counts"]
