"""The restart book: whether, and when, a slot whose replica stopped gets a fresh container.

Swarm's rules (SEMANTICS.md 1.2), kept per slot and per spec version:
- condition `none` never restarts; `on-failure` restarts unless the replica completed (exit 0,
  and not stopped for being unhealthy); `any` always restarts.
- `max_attempts` (0 = never give up) with `window` > 0: restart iff fewer than `max_attempts`
  restarts fall in (T_fail - window, T_fail], older ones pruned for good; with `window` 0 it is a
  lifetime cap for the slot's spec version. A restart's timestamp is its container's creation
  time (ours is created when the delay ends; Swarm creates the task first and delays its start).
- The history resets when the slot's spec hash changes, and on `reset` (deploy / scale).
- `delay` given: a constant delay from the failure time. `delay` None, our default: the first
  restart is immediate, the following ones of a run of quick failures back off exponentially
  (`backoff_base` doubling up to `backoff_cap`); a replica that ran `healthy_run` seconds before
  failing starts a new run.
- A create or start that failed (the engine refused it, or building the request raised: task
  state `rejected`) is a failure too: it is retried under the same condition, cap and backoff
  instead of in a tight loop.
- Numbers that slipped past the stack file's checks never wedge a slot: a negative delay counts
  as 0; a delay that is not finite (NaN, infinity) or a window that is NaN cannot schedule a
  restart, so the slot gives up at once with a reason that names the value (`task.gave_up`),
  rather than waiting for a time that never comes. The daemon's own backoff settings are
  clamped the same way.

The planner only asks (`decide`, `rejection`); the executor tells (`record_created`,
`record_rejection`) after acting. Plain data, so the daemon persists it with `to_json`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from orchestrator.model.observed import ContainerState, SlotKey, TaskState
from orchestrator.model.spec import RestartPolicy
from orchestrator.planning.task_states import task_state
from orchestrator.support.backoff import doubling

JSON_VERSION = 1
#: The constructor's defaults, used in place of a setting that is not a finite number >= 0.
_DEFAULT_BACKOFF_BASE, _DEFAULT_BACKOFF_CAP, _DEFAULT_HEALTHY_RUN = 1.0, 60.0, 10.0


@dataclass(frozen=True, slots=True)
class RestartDecision:
    restart: bool
    #: When the replacement may be created (epoch s); None when not restarting.
    not_before: float | None = None
    #: max_attempts is used up: the slot stays failed until the next deploy/scale.
    gave_up: bool = False
    reason: str = ""
    #: Position in the run of quick failures (1 = first restart); 0 = a plain create.
    attempt: int = 0

    def due(self, now: float) -> bool:
        return self.restart and (self.not_before is None or self.not_before <= now)


@dataclass(slots=True)
class _SlotHistory:
    spec_hash: str
    total: int = 0  # restarts under this spec version (the lifetime cap)
    times: list[float] = field(default_factory=list)  # creation times, for the window
    streak: int = 0  # attempt number of the last restart (drives the backoff)
    rejected_at: float | None = None  # the last create the engine refused, if still current
    rejection: str = ""


class _Failure(NamedTuple):
    at: float
    ran_for: float
    state: TaskState
    detail: str


class RestartBook:
    def __init__(
        self,
        backoff_base: float = _DEFAULT_BACKOFF_BASE,
        backoff_cap: float = _DEFAULT_BACKOFF_CAP,
        healthy_run: float = _DEFAULT_HEALTHY_RUN,
    ) -> None:
        self.backoff_base = _seconds(backoff_base, _DEFAULT_BACKOFF_BASE)
        self.backoff_cap = _seconds(backoff_cap, _DEFAULT_BACKOFF_CAP)
        self.healthy_run = _seconds(healthy_run, _DEFAULT_HEALTHY_RUN)
        self._slots: dict[SlotKey, _SlotHistory] = {}
        #: Set by every change of the facts; whoever saves the book clears it (a pass need not
        #: serialise the whole book to find out whether it changed).
        self.changed = False
        #: Slots changed since the last `take_changes` (journal.py).
        self._unsaved: set[SlotKey] = set()

    # ------------------------------------------------------------------ questions

    def decide(
        self,
        key: SlotKey,
        spec_hash: str,
        policy: RestartPolicy,
        exited: ContainerState | None,
        now: float,
    ) -> RestartDecision:
        """May `key` get a new container, and from when? `exited` is the slot's newest container
        when it is no longer alive and has `spec_hash`; None when the slot has none (a rejected
        create then still counts). Only asks: the book does not change."""
        history = self._history(key, spec_hash)
        if exited is not None and exited.spec_hash != spec_hash:
            exited = None
        failure = _failure(history, exited, now)
        if failure is None:
            return RestartDecision(restart=True, not_before=now, reason="no container")
        if not _condition_allows(policy, failure.state):
            reason = f"{failure.detail}; condition {policy.condition}"
            return RestartDecision(restart=False, reason=reason)
        unusable = _unusable(policy)
        if unusable:
            return RestartDecision(restart=False, gave_up=True, reason=f"{failure.detail}; {unusable}")
        if history is not None and _used_up(history, policy, failure.at):
            return RestartDecision(
                restart=False, gave_up=True, reason=f"{failure.detail}; {_cap_text(policy)}"
            )
        streak = 0 if history is None or failure.ran_for >= self.healthy_run else history.streak
        delay = max(policy.delay, 0.0) if policy.delay is not None else self.backoff(streak)
        return RestartDecision(
            restart=True, not_before=failure.at + delay, reason=failure.detail, attempt=streak + 1
        )

    def rejection(self, key: SlotKey, spec_hash: str | None = None) -> str | None:
        """The engine's reason for the slot's last refused create, while it is the latest word."""
        history = self._slots.get(key)
        if history is None or history.rejected_at is None:
            return None
        if spec_hash is not None and history.spec_hash != spec_hash:
            return None
        return history.rejection

    def rejected_at(self, key: SlotKey, spec_hash: str) -> float | None:
        """When the engine last refused `key`'s create under `spec_hash` (None: it did not,
        or a container was created since)."""
        history = self._history(key, spec_hash)
        return None if history is None else history.rejected_at

    # ------------------------------------------------------------------ facts

    def record_created(
        self, key: SlotKey, spec_hash: str, policy: RestartPolicy, at: float, attempt: int = 0
    ) -> None:
        """A container was created in `key` at `at` (its creation time); `attempt` from its
        CreateTask: > 0 makes it a restart, counted against max_attempts. `policy` is the
        service's, so the book keeps only the timestamps its window can still count."""
        history = self._fresh(key, spec_hash)
        history.rejected_at, history.rejection = None, ""
        self._touch(key)
        if attempt > 0:
            _count(history, policy, at, attempt)

    def record_rejection(
        self,
        key: SlotKey,
        spec_hash: str,
        policy: RestartPolicy,
        at: float,
        reason: str,
        attempt: int = 0,
    ) -> None:
        """The engine refused to create (or pull/build for) `key`'s container at `at`."""
        history = self._fresh(key, spec_hash)
        history.rejected_at, history.rejection = at, reason
        self._touch(key)
        if attempt > 0:
            _count(history, policy, at, attempt)

    def reset(self, stack: str, service: str | None = None) -> None:
        """Forget the stack's (or one service's) history: Swarm's "until the next deploy"."""
        for key in [k for k in self._slots if k.stack == stack and service in (None, k.service)]:
            del self._slots[key]
            self._touch(key)

    def forget_stack(self, stack: str) -> None:
        """The stack was removed."""
        self.reset(stack)

    # ------------------------------------------------------------------ persistence

    def to_json(self) -> dict[str, Any]:
        slots = [_row(k, h) for k, h in sorted(self._slots.items(), key=lambda kv: _order(kv[0]))]
        return {"version": JSON_VERSION, "slots": slots}

    def _touch(self, key: SlotKey) -> None:
        self.changed = True
        self._unsaved.add(key)

    def take_changes(self) -> dict[str, Any]:
        """The slots changed since the last call, as journal.py saves them: a JSON key
        `[stack, service, slot]` -> the slot's row of `to_json` (None: forgotten)."""
        change = {
            json.dumps(_order(k)): (_row(k, self._slots[k]) if k in self._slots else None) for k in self._unsaved
        }
        self._unsaved.clear()
        return change

    def apply_changes(self, change: Mapping[str, Any]) -> None:
        """Replay one `take_changes` on top of a loaded book (at start)."""
        for name, row in change.items():
            stack, service, slot = json.loads(name)
            key = SlotKey(str(stack), str(service), int(slot))
            if row is None:
                self._slots.pop(key, None)
            else:
                self._slots[key] = _history(row)

    @classmethod
    def from_json(cls, data: dict[str, Any], **settings: float) -> RestartBook:
        """Inverse of `to_json`; `settings` are the constructor's keyword arguments."""
        if data.get("version") != JSON_VERSION:
            raise ValueError(f"unsupported restart book version: {data.get('version')!r}")
        book = cls(**settings)
        for row in data["slots"]:
            key = SlotKey(str(row["stack"]), str(row["service"]), int(row["slot"]))
            book._slots[key] = _history(row)
        return book

    # ------------------------------------------------------------------ internals

    def _history(self, key: SlotKey, spec_hash: str) -> _SlotHistory | None:
        history = self._slots.get(key)
        return history if history is not None and history.spec_hash == spec_hash else None

    def _fresh(self, key: SlotKey, spec_hash: str) -> _SlotHistory:
        history = self._history(key, spec_hash)
        if history is None:  # new slot, or the spec changed: history starts over (swarmkit #2304)
            history = self._slots[key] = _SlotHistory(spec_hash)
        return history

    def backoff(self, streak: int) -> float:
        """The default delay before attempt `streak` + 1 of a run of quick failures: none
        before the first retry, then backoff_base doubling up to backoff_cap."""
        if streak <= 0:
            return 0.0
        return doubling(streak - 1, self.backoff_base, self.backoff_cap)


