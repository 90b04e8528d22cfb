"""The rolling update's rules (orchestrator/updates.py) as tables with an explicit `now`, and
the planner carrying them out pass after pass over a simulated engine."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import pytest

from orchestrator import labels
from orchestrator.planning import updates
from orchestrator.model.observed import ContainerState, SlotKey
from orchestrator.model.plan import CreateTask, RemoveContainer, StopTask, UpdateStatus
from orchestrator.model.spec import ServiceSpec, StackSpec, UpdateConfig
from orchestrator.planning.planner import plan
from orchestrator.planning.restarts import RestartBook
from orchestrator.planning.updates import Progress, Step

NOW = 1000.0
OLD = ServiceSpec(name="web", image="orchestrator-test/busybox", command=("sleep", "1"), replicas=4)
NEW = replace(OLD, command=("sleep", "2"))
T = labels.spec_hash(NEW)
O = labels.spec_hash(OLD)


def spec(**config: object) -> ServiceSpec:
    return replace(NEW, update_config=UpdateConfig(**config))  # type: ignore[arg-type]


def status(**fields: object) -> UpdateStatus:
    base = UpdateStatus("updating", T, NOW - 10, previous=OLD)
    return replace(base, **fields)  # type: ignore[arg-type]


def progress(stale: tuple[int, ...] = (), busy: tuple[int, ...] = (), **failures: str) -> Progress:
    versions = {n: O for n in stale} | {n: T for n in busy}
    return Progress(stale, busy, versions, failures)


@dataclass
class Row:
    status: UpdateStatus
    spec: ServiceSpec
    progress: Progress
    budget: int
    state: str = "updating"
    wake_at: float | None = None
    check: dict[str, object] = field(default_factory=dict)


ROWS = [
    pytest.param(Row(status(), spec(parallelism=1), progress((1, 2, 3, 4)), 1,
                     check={"total": 4, "batch_open": True}), id="first-batch-parallelism-1"),
    pytest.param(Row(status(), spec(parallelism=2), progress((2, 3, 4), busy=(1,)), 1),
                 id="delay-0-refills-a-freed-slot"),
    pytest.param(Row(status(), spec(parallelism=0), progress((1, 2, 3, 4)), 4), id="parallelism-0-is-all"),
    pytest.param(Row(status(batch_open=True), spec(parallelism=2, delay=5.0), progress((3, 4), busy=(2,)), 0),
                 id="delay-waits-for-the-whole-batch"),
    pytest.param(Row(status(total=4, batch_open=True), spec(parallelism=2, delay=5.0), progress((3, 4)), 0,
                     wake_at=NOW + 5, check={"next_batch_at": NOW + 5, "batch_open": False}),
                 id="delay-starts-when-the-batch-is-done"),
    pytest.param(Row(status(total=4, next_batch_at=NOW + 1), spec(parallelism=2, delay=5.0), progress((3, 4)), 0,
                     wake_at=NOW + 1), id="delay-not-over"),
    pytest.param(Row(status(total=4, next_batch_at=NOW), spec(parallelism=2, delay=5.0), progress((3, 4)), 2,
                     check={"next_batch_at": None, "batch_open": True}), id="delay-over-next-batch"),
    pytest.param(Row(status(total=4), spec(monitor=5.0), progress(), 0, wake_at=NOW + 5,
                     check={"monitor_until": NOW + 5}), id="last-slot-done-watch-one-monitor"),
    pytest.param(Row(status(total=4), spec(monitor=2.0, delay=3.0), progress(), 0, wake_at=NOW + 4),
                 id="delay-at-least-monitor-watches-delay-plus-1"),
    pytest.param(Row(status(total=4, monitor_until=NOW), spec(), progress(), 0, "completed",
                     check={"finished_at": NOW}), id="watched-completed"),
    pytest.param(Row(status(total=4), spec(monitor=0.0), progress(), 0, "completed"), id="monitor-0-completes-at-once"),
    pytest.param(Row(status(total=2, rollback=True, monitor_until=NOW), spec(), progress(), 0, "rolled_back"),
                 id="rollback-watched-rolled-back"),
    pytest.param(Row(status(total=4), spec(), progress((2, 3, 4), t1="slot 1: exit code 1 after 0.1s"), 0, "paused",
                     check={"failures": ("t1",)}), id="first-failure-pauses-by-default"),
    pytest.param(Row(status(total=4), spec(failure_action="continue"), progress((2, 3, 4), t1="slot 1: x"), 1,
                     check={"failures": ("t1",)}), id="continue-ignores-failures"),
    pytest.param(Row(status(total=4), spec(max_failure_ratio=0.25), progress((2, 3, 4), t1="slot 1: x"), 1),
                 id="ratio-equal-does-not-trigger"),
    pytest.param(Row(status(total=4, failures=("t1",)), spec(max_failure_ratio=0.25), progress((3, 4), t2="slot 2: x"),
                     0, "paused", check={"failures": ("t1", "t2")}), id="ratio-above-triggers"),
    pytest.param(Row(status(total=4), spec(failure_action="rollback"), progress((2, 3, 4), t1="slot 1: x"), 0,
                     "rolling_back", check={"rollback": True, "target_hash": O, "previous": spec(failure_action="rollback")}),
                 id="rollback-action-rolls-back"),
    pytest.param(Row(status(total=1, rollback=True), spec(failure_action="rollback"), progress((2,), t1="slot 1: x"),
                     0, "paused"), id="never-roll-back-a-rollback"),
    pytest.param(Row(status(total=1, previous=None), spec(failure_action="rollback"), progress((2,), t1="slot 1: x"),
                     0, "paused"), id="nothing-to-roll-back-to-pauses"),
    pytest.param(Row(status(total=4, rollback=True), replace(NEW, rollback_config=UpdateConfig(parallelism=3)),
                     progress((1, 2, 3, 4)), 3), id="rollback-uses-rollback-config"),
    pytest.param(Row(status(state="paused", reason="r"), spec(), progress((3, 4)), 0, "paused"),
                 id="paused-stays-put"),
]


@pytest.mark.parametrize("row", ROWS)
def test_step(row: Row) -> None:
    result = updates.step(row.status, row.spec, row.progress, NOW)
    assert (result.budget, result.status.state, result.wake_at) == (row.budget, row.state, row.wake_at)
    for name, value in row.check.items():
        assert getattr(result.status, name) == value, name


def test_a_rollback_names_its_spec_and_reason() -> None:
    result = updates.step(status(total=2), spec(failure_action="rollback"), progress((2,), t1="slot 1: exit code 1"), NOW)
    assert result.rollback_to == OLD
    assert "1 of 2 updated tasks failed" in result.status.reason and "slot 1: exit code 1" in result.status.reason


def test_the_message_says_which_slots_run_which_hash() -> None:
    result: Step = updates.step(status(), spec(parallelism=1), progress((3, 4), busy=(1, 2)), NOW)
    assert result.status.message == f"slots 1,2 on {T} (target); slots 3,4 on {O}"


def test_resume_forgives_failures() -> None:
    paused = status(state="paused", failures=("t1",), total=4, reason="r")
    resumed = updates.resume(paused, NOW)
    assert (resumed.state, resumed.failures, resumed.total, resumed.started_at) == ("updating", (), 0, NOW)


def test_start_rollback_without_previous_refuses() -> None:
    with pytest.raises(ValueError):
        updates.start_rollback(status(previous=None), NEW, NOW, "x")


# --------------------------------------------------------------------------- failures


def container(slot: int, created: float, *, digest: str = T, status: str = "exited", ran: float | None = 1.0,
              code: int = 1, error: str = "") -> ContainerState:
    started = None if ran is None else created
    return ContainerState(
        id=f"c{slot}-{created:g}", name=f"app_web.{slot}.x", key=SlotKey("app", "web", slot), spec_hash=digest,
        task_id=f"t{slot}-{created:g}", created_at=created, status=status,  # type: ignore[arg-type]
        exit_code=None if status == "running" else code, error=error, started_at=started,
        finished_at=None if started is None or status == "running" else started + (ran or 0),
    )


@pytest.mark.parametrize(
    ("c", "counted"),
    [
        pytest.param(container(1, NOW - 5), True, id="exit-within-monitor"),
        pytest.param(container(1, NOW - 5, code=0), True, id="exit-0-within-monitor-too"),
        pytest.param(container(1, NOW - 8, ran=6.0), False, id="ran-longer-than-monitor"),
        pytest.param(container(1, NOW - 5, status="created", ran=None, error="no such file"), True, id="never-started"),
        pytest.param(container(1, NOW - 5, status="removing", ran=None), False,
                     id="never-asked-to-start-being-removed-after-a-crash"),
        pytest.param(container(1, NOW - 5, status="dead", ran=None), False,
                     id="never-asked-to-start-whose-removal-failed"),
        pytest.param(container(1, NOW - 20), False, id="created-before-the-update"),
        pytest.param(container(1, NOW - 5, digest=O), False, id="other-hash"),
        pytest.param(container(1, NOW - 5, status="running"), False, id="still-running"),
        pytest.param(replace(container(1, NOW - 5), id="stopped"), False, id="stopped-on-purpose"),
    ],
)
def test_task_failures(c: ContainerState, counted: bool) -> None:
    found = updates.task_failures(status(), 5.0, [c], {"stopped"}, {}, NOW)
    assert (c.task_id in found) is counted


def test_a_refused_create_of_this_update_is_a_failure() -> None:
    found = updates.task_failures(status(), 5.0, [], set(), {2: (NOW - 1, "no such image"), 3: (NOW - 20, "old")}, NOW)
    assert list(found.values()) == ["slot 2: rejected: no such image"]


# --------------------------------------------------------------------------- carried out by the planner


class World:
    """Carries out plans at once; `fail` makes replacements with the new spec exit at once."""

    def __init__(self, service: ServiceSpec) -> None:
        self.clock = NOW
        self.containers: dict[str, ContainerState] = {}
        self.book = RestartBook()
        self.stack = StackSpec("app", {"web": service})
        self.status: dict[str, UpdateStatus] = {}
        self.stopped: set[str] = set()
        self.fail = False
        self.created: list[tuple[float, int]] = []

    def deploy(self, service: ServiceSpec) -> None:
        self.status = {"web": updates.begin(self.stack.services["web"], service, self.clock)}
        self.stack = StackSpec("app", {"web": service})

    def run(self, passes: int = 60, dt: float = 1.0) -> None:
        for _ in range(passes):
            self.clock += dt
            result = plan(self.stack, {}, list(self.containers.values()), self.book, self.clock,
                          update_status=self.status, stopped=frozenset(self.stopped))
            self.status = {**self.status, **result.updates}
            if result.rollbacks:
                self.stack = StackSpec("app", {**self.stack.services, **result.rollbacks})
            for action in result.actions:
                self._apply(action)

    def _apply(self, action: object) -> None:
        if isinstance(action, CreateTask):
            svc = self.stack.services["web"]
            digest = labels.spec_hash(svc)
            bad = self.fail and digest == T
            made = container(action.key.slot, self.clock, digest=digest, status="exited" if bad else "running",
                             ran=0.1)
            self.containers[made.id] = made
            self.created.append((self.clock, action.key.slot))
            self.book.record_created(action.key, digest, svc.restart_policy, self.clock, action.attempt)
        elif isinstance(action, StopTask):
            self.stopped.add(action.container_id)
            old = self.containers[action.container_id]
            self.containers[old.id] = replace(old, status="exited", exit_code=143, finished_at=self.clock)
        elif isinstance(action, RemoveContainer):
            del self.containers[action.container_id]

    def versions(self) -> list[str]:
        alive = sorted((c for c in self.containers.values() if c.alive), key=lambda c: c.key.slot)
        return [c.spec_hash for c in alive]


def test_an_update_carried_out_in_batches_with_delay() -> None:
    world = World(OLD)
    world.run(2)
    world.deploy(spec(parallelism=2, delay=3.0, monitor=2.0))
    world.created.clear()
    world.run(30)
    assert world.versions() == [T] * 4
    assert world.status["web"].state == "completed"
    (t1, t2) = sorted({t for t, _ in world.created})
    assert t2 - t1 >= 3.0  # the second batch waited for the delay


def test_a_broken_update_rolls_back_and_the_old_version_runs_again() -> None:
    world = World(OLD)
    world.run(2)
    world.deploy(spec(failure_action="rollback", monitor=2.0))
    world.fail = True
    world.run(30)
    assert world.status["web"].state == "rolled_back"
    assert world.versions() == [O] * 4
    assert world.stack.services["web"] == OLD


def test_a_broken_update_pauses_with_the_other_slots_untouched() -> None:
    world = World(OLD)
    world.run(2)
    world.deploy(spec(monitor=2.0))
    world.fail = True
    world.run(20)
    assert world.status["web"].state == "paused"
    assert world.versions() == [O] * 3  # slot 1 failed; 2..4 were never replaced
    assert "slot 1" in world.status["web"].reason
