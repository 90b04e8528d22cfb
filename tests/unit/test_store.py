from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from structlog.testing import capture_logs

from orchestrator.model.spec import (
    Healthcheck,
    NetworkAttachment,
    NetworkSpec,
    PortSpec,
    RestartPolicy,
    ServiceSpec,
    StackSpec,
)
from orchestrator.loop.progress import BOOK_DOCUMENT, TRACKER_DOCUMENT, load_book
from orchestrator.planning.restarts import RestartBook
from orchestrator.planning.replica_limits import saved_stack_over_limits
from orchestrator.settings import Settings
from orchestrator.loop.store import StackRecord, Store
from orchestrator.loop.tracker import TaskTracker


def spec() -> StackSpec:
    web = ServiceSpec(
        name="web", image="img", replicas=5, command=("a", "b"), environment={"A": "1", "B": None},
        ports=(PortSpec(target=80, published=4000),), networks=(NetworkAttachment("webnet", ("w",)),),
        healthcheck=Healthcheck(test=("CMD", "true"), interval=1.0),
        restart_policy=RestartPolicy(condition="on-failure", max_attempts=3, window=60.0),
    )
    cache = ServiceSpec(name="cache", image="redis", mode="global")
    return StackSpec(name="demo", services={"web": web, "cache": cache},
                     networks={"webnet": NetworkSpec("webnet", "demo_webnet")}, warnings=("w1",))


def test_record_survives_a_round_trip_through_disk(tmp_path: Path) -> None:
    store = Store(tmp_path)
    record = StackRecord(spec(), scale={"web": 2}, generation=3, deployed_at=12.5)
    store.save_stack(record)
    assert Store(tmp_path).load_stacks() == {"demo": record}
    assert not list((tmp_path / "stacks").glob(".*")), "temp files left behind"


def test_effective_replicas_apply_scale_and_global_mode() -> None:
    assert StackRecord(spec(), scale={"web": 2}).replicas() == {"web": 2, "cache": 1}
    assert StackRecord(spec()).replicas() == {"web": 5, "cache": 1}


