"""The planner as a decision table: (spec, replicas, observed, book, busy) → whole action list."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import pytest

from orchestrator import labels
from orchestrator.planning import updates
from orchestrator.model.observed import ContainerState, SlotKey
from orchestrator.model.plan import Action, CreateTask, PrepareStandby, RemoveContainer, StopTask
from orchestrator.model.spec import DependsOn, RestartPolicy, ServiceSpec, StackSpec, UpdateConfig
from orchestrator.model.plan import (
    REASON_DUPLICATE,
    REASON_EMPTY,
    REASON_HISTORY,
    REASON_NEVER_STARTED,
    REASON_RESTART,
    REASON_SCALE_DOWN,
    REASON_SERVICE_REMOVED,
    REASON_STANDBY_STALE,
    REASON_UNHEALTHY,
    REASON_UPDATE,
)
from orchestrator.planning.planner import plan
from orchestrator.planning.slots import choose_slots, free_slots
from orchestrator.planning.restarts import RestartBook

STACK = "app"
NOW = 1000.0
STALE = "0ld0ld0ld0ld"


def service(name: str = "web", replicas: int = 3, **fields: object) -> ServiceSpec:
    return ServiceSpec(name=name, image="orchestrator-test/busybox", replicas=replicas, **fields)  # type: ignore[arg-type]


def c(
    spec: ServiceSpec,
    slot: int,
    created: float,
    status: str = "running",
    *,
    stale: bool = False,
    code: int | None = None,
    health: str | None = None,
    error: str = "",
    stack: str = STACK,
    standby: bool = False,
) -> ContainerState:
    """A container of `spec` in `slot`, created (and started) at `created`; exited ones exit
    one second later with `code` (default 1)."""
    done = status in ("exited", "dead")
    return ContainerState(
        id=f"{spec.name}{slot}-{created:g}",
        name=f"{stack}_{spec.name}.{slot}.t{created:g}",
        key=SlotKey(stack, spec.name, slot),
        spec_hash=STALE if stale else labels.spec_hash(spec),
        task_id=f"t{created:g}",
        created_at=created,
        status=status,  # type: ignore[arg-type]
        health=health,  # type: ignore[arg-type]
        exit_code=(1 if code is None else code) if done else None,
        error=error,
        started_at=None if status == "created" else created,
        finished_at=created + 1 if done else None,
        standby=standby,
    )


def spare(spec: ServiceSpec, slot: int, created: float, *, stale: bool = False) -> ContainerState:
    """A waiting standby of `spec` in `slot`."""
    return c(spec, slot, created, "created", stale=stale, standby=True)


def create(
    spec: ServiceSpec, slot: int, reason: str = REASON_EMPTY, attempt: int = 0
) -> CreateTask:
    return CreateTask(SlotKey(STACK, spec.name, slot), reason, attempt)


def remove(container: ContainerState, reason: str) -> RemoveContainer:
    return RemoveContainer(container.key, container.id, reason, container.is_standby)


def stop(container: ContainerState, reason: str) -> StopTask:
    return StopTask(container.key, container.id, reason)


def key(spec: ServiceSpec, slot: int) -> SlotKey:
    return SlotKey(STACK, spec.name, slot)


@dataclass
class Case:
    services: Sequence[ServiceSpec]
    observed: Sequence[ContainerState]
    actions: Sequence[Action]
    replicas: dict[str, int] = field(default_factory=dict)
    busy: frozenset[SlotKey] = frozenset()
    wake_at: float | None = None
    book: Callable[[RestartBook], object] | None = None
    history_limit: int = 5
    #: Compare PrepareStandby actions too (most tables are about tasks and leave them out).
    standbys: bool = False


def run(case: Case) -> tuple[list[Action], float | None]:
    book = RestartBook()
    if case.book is not None:
        case.book(book)
    stack = StackSpec(STACK, {s.name: s for s in case.services})
    result = plan(stack, case.replicas, case.observed, book, NOW, case.busy, case.history_limit)
    actions = [a for a in result.actions if case.standbys or not isinstance(a, PrepareStandby)]
    return actions, result.wake_at


# --------------------------------------------------------------------------- specs and containers

WEB = service()
WEB1 = service(replicas=1)
NONE = service(restart_policy=RestartPolicy(condition="none"))
NONE1 = replace(NONE, replicas=1)
DELAY30 = service(restart_policy=RestartPolicy(delay=30.0))
ON_FAILURE = service(replicas=1, restart_policy=RestartPolicy(condition="on-failure"))
ONCE = service(replicas=1, restart_policy=RestartPolicy(max_attempts=1))
API = service("api", replicas=2)
DB = service("db", replicas=1)
MIGRATE = service("migrate", replicas=1, restart_policy=RestartPolicy(condition="none"))
WEB_AFTER_DB = service(replicas=1, depends_on=(DependsOn("db"),))
WEB_AFTER_HEALTHY_DB = service(replicas=1, depends_on=(DependsOn("db", "service_healthy"),))
WEB_AFTER_MIGRATE = service(
    replicas=1, depends_on=(DependsOn("migrate", "service_completed_successfully"),)
)
PAR2 = service(update_config=UpdateConfig(parallelism=2))
PAR0 = service(update_config=UpdateConfig(parallelism=0))
START_FIRST = service(update_config=UpdateConfig(order="start-first"))
GLOBAL = service(mode="global", replicas=1)

# Reused containers (the same object must appear in `observed` and in the expected actions).
R1, R2, R3, R4, R5 = (c(WEB, n, 10 + n) for n in range(1, 6))
NONE_X1 = c(NONE, 1, 5, "exited")
NONE_R2, NONE_R3, NONE_R4 = (c(NONE, n, 10 + n) for n in (2, 3, 4))
H2A, H2B = c(WEB1, 2, 1, "exited"), c(WEB1, 2, 2, "exited")
DUP_OLD, DUP_NEW = c(WEB1, 1, 10), c(WEB1, 1, 20)
SF_OLD = c(START_FIRST, 1, 10, stale=True)
MATCH_OLD, STALE_NEW = c(WEB1, 1, 10), c(WEB1, 1, 20, stale=True)
STALE_OLD, STALE_NEWER = c(WEB1, 1, 10, stale=True), c(WEB1, 1, 20, stale=True)
HISTORY = [c(WEB1, 1, n, "exited") for n in range(1, 8)]
NONE_HISTORY = [c(NONE1, 1, n, "exited") for n in range(1, 7)]
S1, S2, S3 = (c(WEB, n, 10 + n, stale=True) for n in (1, 2, 3))
P1, P2, P3 = (c(PAR2, n, 10 + n, stale=True) for n in (1, 2, 3))
SF1, SF2 = (c(START_FIRST, n, 10 + n, stale=True) for n in (1, 2))
WORKER = service("worker", replicas=1)
W1, W2 = c(WORKER, 1, 10), c(WORKER, 2, 11, "exited")
UNHEALTHY = c(WEB1, 1, 10, health="unhealthy")
D2_3 = [c(DELAY30, 2, 12), c(DELAY30, 3, 13)]


def rejected(
    at: float, attempt: int = 0, spec: ServiceSpec = WEB1
) -> Callable[[RestartBook], None]:
    def setup(book: RestartBook) -> None:
        book.record_rejection(
            key(spec, 1), labels.spec_hash(spec), spec.restart_policy, at, "no such image", attempt
        )

    return setup


CASES = [
    # ---- replicas and slots
    pytest.param(
        Case([WEB], [], [create(WEB, 1), create(WEB, 2), create(WEB, 3)]), id="fresh-deploy"
    ),
    pytest.param(Case([WEB], [R1, R2, R3], []), id="converged"),
    pytest.param(Case([WEB], [R1, R2], [create(WEB, 3)]), id="missing-slot-recreated"),
    pytest.param(
        Case([WEB], [R1, R2, R3], [create(WEB, 4), create(WEB, 5)], replicas={"web": 5}),
        id="scale-up-override",
    ),
    pytest.param(
        Case([WEB], [R2, R5], [create(WEB, 1), create(WEB, 3)], replicas={"web": 4}),
        id="scale-up-fills-lowest-free",
    ),
    pytest.param(
        Case(
            [WEB],
            [R1, R2, R3, R4, R5],
            [remove(R4, REASON_SCALE_DOWN), remove(R5, REASON_SCALE_DOWN)],
        ),
        id="scale-down-highest-first",
    ),
    pytest.param(
        Case([NONE], [NONE_X1, NONE_R2, NONE_R3, NONE_R4], [remove(NONE_X1, REASON_SCALE_DOWN)]),
        id="scale-down-non-running-first-no-renumbering",
    ),
    pytest.param(
        Case(
            [WEB1],
            [R1, H2A, H2B, c(WEB1, 2, 3)],
            [
                remove(H2A, REASON_SCALE_DOWN),
                remove(H2B, REASON_SCALE_DOWN),
                remove(c(WEB1, 2, 3), REASON_SCALE_DOWN),
            ],
        ),
        id="scale-down-removes-whole-slot-with-history",
    ),
    pytest.param(
        Case(
            [WEB],
            [R1, R2],
            [remove(R1, REASON_SCALE_DOWN), remove(R2, REASON_SCALE_DOWN)],
            replicas={"web": 0},
        ),
        id="scale-to-zero",
    ),
    pytest.param(
        Case([WEB], [R1, R2, R3], [], replicas={"web": 2}, busy=frozenset({key(WEB, 3)})),
        id="scale-down-skips-busy-slot",
    ),
    pytest.param(
        Case([WEB], [R1], [create(WEB, 3)], busy=frozenset({key(WEB, 2)})),
        id="busy-empty-slot-counts-as-occupied",
    ),
    pytest.param(
        Case([WEB1], [c(WEB1, 1, 5, "exited")], [], busy=frozenset({key(WEB1, 1)})),
        id="busy-exited-slot-skipped",
    ),
    pytest.param(
        Case(
            [WEB1, API], [R1, R2], [remove(R2, REASON_SCALE_DOWN), create(API, 1), create(API, 2)]
        ),
        id="removals-before-creations",
    ),
    pytest.param(Case([GLOBAL], [], [create(GLOBAL, 1)]), id="global-is-one-replica"),
    pytest.param(
        Case(
            [WEB1],
            [R1, W1, W2],
            [remove(W1, REASON_SERVICE_REMOVED), remove(W2, REASON_SERVICE_REMOVED)],
        ),
        id="removed-service",
    ),
    pytest.param(
        Case([WEB1], [R1, W1, W2], [remove(W2, REASON_SERVICE_REMOVED)], busy=frozenset({W1.key})),
        id="removed-service-busy-slot-kept",
    ),
    pytest.param(
        Case([WEB1], [c(WEB1, 1, 10, stack="other")], [create(WEB1, 1)]), id="other-stack-ignored"
    ),
    # ---- duplicates
    pytest.param(
        Case([WEB1], [DUP_OLD, DUP_NEW], [remove(DUP_OLD, REASON_DUPLICATE)]),
        id="duplicate-keeps-newest",
    ),
    pytest.param(
        Case([WEB1], [MATCH_OLD, STALE_NEW], [stop(STALE_NEW, REASON_UPDATE)]),
        id="duplicate-keeps-matching-over-newer-stale",
    ),
    pytest.param(
        Case(
            [WEB1],
            [STALE_OLD, STALE_NEWER],
            [
                remove(STALE_OLD, REASON_DUPLICATE),
                stop(STALE_NEWER, REASON_UPDATE),
                create(WEB1, 1, REASON_UPDATE),
            ],
        ),
        id="duplicate-both-stale-then-update",
    ),
    # ---- history
    pytest.param(
        Case(
            [WEB1],
            [*HISTORY, c(WEB1, 1, 100)],
            [remove(HISTORY[0], REASON_HISTORY), remove(HISTORY[1], REASON_HISTORY)],
        ),
        id="history-pruned-oldest-first",
    ),
    pytest.param(
        Case([NONE1], NONE_HISTORY, [remove(NONE_HISTORY[0], REASON_HISTORY)]),
        id="history-counts-exited-current",
    ),
    pytest.param(
        Case(
            [NONE1],
            NONE_HISTORY[:3],
            [remove(NONE_HISTORY[0], REASON_HISTORY), remove(NONE_HISTORY[1], REASON_HISTORY)],
            history_limit=0,
        ),
        id="history-limit-0-keeps-the-newest",
    ),
    pytest.param(
        Case([WEB1], [*HISTORY, c(WEB1, 1, 100)], [], history_limit=-1),
        id="history-limit-negative-keeps-all",
    ),
    # ---- health
    pytest.param(
        Case([WEB1], [UNHEALTHY], [stop(UNHEALTHY, REASON_UNHEALTHY)]), id="unhealthy-stopped"
    ),
    pytest.param(
        Case([WEB1], [c(WEB1, 1, 10, health="starting")], []), id="health-starting-left-alone"
    ),
    pytest.param(
        Case(
            [WEB1],
            [c(WEB1, 1, 10, stale=True, health="unhealthy")],
            [stop(c(WEB1, 1, 10, stale=True, health="unhealthy"), REASON_UNHEALTHY)],
        ),
        id="stale-and-unhealthy-stopped-as-unhealthy",
    ),
    # ---- restart policy
    pytest.param(
        Case([WEB1], [c(WEB1, 1, 900, "exited")], [create(WEB1, 1, REASON_RESTART, 1)]),
        id="restart-now",
    ),
    pytest.param(
        Case(
            [WEB1],
            [c(WEB1, 1, 900, "exited", health="unhealthy", code=143)],
            [create(WEB1, 1, REASON_RESTART, 1)],
        ),
        id="restart-after-unhealthy-stop",
    ),
    pytest.param(
        Case(
            [WEB1],
            [c(WEB1, 1, 900, "created", error="exec: no such file")],
            [create(WEB1, 1, REASON_RESTART, 1)],
        ),
        id="restart-after-failed-start",
    ),
    pytest.param(
        Case(
            [WEB1],
            [stuck := c(WEB1, 1, 999, "created")],
            [remove(stuck, REASON_NEVER_STARTED)],
        ),
        id="created-never-started-is-removed",
    ),
    pytest.param(
        Case([WEB1], [c(WEB1, 1, 999, "created")], [], busy={key(WEB1, 1)}),
        id="created-being-started-is-left-alone",
    ),
    pytest.param(
        Case([DELAY30], [c(DELAY30, 1, 989, "exited"), *D2_3], [], wake_at=1020.0),
        id="restart-later-wakes",
    ),
    pytest.param(
        Case(
            [DELAY30],
            [c(DELAY30, 1, 950, "exited"), *D2_3],
            [create(DELAY30, 1, REASON_RESTART, 1)],
        ),
        id="restart-delay-elapsed",
    ),
    pytest.param(
        Case(
            [DELAY30],
            [c(DELAY30, 1, 989, "exited"), c(DELAY30, 2, 979, "exited"), D2_3[1]],
            [],
            wake_at=1010.0,
        ),
        id="wake-at-is-the-earliest",
    ),
    pytest.param(
        Case([ON_FAILURE], [c(ON_FAILURE, 1, 900, "exited", code=0)], []),
        id="on-failure-complete-left",
    ),
    pytest.param(Case([NONE1], [c(NONE1, 1, 900, "exited")], []), id="condition-none-left"),
    pytest.param(
        Case(
            [ONCE],
            [c(ONCE, 1, 900, "exited")],
            [],
            book=lambda b: b.record_created(
                key(ONCE, 1), labels.spec_hash(ONCE), ONCE.restart_policy, 900.0, 1
            ),
        ),
        id="gave-up-slot-left-and-not-replaced",
    ),
    pytest.param(
        Case([WEB1], [], [create(WEB1, 1, REASON_EMPTY, 1)], book=rejected(999.0)),
        id="rejected-retried-at-once",
    ),
    pytest.param(
        Case([WEB1], [], [], book=rejected(999.5, attempt=2), wake_at=1001.5),
        id="rejected-backs-off",
    ),
    pytest.param(
        Case([NONE1], [], [], book=rejected(999.0, spec=NONE1)), id="rejected-condition-none-stays"
    ),
    # ---- depends_on
    pytest.param(
        Case([DB, WEB_AFTER_DB], [], [create(DB, 1)]), id="depends-on-waits-for-first-start"
    ),
    pytest.param(
        Case([DB, WEB_AFTER_DB], [c(DB, 1, 10)], [create(WEB_AFTER_DB, 1)]), id="depends-on-started"
    ),
    pytest.param(
        Case([DB, WEB_AFTER_DB], [c(DB, 1, 10, "created")], [], busy={key(DB, 1)}),
        id="depends-on-created-is-not-started",
    ),
    pytest.param(
        Case([DB, WEB_AFTER_HEALTHY_DB], [c(DB, 1, 10, health="starting")], []),
        id="depends-on-healthy-waits",
    ),
    pytest.param(
        Case(
            [DB, WEB_AFTER_HEALTHY_DB],
            [c(DB, 1, 10, health="healthy")],
            [create(WEB_AFTER_HEALTHY_DB, 1)],
        ),
        id="depends-on-healthy",
    ),
    pytest.param(
        Case(
            [MIGRATE, WEB_AFTER_MIGRATE],
            [c(MIGRATE, 1, 10, "exited", code=0)],
            [create(WEB_AFTER_MIGRATE, 1)],
        ),
        id="depends-on-completed",
    ),
    pytest.param(
        Case([MIGRATE, WEB_AFTER_MIGRATE], [c(MIGRATE, 1, 10, "exited", code=1)], []),
        id="depends-on-completed-failed",
    ),
    pytest.param(
        Case(
            [DB, WEB_AFTER_DB],
            [c(WEB_AFTER_DB, 1, 900, "exited")],
            [create(DB, 1), create(WEB_AFTER_DB, 1, REASON_RESTART, 1)],
        ),
        id="depends-on-only-for-first-start",
    ),
    pytest.param(
        Case([DB, WEB_AFTER_DB], [], [create(WEB_AFTER_DB, 1)], replicas={"db": 0}),
        id="depends-on-scaled-to-zero",
    ),
    # ---- rolling replacement of a changed spec
    pytest.param(
        Case([WEB], [S1, S2, S3], [stop(S1, REASON_UPDATE), create(WEB, 1, REASON_UPDATE)]),
        id="update-parallelism-1",
    ),
    pytest.param(
        Case(
            [PAR2],
            [P1, P2, P3],
            [
                stop(P1, REASON_UPDATE),
                stop(P2, REASON_UPDATE),
                create(PAR2, 1, REASON_UPDATE),
                create(PAR2, 2, REASON_UPDATE),
            ],
        ),
        id="update-parallelism-2",
    ),
    pytest.param(
        Case(
            [PAR0],
            [c(PAR0, n, n, stale=True) for n in (1, 2, 3)],
            [
                *(stop(c(PAR0, n, n, stale=True), REASON_UPDATE) for n in (1, 2, 3)),
                *(create(PAR0, n, REASON_UPDATE) for n in (1, 2, 3)),
            ],
        ),
        id="update-parallelism-0-all-at-once",
    ),
    pytest.param(
        Case([WEB], [S1, S3], [], busy=frozenset({key(WEB, 2)})),
        id="update-busy-slot-uses-the-token",
    ),
    pytest.param(
        Case(
            [PAR2],
            [P2, P3],
            [stop(P2, REASON_UPDATE), create(PAR2, 2, REASON_UPDATE)],
            busy=frozenset({key(PAR2, 1)}),
        ),
        id="update-parallelism-2-one-busy",
    ),
    pytest.param(
        Case(
            [START_FIRST],
            [SF1, SF2, c(START_FIRST, 3, 13)],
            [create(START_FIRST, 1, REASON_UPDATE)],
        ),
        id="update-start-first-creates-first",
    ),
    pytest.param(
        Case(
            [START_FIRST],
            [SF1, c(START_FIRST, 1, 20), SF2, c(START_FIRST, 3, 13)],
            [stop(SF1, REASON_UPDATE)],
        ),
        id="update-start-first-handover-holds-the-token",
    ),
    pytest.param(
        Case(
            [START_FIRST],
            [SF1, c(START_FIRST, 1, 20, health="starting"), SF2, c(START_FIRST, 3, 13)],
            [],
        ),
        id="update-start-first-waits-for-ready",
    ),
    pytest.param(
        Case(
            [START_FIRST],
            [
                SF1,
                c(START_FIRST, 1, 20, health="unhealthy"),
                c(START_FIRST, 2, 12),
                c(START_FIRST, 3, 13),
            ],
            [stop(c(START_FIRST, 1, 20, health="unhealthy"), REASON_UNHEALTHY)],
        ),
        id="update-start-first-unhealthy-replacement-stopped",
    ),
    pytest.param(
        Case(
            [START_FIRST],
            [SF1, c(START_FIRST, 1, 900, "exited"), c(START_FIRST, 2, 12), c(START_FIRST, 3, 13)],
            [create(START_FIRST, 1, REASON_RESTART, 1)],
        ),
        id="update-start-first-failed-replacement-restarted",
    ),
    pytest.param(
        Case([NONE1], [c(NONE1, 1, 5, "exited", stale=True)], [create(NONE1, 1, REASON_UPDATE)]),
        id="update-dead-stale-replaced-at-once",
    ),
    pytest.param(
        Case([WEB], [c(WEB, 1, 5, "exited", stale=True), S2, R3], [create(WEB, 1, REASON_UPDATE)]),
        id="update-dead-stale-holds-the-token",
    ),
    pytest.param(
        Case(
            [WEB1],
            [c(WEB1, 1, 10, stale=True)],
            [],
            book=rejected(999.5, attempt=2),
            wake_at=1001.5,
        ),
        id="update-refused-backs-off-without-stopping-the-old",
    ),
    pytest.param(
        Case(
            [WEB],
            [S1, S2, c(WEB, 3, 13)],
            [stop(S2, REASON_UPDATE), create(WEB, 2, REASON_UPDATE, 1)],
            book=lambda b: b.record_rejection(
                key(WEB, 2), labels.spec_hash(WEB), WEB.restart_policy, 990.0, "no such image"
            ),
        ),
        id="update-refused-slot-retried-first",
    ),
]


def prepare(spec: ServiceSpec, *slots: int) -> list[PrepareStandby]:
    return [PrepareStandby(key(spec, n)) for n in slots]


def start(spec: ServiceSpec, standby: ContainerState, reason: str, attempt: int = 0) -> CreateTask:
    return CreateTask(standby.key, reason, attempt, standby.id, standby.task_id)


X1 = c(WEB1, 1, 10, "exited")
SB1, SB2, SB3 = (spare(WEB, n, 20 + n) for n in (1, 2, 3))
SB1_STALE = spare(WEB1, 1, 30, stale=True)
SB1_OLDER, SB1_NEWER = spare(WEB1, 1, 20), spare(WEB1, 1, 21)
SB_DELAY = spare(DELAY30, 1, 20)
SB_NONE = spare(NONE1, 1, 20)

STANDBY_CASES = [
    pytest.param(Case([WEB], [R1, R2, R3], prepare(WEB, 1, 2, 3), standbys=True), id="converged-gets-standbys"),
    pytest.param(Case([WEB], [R1, R2, R3, SB1, SB2, SB3], [], standbys=True), id="standbys-are-no-duplicates-nor-stuck"),
    pytest.param(
        Case([WEB], [R1, R2, SB1], [create(WEB, 3)], standbys=True), id="no-standbys-while-converging"
    ),
    pytest.param(
        Case([WEB], [R1, R2, R3], [], busy=frozenset({key(WEB, 4)}), standbys=True),
        id="no-standbys-while-a-slot-is-busy",
    ),
    pytest.param(
        Case([WEB1], [X1, spare(WEB1, 1, 20)], [start(WEB1, spare(WEB1, 1, 20), REASON_RESTART, 1)], standbys=True),
        id="restart-starts-the-standby",
    ),
    pytest.param(
        Case([WEB1], [c(WEB1, 1, 10), SB1_STALE], [remove(SB1_STALE, REASON_STANDBY_STALE)], standbys=True),
        id="stale-standby-removed",
    ),
    pytest.param(
        Case([WEB1], [c(WEB1, 1, 10), SB1_OLDER, SB1_NEWER], [remove(SB1_OLDER, REASON_STANDBY_STALE)], standbys=True),
        id="surplus-standby-removed",
    ),
    pytest.param(
        Case([WEB], [R1, R2, SB2], [remove(R2, REASON_SCALE_DOWN), remove(SB2, REASON_SCALE_DOWN)],
             replicas={"web": 1}, standbys=True),
        id="scale-down-removes-the-slot-standby",
    ),
    pytest.param(
        Case([DELAY30], [c(DELAY30, 1, NOW - 2, "exited"), SB_DELAY, *D2_3], [], wake_at=NOW + 29),
        id="delayed-restart-keeps-the-standby",
    ),
    pytest.param(
        Case([NONE1], [c(NONE1, 1, 10), SB_NONE], [remove(SB_NONE, REASON_STANDBY_STALE)], standbys=True),
        id="condition-none-gets-no-standby",
    ),
    pytest.param(Case([GLOBAL], [c(GLOBAL, 1, 10)], [], standbys=True), id="global-gets-no-standby"),
    pytest.param(
        Case([WEB1], [spare(WEB1, 1, 20)], [start(WEB1, spare(WEB1, 1, 20), REASON_EMPTY)], standbys=True),
        id="a-slot-holding-only-its-standby-starts-it",
    ),
]


@pytest.mark.parametrize("case", STANDBY_CASES)
def test_plan_with_standbys(case: Case) -> None:
    actions, wake_at = run(case)
    assert actions == list(case.actions)
    assert wake_at == case.wake_at


@pytest.mark.parametrize("case", CASES)
def test_plan(case: Case) -> None:
    actions, wake_at = run(case)
    assert actions == list(case.actions)
    assert wake_at == case.wake_at


def test_the_table_is_thorough() -> None:
    assert len(CASES) >= 30


def test_planning_does_not_change_the_book() -> None:
    book = RestartBook()
    book.record_created(key(WEB, 1), labels.spec_hash(WEB), WEB.restart_policy, 900.0, 2)
    before = book.to_json()
    observed = [c(WEB, 1, 900, "exited"), c(WEB, 2, 5, "exited", stale=True), R3]
    plan(StackSpec(STACK, {"web": WEB}), {}, observed, book, NOW)
    assert book.to_json() == before


@pytest.mark.parametrize(
    ("slots", "busy", "replicas", "expected"),
    [
        pytest.param({1: [R1], 2: [R2]}, set(), 5, ([1, 2], []), id="under"),
        pytest.param({1: [R1], 2: [R2], 3: [R3]}, set(), 1, ([1], [2, 3]), id="highest-go"),
        pytest.param(
            {1: [NONE_X1], 2: [R2], 3: [R3]}, set(), 2, ([2, 3], [1]), id="non-running-go-first"
        ),
        pytest.param({1: [R1], 3: [R3]}, {2}, 2, ([1, 3], [2]), id="busy-empty-is-not-running"),
    ],
)
def test_choose_slots(slots, busy, replicas, expected) -> None:  # type: ignore[no-untyped-def]
    assert choose_slots(slots, busy, replicas) == expected


@pytest.mark.parametrize(
    ("occupied", "count", "expected"),
    [
        pytest.param([], 3, [1, 2, 3], id="empty"),
        pytest.param([2, 5], 3, [1, 3, 4], id="gaps-first"),
        pytest.param([1, 2], 0, [], id="none-wanted"),
        pytest.param([1, 2], -1, [], id="negative"),
    ],
)
def test_free_slots(occupied: list[int], count: int, expected: list[int]) -> None:
    assert free_slots(occupied, count) == expected


# --------------------------------------------------------------------------- plans carried out


class World:
    """A tiny stand-in for the engine and executor: carries out plans instantly."""

    def __init__(self) -> None:
        self.containers: dict[str, ContainerState] = {}
        self.clock = NOW
        self.book = RestartBook()

    def apply(self, stack: StackSpec, replicas: dict[str, int]) -> list[Action]:
        self.clock += 1
        actions = list(
            plan(stack, replicas, list(self.containers.values()), self.book, self.clock).actions
        )
        for action in actions:
            if isinstance(action, PrepareStandby):
                spec = stack.services[action.key.service]
                made = c(spec, action.key.slot, self.clock, "created", standby=True)
                self.containers[made.id] = made
            elif isinstance(action, CreateTask) and action.standby_id is not None:
                self.containers[action.standby_id] = replace(
                    self.containers[action.standby_id], status="running", started_at=self.clock
                )
            elif isinstance(action, CreateTask):
                made = c(stack.services[action.key.service], action.key.slot, self.clock)
                self.containers[made.id] = made
                spec = stack.services[action.key.service]
                self.book.record_created(
                    action.key, made.spec_hash, spec.restart_policy, self.clock, action.attempt
                )
            elif isinstance(action, RemoveContainer):
                del self.containers[action.container_id]
            else:
                old = self.containers[action.container_id]
                self.containers[old.id] = replace(
                    old, status="exited", exit_code=143, finished_at=self.clock
                )
        return actions

    def converge(self, stack: StackSpec, replicas: dict[str, int]) -> int:
        for passes in range(1, 50):
            if not self.apply(stack, replicas):
                return passes
        raise AssertionError("did not converge")

    def running(self, service: str) -> list[int]:
        return sorted(
            c.key.slot
            for c in self.containers.values()
            if c.key.service == service and c.status == "running"
        )


def test_plans_carried_out_converge_and_then_stay_quiet() -> None:
    world = World()
    stack = StackSpec(STACK, {"web": WEB, "db": DB})
    world.converge(stack, {"web": 3})
    assert world.running("web") == [1, 2, 3] and world.running("db") == [1]
    world.converge(stack, {"web": 6})
    assert world.running("web") == [1, 2, 3, 4, 5, 6]
    world.converge(stack, {"web": 2})
    assert world.running("web") == [1, 2]


def test_a_rolling_update_carried_out_replaces_every_slot() -> None:
    world = World()
    world.converge(StackSpec(STACK, {"web": WEB}), {})
    new = replace(WEB, command=("sleep", "60"))
    passes = world.converge(StackSpec(STACK, {"web": new}), {})
    live = [c for c in world.containers.values() if c.status == "running"]
    assert sorted(c.key.slot for c in live) == [1, 2, 3]
    assert {c.spec_hash for c in live} == {labels.spec_hash(new)}
    assert passes >= 3  # parallelism 1: one slot per pass


# --------------------------------------------------------------------------- notes for events


def test_a_restart_later_is_noted_with_its_time() -> None:
    web = service(replicas=1, restart_policy=RestartPolicy(delay=5.0))
    dead = c(web, 1, NOW - 2, "exited")  # exited at NOW - 1: replacement due at NOW + 4
    result = plan(StackSpec(STACK, {"web": web}), {"web": 1}, [dead], RestartBook(), NOW)
    assert result.actions == ()
    (note,) = result.notes
    assert (note.kind, note.key, note.container_id) == ("restart_scheduled", dead.key, dead.id)
    assert note.not_before == result.wake_at == NOW + 4


def test_a_standby_on_its_way_out_is_no_task_of_its_slot() -> None:
    """A gave-up slot's standby caught being removed (or dead after a failed removal) is not
    the slot's newest failure, nor a standby to start; a dead one is removed again."""
    web = service(replicas=1, restart_policy=RestartPolicy(condition="any", delay=0.0, max_attempts=1))
    book = RestartBook()
    first = c(web, 1, NOW - 10, "exited")
    again = c(web, 1, NOW - 5, "exited")
    book.record_created(first.key, labels.spec_hash(web), web.restart_policy, again.created_at, attempt=1)
    for status, removes in (("removing", []), ("dead", [REASON_STANDBY_STALE])):
        leaving = replace(spare(web, 1, NOW - 4), status=status)  # type: ignore[arg-type]
        assert leaving.is_standby
        result = plan(StackSpec(STACK, {"web": web}), {"web": 1}, [first, again, leaving], book, NOW)
        assert [(n.kind, n.container_id) for n in result.notes] == [("gave_up", again.id)]
        assert list(result.actions) == [remove(leaving, reason) for reason in removes]


