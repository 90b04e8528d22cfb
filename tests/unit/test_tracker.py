from __future__ import annotations

from dataclasses import replace

import pytest

from orchestrator.model.observed import ContainerState, SlotKey, TaskState
from orchestrator.planning.task_states import failure_reason
from orchestrator.loop.tracker import TaskTracker, Transition

KEY = SlotKey("s", "web", 1)


def container(cid: str = "c1", task: str = "t1", status: str = "running", exit_code: int | None = None,
              error: str = "", started_at: float | None = 1.0) -> ContainerState:
    return ContainerState(id=cid, name=f"s_web.1.{task}", key=KEY, spec_hash="h", task_id=task,
                          created_at=0.0, status=status, exit_code=exit_code, error=error,  # type: ignore[arg-type]
                          started_at=started_at)


@pytest.fixture
def seen() -> list[Transition]:
    return []


@pytest.fixture
def tracker(seen: list[Transition]) -> TaskTracker:
    return TaskTracker(seen.append)


def states(seen: list[Transition]) -> list[tuple[str, str]]:
    return [(t.from_state.value, t.to_state.value) for t in seen]


def test_lifecycle_is_published_once_in_order(tracker: TaskTracker, seen: list[Transition]) -> None:
    tracker.advance(KEY, "t1", TaskState.NEW)
    tracker.advance(KEY, "t1", TaskState.CREATED, container_id="c1")
    tracker.advance(KEY, "t1", TaskState.STARTING)
    mark = tracker.mark()
    tracker.advance(KEY, "t1", TaskState.RUNNING)
    tracker.observe("s", [container()], mark)  # the relist agrees: nothing new
    tracker.observe("s", [container(status="exited", exit_code=2)], tracker.mark())
    tracker.observe("s", [], tracker.mark())
    assert states(seen) == [
        ("new", "created"), ("created", "starting"), ("starting", "running"),
        ("running", "failed"), ("failed", "removed"),
    ]
    assert seen[3].exit_code == 2


def test_late_report_never_moves_backwards(tracker: TaskTracker, seen: list[Transition]) -> None:
    tracker.advance(KEY, "t1", TaskState.STARTING, container_id="c1")
    tracker.observe("s", [container(status="exited", exit_code=1)], tracker.mark())
    assert not tracker.advance(KEY, "t1", TaskState.RUNNING)  # start() returned after the crash
    assert states(seen)[-1] == ("starting", "failed")


def test_relist_begun_before_a_creation_does_not_remove_it(tracker: TaskTracker, seen: list[Transition]) -> None:
    mark = tracker.mark()
    tracker.advance(KEY, "t1", TaskState.CREATED, container_id="c1")
    tracker.observe("s", [], mark)
    assert states(seen) == [("new", "created")]


def test_round_trip_keeps_states_and_intents(tracker: TaskTracker, seen: list[Transition]) -> None:
    tracker.advance(KEY, "t1", TaskState.RUNNING, container_id="c1")
    tracker.mark_shutdown("c1")
    again = TaskTracker(seen.append)
    again.load_json(tracker.to_json())
    assert not again.advance(KEY, "t1", TaskState.RUNNING)
    again.observe("s", [container(status="exited", exit_code=143)], again.mark())
    assert states(seen)[-1] == ("running", "shutdown")


def test_a_rejection_without_container_is_kept_until_a_container_replaces_it(tracker: TaskTracker) -> None:
    tracker.advance(KEY, "t1", TaskState.NEW)
    tracker.advance(KEY, "t1", TaskState.REJECTED, reason="no such image")
    [(key, rejection)] = tracker.rejections("s").items()
    assert (key, rejection.task_id, rejection.reason) == (KEY, "t1", "no such image")
    assert tracker.rejections("other") == {}
    tracker.advance(KEY, "t2", TaskState.CREATED, container_id="c2")
    assert tracker.rejections("s") == {}


def test_a_container_whose_start_was_refused_shows_as_rejected_as_it_was_published(
    tracker: TaskTracker, seen: list[Transition]
) -> None:
    """A host-mode port in use: the engine refuses the start and marks the container with its
    error. `ps` must say `rejected`, as the task.state event did, not `failed`."""
    tracker.advance(KEY, "t1", TaskState.CREATED, container_id="c1")
    tracker.advance(KEY, "t1", TaskState.STARTING)
    tracker.advance(KEY, "t1", TaskState.REJECTED, reason="port is already allocated")
    refused = container(status="created", error="port is already allocated", started_at=None)
    tracker.observe("s", [refused], tracker.mark())
    assert tracker.state_of(refused) is TaskState.REJECTED
    assert states(seen)[-1] == ("starting", "rejected")
    tracker.observe("s", [], tracker.mark())
    assert states(seen)[-1] == ("rejected", "removed")


def test_a_removed_stack_forgets_its_rejections(tracker: TaskTracker) -> None:
    tracker.advance(KEY, "t1", TaskState.REJECTED, reason="no such image")
    tracker.forget_stack("s")
    assert tracker.rejections("s") == {}


@pytest.mark.parametrize(("changes", "reason"), [
    pytest.param({"exit_code": 3}, "non-zero exit (3)", id="exit-code"),
    pytest.param({"exit_code": 137, "oom_killed": True}, "OOM killed", id="oom"),
    pytest.param({"exit_code": 1, "error": "port is already allocated"}, "port is already allocated", id="engine-error"),
    pytest.param({"exit_code": 0}, "", id="success"),
])
def test_failure_reason_says_why_in_swarms_words(changes: dict[str, object], reason: str) -> None:
    assert failure_reason(replace(container(status="exited"), **changes)) == reason  # type: ignore[arg-type]