def test_delete_and_documents(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save_stack(StackRecord(spec()))
    store.delete_stack("demo")
    store.delete_stack("demo")  # idempotent
    assert store.load_stacks() == {}
    assert store.load_document("restarts.json") is None
    store.save_document("restarts.json", {"a": [1, 2]})
    assert store.load_document("restarts.json") == {"a": [1, 2]}


# ----------------------------------------------------------------- unreadable state never stops the daemon


def set_aside_lines(logs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for e in logs if e["event"] == "state_file_set_aside"]


def aside(directory: Path, name: str) -> list[Path]:
    return sorted(directory.glob(f"{name}.corrupt-*"))


def test_a_stack_record_that_is_not_json_is_set_aside_and_the_others_load(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save_stack(StackRecord(spec()))
    (tmp_path / "stacks" / "broken.json").write_text('{"spec": {"name": "broken", ')
    with capture_logs() as logs:
        records = Store(tmp_path).load_stacks()
    assert list(records) == ["demo"]
    (moved,) = aside(tmp_path / "stacks", "broken.json")
    assert moved.read_text() == '{"spec": {"name": "broken", ', "kept for a post-mortem"
    assert not (tmp_path / "stacks" / "broken.json").exists()
    (line,) = set_aside_lines(logs)
    assert line["log_level"] == "error"
    assert line["path"] == str(tmp_path / "stacks" / "broken.json")
    assert line["moved_to"] == str(moved)
    assert line["reason"].startswith("not JSON: ") and "line 1" in line["reason"]
    assert Store(tmp_path).load_stacks() == records, "a second start finds it gone: no new line"


def test_a_record_of_the_wrong_shape_is_set_aside_without_quoting_its_values(tmp_path: Path) -> None:
    plain = StackRecord(replace(spec(), name="shop")).to_plain()
    plain["spec"]["services"]["web"]["environment"] = {"PASSWORD": 12345678}  # not a string
    (tmp_path / "stacks").mkdir()
    (tmp_path / "stacks" / "shop.json").write_text(json.dumps(plain))
    with capture_logs() as logs:
        assert Store(tmp_path).load_stacks() == {}
    (line,) = set_aside_lines(logs)
    assert "spec.services" in line["reason"] and "12345678" not in json.dumps(logs)
    assert aside(tmp_path / "stacks", "shop.json")


def test_a_record_under_another_stacks_name_is_set_aside(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save_stack(StackRecord(spec()))
    (tmp_path / "stacks" / "demo.json").rename(tmp_path / "stacks" / "other.json")
    with capture_logs() as logs:
        assert Store(tmp_path).load_stacks() == {}
    assert "holds stack 'demo', not 'other'" in set_aside_lines(logs)[0]["reason"]


def test_a_record_the_daemon_refuses_is_set_aside_with_the_reason(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save_stack(StackRecord(spec(), scale={"web": 10**9}))
    refuse = lambda record: saved_stack_over_limits(  # noqa: E731
        record.replicas(), per_service=10_000, services=1000)
    with capture_logs() as logs:
        assert Store(tmp_path).load_stacks(refuse) == {}
    assert "1000000000 replicas, over the limit of 10000" in set_aside_lines(logs)[0]["reason"]
    assert aside(tmp_path / "stacks", "demo.json")


def test_a_state_file_over_the_size_bound_is_set_aside_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("orchestrator.loop.store.MAX_STATE_FILE_BYTES", 64)
    (tmp_path / BOOK_DOCUMENT).write_text(json.dumps({"padding": "x" * 100}))
    with capture_logs() as logs:
        assert Store(tmp_path).load_document(BOOK_DOCUMENT) is None
    assert "over 64 bytes" in set_aside_lines(logs)[0]["reason"]


def test_an_unreadable_restart_book_is_set_aside_and_the_book_starts_empty(tmp_path: Path) -> None:
    (tmp_path / BOOK_DOCUMENT).write_bytes(b"\xff\xfe not json")
    with capture_logs() as logs:
        book = load_book(Store(tmp_path), Settings(backoff_base=3.0))
    assert book.to_json() == RestartBook().to_json() and book.backoff_base == 3.0
    assert aside(tmp_path, BOOK_DOCUMENT) and not (tmp_path / BOOK_DOCUMENT).exists()
    assert set_aside_lines(logs)[0]["path"] == str(tmp_path / BOOK_DOCUMENT)


def test_a_restart_book_of_another_version_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / BOOK_DOCUMENT).write_text(json.dumps({"version": 99, "slots": []}))
    with capture_logs() as logs:
        assert load_book(Store(tmp_path), Settings()).to_json() == RestartBook().to_json()
    assert "ValueError" in set_aside_lines(logs)[0]["reason"]


def test_a_damaged_task_document_loads_nothing_and_is_set_aside(tmp_path: Path) -> None:
    good = {"stack": "s", "service": "web", "slot": 1, "state": "running", "container_id": "c1"}
    bad = {"stack": "s", "service": "web", "slot": "x", "state": "running", "container_id": "c2"}
    (tmp_path / TRACKER_DOCUMENT).write_text(json.dumps({"tasks": {"t1": good, "t2": bad}}))
    tracker = TaskTracker(lambda _t: None)
    with capture_logs() as logs:
        Store(tmp_path).load_document(TRACKER_DOCUMENT, tracker.load_json)
    assert not tracker.knows("t1"), "all or nothing: no half-loaded tracker"
    assert aside(tmp_path, TRACKER_DOCUMENT) and set_aside_lines(logs)


def test_a_state_file_that_cannot_be_read_is_set_aside(tmp_path: Path) -> None:
    (tmp_path / TRACKER_DOCUMENT).mkdir()  # reading it fails (EISDIR), as a disk error would
    with capture_logs() as logs:
        assert Store(tmp_path).load_document(TRACKER_DOCUMENT) is None
    assert "cannot be read" in set_aside_lines(logs)[0]["reason"]
    assert aside(tmp_path, TRACKER_DOCUMENT)