def _failure(
    history: _SlotHistory | None, exited: ContainerState | None, now: float
) -> _Failure | None:
    """The failure a restart would answer: a refused create newer than the exited container
    wins, since the attempt to replace that container is what failed last."""
    if (
        history is not None
        and history.rejected_at is not None
        and _newer(history.rejected_at, exited)
    ):
        detail = f"rejected: {history.rejection}"
        return _Failure(history.rejected_at, 0.0, TaskState.REJECTED, detail)
    if exited is None:
        return None
    at = exited.finished_at or exited.started_at or exited.created_at or now
    ran_for = at - exited.started_at if exited.started_at else 0.0
    return _Failure(at, max(ran_for, 0.0), task_state(exited), _exit_text(exited))


def _row(k: SlotKey, h: _SlotHistory) -> dict[str, Any]:
    return {
        "stack": k.stack,
        "service": k.service,
        "slot": k.slot,
        "spec_hash": h.spec_hash,
        "total": h.total,
        "times": list(h.times),
        "streak": h.streak,
        "rejected_at": h.rejected_at,
        "rejection": h.rejection,
    }


def _history(row: Mapping[str, Any]) -> _SlotHistory:
    return _SlotHistory(
        spec_hash=str(row["spec_hash"]),
        total=int(row["total"]),
        times=[float(t) for t in row["times"]],
        streak=int(row["streak"]),
        rejected_at=None if row["rejected_at"] is None else float(row["rejected_at"]),
        rejection=str(row["rejection"]),
    )


