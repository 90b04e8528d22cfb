"""What the Swarm watcher publishes for a relist (orchestrator/swarm/observed.py): one message per
change of a task's Swarm state, in Swarm's order, removed tasks told once, node and update
changes; nothing twice once `Known` holds it, also after a save and load."""

from __future__ import annotations

import json
from typing import Any

from orchestrator.cli import tables
from orchestrator.model.observed import TaskState
from orchestrator.swarm.observed import (
    SWARM_STATES,
    Known,
    global_slots,
    node_messages,
    node_seen,
    parse_time,
    service_ref,
    task_messages,
    task_seen,
    update_messages,
)

NAMESPACE = "com.docker.stack.namespace"
SERVICE = {"ID": "svc1", "Spec": {"Name": "shop_web", "Labels": {NAMESPACE: "shop"},
                                  "Mode": {"Replicated": {"Replicas": 2}}}}
NODE = {"ID": "n1", "CreatedAt": "2026-11-30T20:00:00Z", "Description": {"Hostname": "worker-1"},
        "Status": {"State": "ready"}, "Spec": {"Availability": "active", "Role": "worker"}}


def task(task_id: str, state: str, at: str, slot: int = 1, container: str = "", exit_code: int = 0,
         err: str = "") -> dict[str, Any]:
    return {"ID": task_id, "ServiceID": "svc1", "Slot": slot, "NodeID": "n1", "DesiredState": "running",
            "CreatedAt": "2026-11-30T21:00:00.000000001Z",
            "Spec": {"ContainerSpec": {"Image": "busybox:latest@sha256:abc"}},
            "Status": {"State": state, "Timestamp": at, "Err": err,
                       "ContainerStatus": {"ContainerID": container, "ExitCode": exit_code}}}


def seen(*tasks: dict[str, Any]) -> list[Any]:
    refs = {"svc1": service_ref(SERVICE, NAMESPACE)}
    nodes = {"n1": node_seen(NODE)}
    return [task_seen(t, refs, nodes, global_slots(nodes.values())) for t in tasks]


def test_every_swarm_state_maps_onto_one_of_ours() -> None:
    swarm = ["new", "pending", "assigned", "accepted", "preparing", "ready", "starting", "running", "complete",
             "failed", "shutdown", "rejected", "orphaned", "remove"]
    assert sorted(SWARM_STATES) == sorted(swarm)
    assert SWARM_STATES["ready"] is TaskState.CREATED and SWARM_STATES["orphaned"] is TaskState.FAILED


def test_swarm_nanosecond_times_are_read() -> None:
    assert parse_time("2026-11-30T21:00:00.123456789Z") == parse_time("2026-11-30T21:00:00.123456Z")
    assert parse_time("2026-11-30T21:00:00Z") + 0.5 == parse_time("2026-11-30T21:00:00.5Z")
    assert parse_time("") == parse_time("not a time") == 0.0


def test_a_task_is_told_once_per_swarm_state_in_swarms_order() -> None:
    known = Known()
    first = task_messages(known, seen(task("t2", "pending", "2026-11-30T21:00:02Z", slot=2),
                                      task("t1", "running", "2026-11-30T21:00:01Z", container="c" * 64)),
                          ["t1", "t2"])
    assert [(m.task_id, m.from_state, m.to_state, m.swarm_state, m.node) for m in first] == [
        ("t1", "new", "running", "running", "worker-1"), ("t2", "new", "new", "pending", "worker-1")]
    assert first[0].container_id == "c" * 64 and first[1].container_id is None
    again = task_messages(known, seen(task("t2", "pending", "2026-11-30T21:00:02Z", slot=2),
                                      task("t1", "running", "2026-11-30T21:00:01Z", container="c" * 64)),
                          ["t1", "t2"])
    assert again == []
    failed = task_messages(known, seen(task("t1", "failed", "2026-11-30T21:00:05Z", container="c" * 64,
                                            exit_code=137, err="task: non-zero exit (137)")), ["t1", "t2"])
    assert [(m.from_state, m.to_state, m.exit_code, m.reason) for m in failed] == [
        ("running", "failed", 137, "task: non-zero exit (137)")]


def test_a_task_gone_from_the_list_is_told_removed_once() -> None:
    known = Known()
    task_messages(known, seen(task("t1", "shutdown", "2026-11-30T21:00:01Z")), ["t1"])
    gone = task_messages(known, [], [])
    assert [(m.task_id, m.slot, m.from_state, m.to_state, m.swarm_state) for m in gone] == [
        ("t1", 1, "shutdown", "removed", "remove")]
    assert task_messages(known, [], []) == []


def test_a_task_of_a_service_not_listed_yet_is_not_told_removed() -> None:
    known = Known()
    task_messages(known, seen(task("t1", "running", "2026-11-30T21:00:01Z")), ["t1"])
    assert task_messages(known, [], ["t1"]) == []  # still listed, its service only not yet


def test_what_was_told_survives_a_save_and_load() -> None:
    known = Known()
    task_messages(known, seen(task("t1", "running", "2026-11-30T21:00:01Z")), ["t1"])
    node_messages(known, [node_seen(NODE)])
    loaded = Known.from_plain(json.loads(json.dumps(known.to_plain())))
    assert task_messages(loaded, seen(task("t1", "running", "2026-11-30T21:00:01Z")), ["t1"]) == []
    assert node_messages(loaded, [node_seen(NODE)]) == []
    assert Known.from_plain("garbage") == Known()


def test_node_and_update_changes() -> None:
    known = Known()
    assert [(m.node, m.node_state, m.availability) for m in node_messages(known, [node_seen(NODE)])] == [
        ("worker-1", "ready", "active")]
    down = {**NODE, "Status": {"State": "down", "Message": "heartbeat failure"}}
    assert [(m.node_state, m.reason) for m in node_messages(known, [node_seen(down)])] == [
        ("down", "heartbeat failure")]
    ref = service_ref(SERVICE, NAMESPACE)
    updating = {**SERVICE, "UpdateStatus": {"State": "updating", "StartedAt": "x"}}
    done = {**SERVICE, "UpdateStatus": {"State": "completed", "StartedAt": "x"}}
    assert [m.type for m in update_messages(known, [(ref, updating)])] == ["update.started"]
    assert update_messages(known, [(ref, updating)]) == []
    assert [(m.type, m.replicas) for m in update_messages(known, [(ref, done)])] == [("update.completed", 2)]


def test_a_service_of_no_stack_is_not_ours() -> None:
    assert service_ref({"ID": "x", "Spec": {"Name": "plain", "Labels": {}}}, NAMESPACE) is None
    assert service_ref({"ID": "x", "Spec": {"Name": "other_web", "Labels": {NAMESPACE: "shop"}}}, NAMESPACE) is None


def test_ps_has_a_node_column_only_on_swarm() -> None:
    row = {"stack": "shop", "service": "web", "slot": 1, "task_id": "t1", "image": "busybox",
           "desired_state": "running", "state": "new", "since": 100.0, "error": ""}
    assert "NODE" not in tables.tasks_table([row], now=160.0)
    swarm = tables.tasks_table([{**row, "node": "worker-1", "swarm_state": "pending"}], now=160.0)
    assert swarm.splitlines()[0].split()[3] == "NODE"
    assert "worker-1" in swarm and "Pending" in swarm
