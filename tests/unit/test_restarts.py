"""The restart book against swarmkit's rules (SEMANTICS.md 1.2) and our default backoff."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest

from orchestrator.model.observed import ContainerState, SlotKey, TaskState
from orchestrator.model.spec import RestartPolicy
from orchestrator.planning.restarts import RestartBook, RestartDecision
from orchestrator.planning.task_states import task_state

KEY = SlotKey("app", "web", 1)
HASH = "aaaaaaaaaaaa"


def container(
    created: float,
    *,
    ran: float = 1.0,
    code: int | None = 1,
    status: str = "exited",
    spec_hash: str = HASH,
    **fields: object,
) -> ContainerState:
    """A container of KEY created and started at `created`, exited `ran` seconds later."""
    finished = created + ran if status in ("exited", "dead") else None
    return ContainerState(
        id=f"c{created:g}",
        name=f"app_web.1.c{created:g}",
        key=KEY,
        spec_hash=spec_hash,
        task_id=f"t{created:g}",
        created_at=created,
        status=status,  # type: ignore[arg-type]
        exit_code=code,
        started_at=created,
        finished_at=finished,
        **fields,  # type: ignore[arg-type]
    )


def crash_loop(
    book: RestartBook, policy: RestartPolicy, runs: list[float], start: float = 0.0
) -> list[RestartDecision]:
    """Start a replica at `start`; each one crashes after the next run time in `runs`; a
    replacement is created as soon as the book allows. Returns every decision, in order."""
    decisions, created = [], start
    for ran in runs:
        decision = book.decide(KEY, HASH, policy, container(created, ran=ran), now=created + ran)
        decisions.append(decision)
        if not decision.restart:
            break
        assert decision.not_before is not None
        created = decision.not_before
        book.record_created(KEY, HASH, policy, created, decision.attempt)
    return decisions


def delays(decisions: list[RestartDecision], runs: list[float], start: float = 0.0) -> list[float]:
    """The delay each decision imposed after its failure."""
    out, created = [], start
    for decision, ran in zip(decisions, runs, strict=False):
        assert decision.not_before is not None
        out.append(round(decision.not_before - (created + ran), 6))
        created = decision.not_before
    return out


# --------------------------------------------------------------------------- conditions


@pytest.mark.parametrize(
    ("condition", "exited", "restart"),
    [
        pytest.param("any", container(0, code=0), True, id="any-exit-0"),
        pytest.param("any", container(0, code=1), True, id="any-exit-1"),
        pytest.param("on-failure", container(0, code=0), False, id="on-failure-exit-0-complete"),
        pytest.param("on-failure", container(0, code=1), True, id="on-failure-exit-1"),
        pytest.param("on-failure", container(0, code=137), True, id="on-failure-sigkill"),
        pytest.param(
            "on-failure", container(0, code=137, oom_killed=True), True, id="on-failure-oom"
        ),
        pytest.param(
            "on-failure",
            container(0, code=0, health="unhealthy"),
            True,
            id="on-failure-unhealthy-exit-0",
        ),
        pytest.param(
            "on-failure",
            container(0, code=127, status="created", error="exec: not found"),
            True,
            id="on-failure-start-failed",
        ),
        pytest.param(
            "on-failure", container(0, code=None, status="dead"), True, id="on-failure-dead"
        ),
        pytest.param("none", container(0, code=1), False, id="none-exit-1"),
        pytest.param("none", container(0, code=0), False, id="none-exit-0"),
    ],
)
def test_condition(condition: str, exited: ContainerState, restart: bool) -> None:
    policy = RestartPolicy(condition=condition)  # type: ignore[arg-type]
    decision = RestartBook().decide(KEY, HASH, policy, exited, now=50.0)
    assert (decision.restart, decision.gave_up) == (restart, False)
    assert (decision.not_before is not None) == restart


def test_first_restart_is_immediate_from_the_failure_time() -> None:
    decision = RestartBook().decide(KEY, HASH, RestartPolicy(), container(100, ran=3), now=200.0)
    assert decision == RestartDecision(True, not_before=103.0, reason="exit code 1", attempt=1)
    assert decision.due(103.0) and decision.due(200.0) and not decision.due(102.9)


def test_no_container_and_no_rejection_means_create_now() -> None:
    decision = RestartBook().decide(KEY, HASH, RestartPolicy(condition="none"), None, now=7.0)
    assert decision.due(7.0) and decision.attempt == 0


def test_an_exited_container_of_another_spec_is_not_judged() -> None:
    old = container(0, code=1, spec_hash="old")
    decision = RestartBook().decide(KEY, HASH, RestartPolicy(condition="none"), old, now=9.0)
    assert decision.due(9.0) and decision.attempt == 0


def test_asking_twice_gives_the_same_answer() -> None:
    book = RestartBook()
    policy = RestartPolicy(max_attempts=3, window=60)
    crash_loop(book, policy, [1, 1])
    exited = container(1000, ran=1)
    assert book.decide(KEY, HASH, policy, exited, 1001) == book.decide(
        KEY, HASH, policy, exited, 1005
    )


# --------------------------------------------------------------------------- delay and backoff


def test_constant_delay_as_swarm() -> None:
    runs = [1.0] * 6
    decisions = crash_loop(RestartBook(), RestartPolicy(delay=5.0), runs)
    assert delays(decisions, runs) == [5.0] * 6


def test_zero_delay_is_constant_zero_not_backoff() -> None:
    runs = [1.0] * 4
    decisions = crash_loop(RestartBook(), RestartPolicy(delay=0.0), runs)
    assert delays(decisions, runs) == [0.0] * 4


@pytest.mark.parametrize(
    ("book", "expected"),
    [
        pytest.param(RestartBook(), [0, 1, 2, 4, 8, 16, 32, 60, 60, 60], id="default-1s-to-60s"),
        pytest.param(
            RestartBook(backoff_base=0.5, backoff_cap=3.0),
            [0, 0.5, 1, 2, 3, 3, 3, 3, 3, 3],
            id="custom",
        ),
    ],
)
def test_backoff_grows_to_its_cap(book: RestartBook, expected: list[float]) -> None:
    runs = [1.0] * 10
    decisions = crash_loop(book, RestartPolicy(), runs)
    assert delays(decisions, runs) == expected
    assert [d.attempt for d in decisions] == list(range(1, 11))


def test_backoff_survives_a_thousand_failures() -> None:
    runs = [0.1] * 1000
    assert delays(crash_loop(RestartBook(), RestartPolicy(), runs), runs)[-1] == 60.0


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        pytest.param([1, 1, 1, 10, 1, 1], [0, 1, 2, 0, 1, 2], id="healthy-run-resets"),
        pytest.param([1, 1, 1, 9.9, 1], [0, 1, 2, 4, 8], id="just-short-of-healthy"),
        pytest.param([30, 30, 30], [0, 0, 0], id="always-healthy"),
    ],
)
def test_backoff_resets_after_a_healthy_run(runs: list[float], expected: list[float]) -> None:
    decisions = crash_loop(RestartBook(healthy_run=10.0), RestartPolicy(), runs)
    assert delays(decisions, runs) == expected


# --------------------------------------------------------------------------- max_attempts


def test_max_attempts_without_window_is_a_lifetime_cap() -> None:
    policy = RestartPolicy(max_attempts=2)
    runs = [1.0, 500.0, 1000.0]  # long healthy runs do not give attempts back
    decisions = crash_loop(RestartBook(), policy, runs)
    assert [d.restart for d in decisions] == [True, True, False]
    assert decisions[-1].gave_up
    assert decisions[-1].reason == "exit code 1; max_attempts 2 reached"


def test_max_attempts_without_window_and_on_failure_ignores_completions() -> None:
    book = RestartBook()
    policy = RestartPolicy(condition="on-failure", max_attempts=1)
    crash_loop(book, policy, [1.0])
    decision = book.decide(KEY, HASH, policy, container(1.0, code=0), now=5.0)
    assert not decision.restart and not decision.gave_up


@pytest.mark.parametrize(
    ("window", "failures", "gives_up_at"),
    [
        # SEMANTICS.md 1.2: crash ~1 s after each start, delay 5 s, max_attempts 3.
        pytest.param(60.0, 4, 19.0, id="window-60s-gives-up-at-4th-failure"),
        pytest.param(10.0, 40, None, id="window-10s-never-gives-up"),
    ],
)
def test_max_attempts_in_a_sliding_window(
    window: float, failures: int, gives_up_at: float | None
) -> None:
    policy = RestartPolicy(delay=5.0, max_attempts=3, window=window)
    decisions = crash_loop(RestartBook(), policy, [1.0] * failures)
    assert len(decisions) == failures
    if gives_up_at is None:
        assert all(d.restart for d in decisions)
    else:
        assert [d.restart for d in decisions] == [True] * (failures - 1) + [False]
        assert decisions[-1].gave_up
        assert decisions[-1].reason == "exit code 1; max_attempts 3 within 60s reached"
        # restarts were created at 6, 12 and 18; the 4th replica failed at 19
        assert decisions[-2].not_before == 18.0 and gives_up_at == 18.0 + 1.0


@pytest.mark.parametrize(
    ("failed_at", "restart"),
    [
        pytest.param(60.0, False, id="both-inside-(0,60)"),
        pytest.param(59.0, False, id="all-inside"),
        pytest.param(60.5, True, id="oldest-at-exactly-T-minus-window-is-out"),
    ],
)
def test_window_bounds(failed_at: float, restart: bool) -> None:
    book = RestartBook()
    policy = RestartPolicy(delay=0.0, max_attempts=2, window=60.0)
    book.record_created(KEY, HASH, policy, 0.5, attempt=1)
    book.record_created(KEY, HASH, policy, 30.0, attempt=2)
    exited = container(30.0, ran=failed_at - 30.0)
    assert book.decide(KEY, HASH, policy, exited, now=failed_at).restart is restart


def test_restarts_after_the_failure_do_not_count() -> None:
    book = RestartBook()
    policy = RestartPolicy(delay=0.0, max_attempts=1, window=60.0)
    book.record_created(KEY, HASH, policy, 50.5, attempt=1)
    assert book.decide(KEY, HASH, policy, container(0.0, ran=50.0), now=60.0).restart


def test_history_resets_when_the_spec_changes() -> None:
    book = RestartBook()
    policy = RestartPolicy(max_attempts=1)
    assert [d.restart for d in crash_loop(book, policy, [1.0, 1.0])] == [True, False]
    new = "bbbbbbbbbbbb"
    assert book.decide(KEY, new, policy, container(50, spec_hash=new), now=52).restart
    book.record_created(KEY, new, policy, 52.0, attempt=1)
    assert not book.decide(KEY, new, policy, container(52, spec_hash=new), now=54).restart
    assert not book.decide(KEY, HASH, policy, container(60), now=62).gave_up  # old history is gone


@pytest.mark.parametrize(
    ("reset", "web_restarts", "db_restarts"),
    [
        pytest.param(lambda b: b.reset("app"), True, True, id="stack"),
        pytest.param(lambda b: b.reset("app", "web"), True, False, id="one-service"),
        pytest.param(lambda b: b.reset("other"), False, False, id="another-stack"),
        pytest.param(lambda b: b.forget_stack("app"), True, True, id="forget-stack"),
    ],
)
def test_reset_gives_attempts_back(
    reset: Callable[[RestartBook], None], web_restarts: bool, db_restarts: bool
) -> None:
    book = RestartBook()
    policy = RestartPolicy(max_attempts=1)
    db = SlotKey("app", "db", 1)
    for key in (KEY, db):
        book.record_created(key, HASH, policy, 1.0, attempt=1)
    reset(book)
    exited = container(1.0)
    assert book.decide(KEY, HASH, policy, exited, 5.0).restart is web_restarts
    assert book.decide(db, HASH, policy, replace(exited, key=db), 5.0).restart is db_restarts


# --------------------------------------------------------------------------- rejections


def test_rejections_are_retried_with_backoff() -> None:
    book, policy = RestartBook(), RestartPolicy()
    book.record_rejection(KEY, HASH, policy, 10.0, "no such image")
    decisions = []
    for at in (10.0, 11.0, 13.0, 17.0):  # each retry is refused again when it is due
        decision = book.decide(KEY, HASH, policy, None, now=at)
        assert decision.due(at)
        decisions.append(decision)
        book.record_rejection(KEY, HASH, policy, at, "no such image", decision.attempt)
    assert [d.not_before for d in decisions] == [10.0, 11.0, 13.0, 17.0]
    assert [d.attempt for d in decisions] == [1, 2, 3, 4]
    assert decisions[0].reason == "rejected: no such image"
    assert book.rejection(KEY) == "no such image"
    assert book.decide(KEY, HASH, policy, None, now=18.0).not_before == 25.0


def test_rejection_under_condition_none_stays_rejected() -> None:
    book = RestartBook()
    book.record_rejection(KEY, HASH, RestartPolicy(), 10.0, "no such image")
    decision = book.decide(KEY, HASH, RestartPolicy(condition="none"), None, now=11.0)
    assert not decision.restart and decision.reason == "rejected: no such image; condition none"


@pytest.mark.parametrize(
    "window", [pytest.param(0.0, id="lifetime"), pytest.param(60.0, id="window")]
)
def test_rejected_restarts_count_towards_max_attempts(window: float) -> None:
    book, policy = RestartBook(), RestartPolicy(delay=0.0, max_attempts=2, window=window)
    book.record_rejection(KEY, HASH, policy, 1.0, "no such image")
    book.record_rejection(KEY, HASH, policy, 2.0, "no such image", attempt=1)
    book.record_rejection(KEY, HASH, policy, 3.0, "no such image", attempt=2)
    assert book.decide(KEY, HASH, policy, None, now=4.0).gave_up


def test_a_successful_create_clears_the_rejection() -> None:
    book = RestartBook()
    book.record_rejection(KEY, HASH, RestartPolicy(), 10.0, "no such image")
    book.record_created(KEY, HASH, RestartPolicy(), 12.0, attempt=1)
    assert book.rejection(KEY) is None
    assert book.decide(KEY, HASH, RestartPolicy(), None, now=13.0).attempt == 0


def test_a_rejection_older_than_the_exited_container_is_not_the_failure() -> None:
    book = RestartBook()
    book.record_rejection(KEY, HASH, RestartPolicy(), 5.0, "no such image")
    decision = book.decide(
        KEY, HASH, RestartPolicy(condition="on-failure"), container(8, code=0), 9.0
    )
    assert not decision.restart and decision.reason == "exit code 0; condition on-failure"


def test_a_rejection_newer_than_the_exited_container_is_the_failure() -> None:
    book = RestartBook()
    book.record_rejection(KEY, HASH, RestartPolicy(), 20.0, "no such image")
    decision = book.decide(KEY, HASH, RestartPolicy(delay=3.0), container(8, code=1), 25.0)
    assert decision.not_before == 23.0 and decision.reason.startswith("rejected")


def test_rejection_of_another_spec_is_not_reported() -> None:
    book = RestartBook()
    book.record_rejection(KEY, HASH, RestartPolicy(), 20.0, "no such image")
    assert book.rejection(KEY, "bbbbbbbbbbbb") is None
    assert book.rejection(KEY, HASH) == "no such image"


# --------------------------------------------------------------------------- numbers that slipped through


@pytest.mark.parametrize(
    ("policy", "named"),
    [
        pytest.param(RestartPolicy(delay=float("nan")), "restart_policy.delay is nan", id="delay-nan"),
        pytest.param(RestartPolicy(delay=float("inf")), "restart_policy.delay is inf", id="delay-inf"),
        pytest.param(RestartPolicy(delay=float("-inf")), "restart_policy.delay is -inf", id="delay-minus-inf"),
        pytest.param(
            RestartPolicy(max_attempts=3, window=float("nan")), "restart_policy.window is nan", id="window-nan"
        ),
    ],
)
def test_a_policy_that_cannot_schedule_a_restart_gives_up_and_says_why(
    policy: RestartPolicy, named: str
) -> None:
    """Before: not_before was NaN (never due, no wake-up, no event: the slot stayed failed
    without a word) or infinity."""
    decision = RestartBook().decide(KEY, HASH, policy, container(0), now=5.0)
    assert (decision.restart, decision.gave_up, decision.not_before) == (False, True, None)
    assert decision.reason.startswith("exit code 1; " + named)


def test_an_unusable_policy_still_lets_the_first_replica_start() -> None:
    decision = RestartBook().decide(KEY, HASH, RestartPolicy(delay=float("nan")), None, now=5.0)
    assert decision.due(5.0)


def test_a_negative_delay_counts_as_none() -> None:
    runs = [1.0] * 3
    assert delays(crash_loop(RestartBook(), RestartPolicy(delay=-5.0), runs), runs) == [0.0] * 3


def test_an_infinite_window_is_a_lifetime_cap() -> None:
    decisions = crash_loop(RestartBook(), RestartPolicy(delay=0.0, max_attempts=2, window=float("inf")), [1.0] * 5)
    assert [d.restart for d in decisions] == [True, True, False] and decisions[-1].gave_up


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_backoff_settings_that_are_not_finite_seconds_fall_back_to_the_defaults(bad: float) -> None:
    book = RestartBook(backoff_base=bad, backoff_cap=bad, healthy_run=bad)
    assert [book.backoff(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert book.healthy_run == 10.0


def test_backoff_never_overflows() -> None:
    assert RestartBook().backoff(10**9) == 60.0


# --------------------------------------------------------------------------- persistence


def test_json_round_trip_keeps_every_decision() -> None:
    book = RestartBook(backoff_base=2.0)
    policy = RestartPolicy(max_attempts=3, window=100.0)
    crash_loop(book, policy, [1.0, 1.0])
    other = SlotKey("app", "db", 2)
    book.record_rejection(other, "cccccccccccc", policy, 40.0, "pull access denied")
    data = json.loads(json.dumps(book.to_json()))
    copy = RestartBook.from_json(data, backoff_base=2.0)
    assert copy.to_json() == book.to_json()
    exited = container(100.0)
    assert copy.decide(KEY, HASH, policy, exited, 101.0) == book.decide(
        KEY, HASH, policy, exited, 101.0
    )
    assert copy.rejection(other) == "pull access denied"


def test_json_of_an_unknown_version_is_refused() -> None:
    with pytest.raises(ValueError, match="version"):
        RestartBook.from_json({"version": 99, "slots": []})


def test_window_history_is_pruned() -> None:
    book = RestartBook()
    crash_loop(book, RestartPolicy(delay=5.0, max_attempts=3, window=10.0), [1.0] * 50)
    assert len(book.to_json()["slots"][0]["times"]) <= 3


def test_lifetime_cap_keeps_no_timestamps() -> None:
    book = RestartBook()
    crash_loop(book, RestartPolicy(max_attempts=100), [1.0] * 50)
    row = book.to_json()["slots"][0]
    assert row["total"] == 50 and len(row["times"]) <= 1


# --------------------------------------------------------------------------- task states


def live(status: str, **fields: object) -> ContainerState:
    return container(0, status=status, code=None, **fields)


@pytest.mark.parametrize(
    ("state", "stopped_by_us", "expected"),
    [
        pytest.param(live("created"), False, TaskState.CREATED, id="created"),
        pytest.param(live("created", error="exec"), False, TaskState.REJECTED, id="start-refused"),
        pytest.param(live("running"), False, TaskState.RUNNING, id="running"),
        pytest.param(live("running", health="starting"), False, TaskState.STARTING, id="starting"),
        pytest.param(live("running", health="healthy"), False, TaskState.RUNNING, id="healthy"),
        pytest.param(live("restarting"), False, TaskState.STARTING, id="restarting"),
        pytest.param(live("paused"), False, TaskState.RUNNING, id="paused"),
        pytest.param(live("removing"), False, TaskState.REMOVED, id="removing"),
        pytest.param(container(0, code=0), False, TaskState.COMPLETE, id="exit-0"),
        pytest.param(container(0, code=2), False, TaskState.FAILED, id="exit-2"),
        pytest.param(container(0, code=137), True, TaskState.SHUTDOWN, id="stopped-by-us"),
        pytest.param(container(0, code=0), True, TaskState.SHUTDOWN, id="stopped-by-us-exit-0"),
        pytest.param(
            container(0, code=143, health="unhealthy"), False, TaskState.FAILED, id="unhealthy"
        ),
        pytest.param(
            container(0, code=0, health="unhealthy"), False, TaskState.FAILED, id="unhealthy-0"
        ),
        pytest.param(container(0, code=137, oom_killed=True), False, TaskState.FAILED, id="oom"),
        pytest.param(container(0, code=None, status="dead"), False, TaskState.FAILED, id="dead"),
    ],
)
def test_task_state(state: ContainerState, stopped_by_us: bool, expected: TaskState) -> None:
    assert task_state(state, stopped_by_us) is expected


def test_a_container_whose_start_failed_is_not_alive() -> None:
    assert container(0, status="created", code=None).alive
    assert not container(0, status="created", code=127, error="exec failed").alive