def _order(key: SlotKey) -> tuple[str, str, int]:
    return (key.stack, key.service, key.slot)


def _count(history: _SlotHistory, policy: RestartPolicy, at: float, attempt: int) -> None:
    history.total += 1
    history.streak = attempt
    if policy.max_attempts > 0 and policy.window > 0:
        # entries at or before at - window cannot fall in any later failure's window
        history.times[:] = [t for t in history.times if t > at - policy.window] + [at]
    else:
        history.times.clear()  # only a sliding window needs timestamps


def _used_up(history: _SlotHistory, policy: RestartPolicy, failed_at: float) -> bool:
    """Swarm's shouldRestart: restarts within (T - window, T] (lifetime total with no window).
    T itself counts: a refused restart is recorded and fails at the same instant."""
    if policy.max_attempts <= 0:
        return False
    if policy.window <= 0:
        return history.total >= policy.max_attempts
    start = failed_at - policy.window
    return sum(1 for t in history.times if start < t <= failed_at) >= policy.max_attempts


def _newer(at: float, exited: ContainerState | None) -> bool:
    return exited is None or at >= exited.created_at


def _condition_allows(policy: RestartPolicy, state: TaskState) -> bool:
    if policy.condition == "none":
        return False
    return policy.condition == "any" or state != TaskState.COMPLETE


def _exit_text(container: ContainerState) -> str:
    if container.health == "unhealthy":
        return "unhealthy"
    if container.oom_killed:
        return "out of memory"
    if container.error:
        return f"start failed: {container.error}"
    return f"exit code {container.exit_code}"


def _unusable(policy: RestartPolicy) -> str:
    """Why `policy` cannot schedule a restart ("" when it can)."""
    if policy.delay is not None and not math.isfinite(policy.delay):
        return f"restart_policy.delay is {policy.delay}: not a finite number of seconds"
    if math.isnan(policy.window):
        return f"restart_policy.window is {policy.window}: not a number of seconds"
    return ""


def _seconds(value: float, default: float) -> float:
    return value if math.isfinite(value) and value >= 0 else default


def _cap_text(policy: RestartPolicy) -> str:
    within = f" within {policy.window:g}s" if policy.window > 0 else ""
    return f"max_attempts {policy.max_attempts}{within} reached"
