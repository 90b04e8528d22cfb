"""Rolling updates and rollbacks: how far one service's update may go in this pass.

Pure (no I/O, no clock): the planner describes where the slots stand (`Progress`), `step` says
how many stale slots may start being replaced now and returns the update's next `UpdateStatus`,
which the reconciler keeps in the store, so a restarted daemon carries on where it was.

Swarm's updater (SEMANTICS.md 1.3), made level-triggered:
- An update starts when a deploy changes a service's spec hash (`begin`); `previous` keeps the
  spec from before, which is what a rollback returns to.
- Batches of `parallelism` slots (0 = all). With `delay` 0 a slot is refilled as soon as one of
  the batch is replaced (swarm's workers); with `delay` > 0 the next batch starts `delay` after
  the whole previous batch is replaced. A slot is replaced when its new container runs (and is
  healthy where it has a healthcheck) and, start-first, the old one has been stopped.
- A failure is a task created by this update (target hash, created after the update began) that
  never ran, or ended within `monitor` of starting, unless the daemon stopped it; a create the
  engine refused counts too. When failures / slots-to-update > max_failure_ratio (strictly),
  failure_action applies: pause, continue (ignore), or rollback, which starts a rollback to
  `previous` under rollback_config. A rollback that fails only pauses (never roll back a rollback).
- After the last slot the update watches one more `monitor` period (delay + 1 s when delay is at
  least monitor), then it is completed (or rolled_back).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

from orchestrator.labels import spec_hash
from orchestrator.model.observed import ContainerState
from orchestrator.model.plan import UpdateStatus, UpdateState
from orchestrator.model.spec import ServiceSpec, UpdateConfig

REASON_MANUAL = "rollback requested"


@dataclass(frozen=True, slots=True)
class Progress:
    """Where one service's slots stand against the update's target (from one relist)."""

    #: Alive on another hash, waiting for their turn.
    stale: tuple[int, ...] = ()
    #: Being replaced right now (an action in flight, a replacement not yet ready, a handover).
    in_progress: tuple[int, ...] = ()
    #: Slot -> spec hash of its alive container (None: nothing alive in it).
    versions: Mapping[int, str | None] = field(default_factory=dict)
    #: Failed tasks of this update seen in this relist: id -> what happened.
    failures: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Step:
    status: UpdateStatus
    #: How many stale slots may start being replaced in this pass.
    budget: int
    #: failure_action rollback fired: the spec the service goes back to.
    rollback_to: ServiceSpec | None = None
    wake_at: float | None = None


def begin(previous: ServiceSpec | None, target: ServiceSpec, now: float) -> UpdateStatus:
    """The status of an update that a deploy just asked for."""
    return UpdateStatus("updating", spec_hash(target), now, previous=previous)


def resume(status: UpdateStatus, now: float) -> UpdateStatus:
    """A paused update deployed again unchanged: it carries on, its failures forgiven."""
    state: UpdateState = "rolling_back" if status.rollback else "updating"
    return replace(status, state=state, started_at=now, total=0, failures=(), reason="",
                   batch_open=False, next_batch_at=None, monitor_until=None)


def start_rollback(
    status: UpdateStatus, current: ServiceSpec, now: float, reason: str
) -> tuple[ServiceSpec, UpdateStatus]:
    """Back to `status.previous`; the spec being left becomes the new `previous` (as swarm's
    PreviousSpec, so a second manual rollback returns to it). Raises ValueError when there is
    nothing to go back to."""
    if status.previous is None:
        raise ValueError("no previous version")
    back = status.previous
    rolled = UpdateStatus(
        "rolling_back", spec_hash(back), now, previous=current, rollback=True, reason=reason
    )
    return back, rolled


def config_of(status: UpdateStatus, spec: ServiceSpec) -> UpdateConfig:
    """A rollback runs under rollback_config, an update under update_config (both the current
    spec's: after a rollback swap that is the spec being returned to, as swarm)."""
    return spec.rollback_config if status.rollback else spec.update_config


def task_failures(
    status: UpdateStatus,
    monitor: float,
    containers: Iterable[ContainerState],
    stopped: Iterable[str],
    rejections: Mapping[int, tuple[float, str]],
    now: float,
) -> dict[str, str]:
    """Tasks of this update that failed: id -> description.

    `stopped`: containers the daemon stopped on purpose (never failures); `rejections`:
    slot -> (time, reason) of the last create the engine refused under the target hash."""
    stopped = set(stopped)
    found: dict[str, str] = {}
    for c in containers:
        if c.spec_hash != status.target_hash or c.created_at < status.started_at:
            continue
        if c.alive or c.id in stopped:
            continue
        if c.started_at is None and not c.error:
            # never started, nor refused a start: a killed daemon's create, on its way out
            # (docs/design-notes.md, note 5); no task of the update ever ran or failed in it
            continue
        ran = None if c.started_at is None else (c.finished_at or now) - c.started_at
        if ran is None or c.error or ran <= monitor:
            found[c.task_id] = f"slot {c.key.slot}: {_ending(c, ran)}"
    for slot, (at, reason) in rejections.items():
        if at >= status.started_at:
            found[f"rejected-{slot}-{at:.3f}"] = f"slot {slot}: rejected: {reason}"
    return found


def step(status: UpdateStatus, spec: ServiceSpec, progress: Progress, now: float) -> Step:
    """The update's next status and how many stale slots may be replaced now."""
    status = replace(status, message=versions_text(status.target_hash, progress.versions))
    config = config_of(status, spec)
    if not status.active:
        # Paused: nothing moves until a deploy or a rollback. Finished: nothing should be
        # stale; if something is (a container adopted from elsewhere), refill by parallelism.
        return Step(status, 0 if status.state == "paused" else _tokens(config, progress))
    status = _count_failures(status, progress)
    failed = _failure_step(status, config, spec, progress, now)
    if failed is not None:
        return failed
    if progress.stale or progress.in_progress:
        return _batch_step(status, config, progress, now)
    until = status.monitor_until or now + final_watch(config)
    if now < until:
        return Step(replace(status, monitor_until=until, batch_open=False), 0, wake_at=until)
    done: UpdateState = "rolled_back" if status.rollback else "completed"
    return Step(
        replace(status, state=done, finished_at=now, monitor_until=None, batch_open=False,
                next_batch_at=None),
        0,
    )  # fmt: skip


def final_watch(config: UpdateConfig) -> float:
    """How long a finished update keeps watching for failures (SEMANTICS.md 1.3)."""
    if config.monitor > 0 and config.delay >= config.monitor:
        return config.delay + 1.0
    return config.monitor


def _count_failures(status: UpdateStatus, progress: Progress) -> UpdateStatus:
    dirty = len(set(progress.stale) | set(progress.in_progress))
    total = status.total or dirty  # fixed on the first pass: swarm's len(dirtySlots)
    new = sorted(set(progress.failures) - set(status.failures))
    return replace(status, total=total, failures=status.failures + tuple(new))


def _failure_step(
    status: UpdateStatus, config: UpdateConfig, spec: ServiceSpec, progress: Progress, now: float
) -> Step | None:
    count = len(status.failures)
    if config.failure_action == "continue" or count == 0:
        return None
    ratio = count / max(status.total, 1)
    if ratio <= config.max_failure_ratio:
        return None
    detail = "; ".join(progress.failures[k] for k in sorted(progress.failures))
    reason = (
        f"{count} of {max(status.total, 1)} updated tasks failed "
        f"(ratio {ratio:.2f} > max_failure_ratio {config.max_failure_ratio:g})"
        + (f": {detail}" if detail else "")
    )
    if config.failure_action == "rollback" and not status.rollback and status.previous:
        back, rolled = start_rollback(status, spec, now, reason)
        return Step(replace(rolled, message=status.message), 0, rollback_to=back)
    paused = replace(status, state="paused", reason=reason, batch_open=False,
                     next_batch_at=None, monitor_until=None)  # fmt: skip
    return Step(paused, 0)


def _batch_step(
    status: UpdateStatus, config: UpdateConfig, progress: Progress, now: float
) -> Step:
    status = replace(status, monitor_until=None)
    if config.delay > 0:
        if progress.in_progress:
            return Step(status, 0)  # the batch is still under way
        if status.batch_open:  # the batch just finished: the delay starts now
            status = replace(status, batch_open=False, next_batch_at=now + config.delay)
        if status.next_batch_at is not None and now < status.next_batch_at:
            return Step(status, 0, wake_at=status.next_batch_at)
    budget = _tokens(config, progress)
    opened = budget > 0 and bool(progress.stale)
    return Step(replace(status, batch_open=status.batch_open or opened, next_batch_at=None), budget)


def _tokens(config: UpdateConfig, progress: Progress) -> int:
    if config.parallelism <= 0:
        return len(progress.stale)
    return max(config.parallelism - len(progress.in_progress), 0)


def versions_text(target: str, versions: Mapping[int, str | None]) -> str:
    """"slots 1,2 on 1a2b3c4d5e6f (target); slot 3 on 0ld0ld0ld0ld; slot 4 not running"."""
    by_hash: dict[str | None, list[int]] = {}
    for slot, digest in sorted(versions.items()):
        by_hash.setdefault(digest, []).append(slot)
    parts = []
    for digest in sorted(by_hash, key=lambda d: (d is None, d != target, d or "")):
        slots = by_hash[digest]
        where = "not running" if digest is None else f"on {digest}"
        mark = " (target)" if digest == target else ""
        noun = "slot" if len(slots) == 1 else "slots"
        parts.append(f"{noun} {','.join(map(str, slots))} {where}{mark}")
    return "; ".join(parts)


def _ending(c: ContainerState, ran: float | None) -> str:
    if c.error:
        return f"start failed: {c.error}"
    if ran is None:
        return "never started"
    if c.health == "unhealthy":
        return f"unhealthy after {ran:.1f}s"
    return f"exit code {c.exit_code} after {ran:.1f}s"