def test_a_standby_that_ran_is_a_task_whatever_its_end() -> None:
    ran = replace(c(WEB1, 1, 10, "exited"), standby=True)
    assert not ran.is_standby
    assert not replace(ran, status="removing").is_standby
    assert not replace(spare(WEB1, 1, 20), error="exec failed").is_standby  # its start was refused


def test_a_delay_that_is_not_a_number_gives_up_with_a_note_instead_of_waiting_forever() -> None:
    web = service(replicas=1, restart_policy=RestartPolicy(delay=float("nan")))
    dead = c(web, 1, NOW - 2, "exited")
    result = plan(StackSpec(STACK, {"web": web}), {"web": 1}, [dead], RestartBook(), NOW)
    assert result.actions == () and result.wake_at is None
    (note,) = result.notes
    assert (note.kind, note.container_id) == ("gave_up", dead.id)
    assert "restart_policy.delay is nan" in note.reason


def test_a_wake_time_that_never_comes_is_not_asked_for() -> None:
    """An update_config delay of .inf holds the next batch for good: the plan asks for no
    wake-up at infinity (the loop's periodic resync still looks)."""
    new = service(replicas=2, update_config=UpdateConfig(parallelism=1, delay=float("inf")))
    first_batch_done = replace(updates.begin(None, new, NOW - 60), batch_open=True)
    replaced, stale = c(new, 1, NOW - 20), c(new, 2, NOW - 90, stale=True)
    result = plan(StackSpec(STACK, {"web": new}), {"web": 2}, [replaced, stale], RestartBook(), NOW,
                  update_status={"web": first_batch_done})
    assert result.updates["web"].next_batch_at == float("inf")
    assert not any(isinstance(a, CreateTask) for a in result.actions) and result.wake_at is None


def test_giving_up_is_noted_and_a_due_restart_is_not() -> None:
    web = service(replicas=1, restart_policy=RestartPolicy(condition="any", delay=0.0, max_attempts=1))
    book = RestartBook()
    first = c(web, 1, NOW - 10, "exited")
    again = c(web, 1, NOW - 5, "exited")
    book.record_created(first.key, labels.spec_hash(web), web.restart_policy, again.created_at, attempt=1)
    result = plan(StackSpec(STACK, {"web": web}), {"web": 1}, [first, again], book, NOW)
    assert [(n.kind, n.container_id) for n in result.notes] == [("gave_up", again.id)]
    fresh = plan(StackSpec(STACK, {"web": web}), {"web": 1}, [first], RestartBook(), NOW)
    assert fresh.notes == () and fresh.actions
