"""The cost of one event does not grow with the stack (issue 18): after a full listing, a pass
that follows a death relists that slot only (one engine call, its few containers), plans from
the whole view and reports only what changed; the periodic resync, a deploy or an engine
reconnect list everything again. Against a stand-in engine that counts its list calls."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from orchestrator import labels
from orchestrator.model import ContainerState, RestartPolicy, ServiceSpec, SlotKey, StackSpec
from orchestrator.reconciler import Reconciler
from orchestrator.settings import Settings
from orchestrator.store import StackRecord, Store
from orchestrator.tracker import Transition

REPLICAS = 1000
# condition none: nothing is restarted and no standbys are made, so no pass plans an action
WEB = ServiceSpec(name="web", image="orchestrator-test/busybox", replicas=REPLICAS,
                  restart_policy=RestartPolicy(condition="none"))
HASH = labels.spec_hash(WEB)


class CountingEngine:
    """The stack's containers in memory; every list call is recorded with what it asked."""

    def __init__(self) -> None:
        self.containers: dict[str, ContainerState] = {}
        self.lists: list[SlotKey | None] = []
        self.returned: list[int] = []

    async def list_containers(self, stack: str | None = None, slot: SlotKey | None = None) -> list[ContainerState]:
        self.lists.append(slot)
        found = [c for c in self.containers.values() if c.key.stack == stack and (slot is None or c.key == slot)]
        self.returned.append(len(found))
        return found


def running(slot: int) -> ContainerState:
    return ContainerState(f"c{slot}", f"app_web.{slot}", SlotKey("app", "web", slot), HASH, f"t{slot}",
                          float(slot), "running", started_at=1.0)


async def test_a_death_in_a_thousand_replicas_relists_its_slot_only(tmp_path: Path) -> None:
    engine = CountingEngine()
    engine.containers = {c.id: c for c in map(running, range(1, REPLICAS + 1))}
    transitions: list[Transition] = []
    reconciler = Reconciler(engine, Store(tmp_path), Settings.from_env({}, state_dir=str(tmp_path)),  # type: ignore[arg-type]
                            emit=lambda _e: None)
    reconciler.tracker._on_transition = transitions.append  # type: ignore[method-assign]
    reconciler.records["app"] = StackRecord(StackSpec("app", {"web": WEB}))
    await reconciler.reconcile("app")
    assert engine.lists == [None] and engine.returned == [REPLICAS]  # the first pass: everything
    assert len(transitions) == REPLICAS  # each task seen running once

    engine.lists.clear(), engine.returned.clear(), transitions.clear()
    key = SlotKey("app", "web", 7)
    engine.containers["c7"] = replace(engine.containers["c7"], status="exited", exit_code=137, finished_at=2.0)
    reconciler.mark_slot_dirty(key)  # as the intake does for the `die` event
    await reconciler.reconcile("app")
    assert engine.lists == [key] and engine.returned == [1]
    assert [(t.task_id, t.to_state.value) for t in transitions] == [("t7", "failed")]
    assert len(reconciler.observed["app"]) == REPLICAS  # the view is still the whole stack

    engine.lists.clear(), transitions.clear()
    del engine.containers["c9"]  # `docker rm -f` by hand: its `destroy` event names slot 9
    reconciler.mark_slot_dirty(SlotKey("app", "web", 9))
    reconciler.mark_slot_dirty(SlotKey("app", "web", 11))  # two slots before one pass: a call each
    await reconciler.reconcile("app")
    assert sorted(k.slot for k in engine.lists if k) == [9, 11] and len(engine.lists) == 2
    # (its empty slot is then filled, which the stand-in refuses: not what this test is about)
    assert [t.to_state.value for t in transitions if t.task_id == "t9"] == ["failed", "removed"]

    engine.lists.clear()
    reconciler.mark_dirty("app")  # a deploy, a scale, a resync, a reconnect: the whole stack
    await reconciler.reconcile("app")
    assert engine.lists == [None]
    assert len(reconciler.observed["app"]) == REPLICAS - 1
