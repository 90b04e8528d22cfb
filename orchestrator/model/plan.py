"""What the planner decides: the actions of one pass, its notes, and each service's rolling
update status (kept in the stack's record, so a restarted daemon resumes it). No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from orchestrator.model.observed import SlotKey
from orchestrator.model.spec import ServiceSpec

# --------------------------------------------------------------------------- plan


#: Why an action is planned: its `reason`, in the log, the events and `ps`.
REASON_EMPTY = "empty slot"
REASON_RESTART = "restart"
REASON_UPDATE = "update"
REASON_UNHEALTHY = "unhealthy"
REASON_SCALE_DOWN = "scale down"
REASON_DUPLICATE = "duplicate"
REASON_HISTORY = "history limit"
REASON_SERVICE_REMOVED = "service removed"
REASON_NEVER_STARTED = "never started"
REASON_STANDBY_STALE = "standby not needed"


@dataclass(frozen=True, slots=True)
class CreateTask:
    """Create and start a fresh container in `key`'s slot."""

    key: SlotKey
    reason: str
    #: Restart attempt in the slot's current run of quick failures (0: not a restart). The
    #: executor hands it back to RestartBook.record_created / record_rejection.
    attempt: int = 0
    #: The slot's standby (container id, task id) to start instead of creating one.
    standby_id: str | None = None
    standby_task_id: str = ""


@dataclass(frozen=True, slots=True)
class StopTask:
    """Stop gracefully (stop signal, grace period) and keep the container as history."""

    key: SlotKey
    container_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class RemoveContainer:
    """Stop gracefully if running, then remove. Used for scale-down, history pruning, rm."""

    key: SlotKey
    container_id: str
    reason: str
    #: A standby never started (ContainerState.is_standby): no task, so nothing to stop or report.
    standby: bool = False


@dataclass(frozen=True, slots=True)
class PrepareStandby:
    """Create (not start) a standby for `key`'s slot: its next restart is only a start."""

    key: SlotKey
    reason: str = "standby"


Action = CreateTask | StopTask | RemoveContainer | PrepareStandby


@dataclass(frozen=True, slots=True)
class PlanNote:
    """A restart decision worth telling subscribers about (published once per container)."""

    kind: Literal["restart_scheduled", "gave_up"]
    key: SlotKey
    container_id: str | None
    reason: str
    #: restart_scheduled: when the replacement will be created (epoch seconds).
    not_before: float | None = None


UpdateState = Literal["updating", "paused", "completed", "rolling_back", "rolled_back"]


@dataclass(frozen=True, slots=True)
class UpdateStatus:
    """One service's rolling update (or rollback), kept in the store so a restarted daemon
    resumes it. Times are epoch seconds. The rules are in orchestrator/planning/updates.py."""

    state: UpdateState
    #: The spec hash the service's slots are being moved to.
    target_hash: str
    started_at: float
    #: The spec before this update began: what `rollback` returns to (None: nothing to return to).
    previous: ServiceSpec | None = None
    #: This run is a rollback: rollback_config applies and a failure pauses, never rolls back.
    rollback: bool = False
    #: Slots that were not on the target hash when the update began (the ratio's denominator).
    total: int = 0
    #: Tasks created by this update that failed (never ran, or ended within `monitor`).
    failures: tuple[str, ...] = ()
    #: A batch is under way (its slots not all replaced yet).
    batch_open: bool = False
    #: The next batch may not start before this time (update_config.delay).
    next_batch_at: float | None = None
    #: Every slot is replaced: the update completes at this time if nothing fails before.
    monitor_until: float | None = None
    finished_at: float | None = None
    #: Why it paused or rolls back.
    reason: str = ""
    #: Which slots run which spec hash, as of the last pass.
    message: str = ""

    @property
    def active(self) -> bool:
        return self.state in ("updating", "rolling_back")


@dataclass(frozen=True, slots=True)
class Plan:
    #: Every RemoveContainer and StopTask comes before every CreateTask (a stop-first update
    #: stops the old container of a slot in the same plan that creates its replacement);
    #: within each kind, sorted by (service, slot).
    actions: tuple[Action, ...] = ()
    #: Earliest epoch time at which planning again may yield new actions (a restart delay ends).
    wake_at: float | None = None
    notes: tuple[PlanNote, ...] = ()
    #: The rolling updates' statuses after this pass, by service (only services that have one).
    updates: Mapping[str, UpdateStatus] = field(default_factory=dict)
    #: Services whose update failed with failure_action rollback: the spec to go back to.
    rollbacks: Mapping[str, ServiceSpec] = field(default_factory=dict)