def test_a_stop_by_the_daemon_is_shutdown_before_any_relist(tracker: TaskTracker, seen: list[Transition]) -> None:
    tracker.advance(KEY, "t1", TaskState.RUNNING, container_id="c1")
    assert not tracker.stopped("c1"), "a stop the daemon did not ask for is the relist's to judge"
    tracker.mark_shutdown("c1")
    assert tracker.stopped("c1")
    tracker.observe("s", [], tracker.mark())  # removed before any relist saw it exited
    assert states(seen) == [("new", "running"), ("running", "shutdown"), ("shutdown", "removed")]


def test_a_stopped_container_that_had_failed_stays_failed(tracker: TaskTracker, seen: list[Transition]) -> None:
    tracker.advance(KEY, "t1", TaskState.RUNNING, container_id="c1")
    tracker.observe("s", [container(status="exited", exit_code=137)], tracker.mark())
    tracker.mark_shutdown("c1")
    assert not tracker.stopped("c1")
    assert states(seen)[-1] == ("running", "failed")


def test_a_relist_that_lags_behind_a_removal_does_not_bring_the_task_back(
    tracker: TaskTracker, seen: list[Transition]
) -> None:
    tracker.advance(KEY, "t1", TaskState.RUNNING, container_id="c1")
    mark = tracker.mark()
    tracker.mark_shutdown("c1")
    tracker.stopped("c1")
    tracker.observe("s", [], tracker.mark())  # removed
    tracker.observe("s", [container(status="exited", exit_code=0)], mark)  # begun before the removal
    tracker.observe("s", [container(status="removing", exit_code=0)], tracker.mark())
    assert states(seen) == [("new", "running"), ("running", "shutdown"), ("shutdown", "removed")]


def test_a_task_first_seen_on_its_way_out_is_not_published(tracker: TaskTracker, seen: list[Transition]) -> None:
    tracker.observe("s", [container(status="removing", exit_code=0)], tracker.mark())
    assert seen == []


def test_removed_carries_no_exit_code(tracker: TaskTracker, seen: list[Transition]) -> None:
    tracker.advance(KEY, "t1", TaskState.RUNNING, container_id="c1")
    tracker.observe("s", [container(status="removing", exit_code=0)], tracker.mark())
    assert (states(seen)[-1], seen[-1].exit_code) == (("failed", "removed"), None)


@pytest.mark.parametrize(
    ("stopped_by_us", "exit_code", "expected"),
    [
        pytest.param(False, 137, ("running", "failed"), id="killed: failed at once"),
        pytest.param(True, 143, ("running", "shutdown"), id="stopped by the daemon: shutdown at once"),
        pytest.param(False, 0, None, id="exit 0: the relist decides (unhealthy? oom?)"),
    ],
)
def test_a_die_event_settles_what_it_can(
    tracker: TaskTracker, seen: list[Transition], stopped_by_us: bool, exit_code: int, expected: tuple[str, str] | None
) -> None:
    tracker.advance(KEY, "t1", TaskState.RUNNING, container_id="c1")
    if stopped_by_us:
        tracker.mark_shutdown("c1")
    assert tracker.exited("t1", exit_code) is (expected is not None)
    assert [(t.from_state.value, t.to_state.value, t.exit_code) for t in seen[1:]] == (
        [(*expected, exit_code)] if expected else []
    )
    tracker.observe("s", [container(status="exited", exit_code=exit_code)], tracker.mark())
    assert len(seen) == 2, "the relist agrees and publishes nothing more (or the one end)"


def test_a_die_event_of_an_unknown_task_is_left_to_the_relist(tracker: TaskTracker, seen: list[Transition]) -> None:
    assert not tracker.exited("not-ours", 1)
    tracker.advance(KEY, "t1", TaskState.NEW)
    assert not tracker.exited("t1", 1), "no container yet"
    assert seen == []


def test_a_running_replica_removed_by_hand_dies_before_it_is_removed(tracker: TaskTracker,
                                                                     seen: list[Transition]) -> None:
    """`docker rm -f` leaves no exited container to relist: its death is still one failed message."""
    tracker.observe("s", [container()], tracker.mark())
    tracker.observe("s", [], tracker.mark())
    assert states(seen) == [("new", "running"), ("running", "failed"), ("failed", "removed")]
    assert seen[1].reason == "container removed outside the orchestrator"


def test_a_replica_stopped_on_purpose_and_gone_ends_shutdown(tracker: TaskTracker, seen: list[Transition]) -> None:
    tracker.observe("s", [container()], tracker.mark())
    tracker.mark_shutdown("c1")
    tracker.observe("s", [], tracker.mark())
    assert states(seen)[1:] == [("running", "shutdown"), ("shutdown", "removed")]


def test_a_container_stopped_before_removal_ends_shutdown_with_its_code(tracker: TaskTracker,
                                                                        seen: list[Transition]) -> None:
    tracker.observe("s", [container()], tracker.mark())
    tracker.mark_shutdown("c1")
    assert tracker.stopped("c1", 0)
    tracker.observe("s", [], tracker.mark())
    assert states(seen)[1:] == [("running", "shutdown"), ("shutdown", "removed")]
    assert seen[1].exit_code == 0


def test_a_replica_seen_removing_dies_once_and_is_removed_once(tracker: TaskTracker, seen: list[Transition]) -> None:
    """`docker rm -f` caught half-way: the relist shows it "removing", then still, then gone."""
    tracker.observe("s", [container()], tracker.mark())
    tracker.observe("s", [container(status="removing", exit_code=137)], tracker.mark())
    tracker.observe("s", [container(status="removing", exit_code=137)], tracker.mark())
    tracker.observe("s", [], tracker.mark())
    assert states(seen) == [("new", "running"), ("running", "failed"), ("failed", "removed")]
    assert seen[1].exit_code == 137
