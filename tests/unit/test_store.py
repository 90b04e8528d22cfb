from __future__ import annotations

from pathlib import Path

from orchestrator.model import (
    Healthcheck,
    NetworkAttachment,
    NetworkSpec,
    PortSpec,
    RestartPolicy,
    ServiceSpec,
    StackSpec,
)
from orchestrator.store import StackRecord, Store


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
