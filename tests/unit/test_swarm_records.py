"""swarm/records.py: the stack record kept as a Swarm config, pure parts."""

from __future__ import annotations

import base64
import json

from orchestrator.labels import LABEL_SWARM_NAMESPACE
from orchestrator.loop.store import StackRecord
from orchestrator.model.spec import FileObjectSpec, ServiceSpec, StackSpec
from orchestrator.swarm import records
from orchestrator.swarm.records import LABEL_STACK_RECORD, newest_records, record_config


def _record(stack: str = "shop", image: str = "web:1", secret: str | None = "s3cret") -> StackRecord:
    spec = StackSpec(
        name=stack,
        services={"web": ServiceSpec(name="web", image=image, replicas=2, command=("serve", "--port", "80"))},
        secrets={} if secret is None else {"token": FileObjectSpec(name="token", content=secret, environment="TOKEN")},
    )
    return StackRecord(spec=spec, deployed_at=1700000000.0)


def _listed(body: dict[str, object], config_id: str, created: str) -> dict[str, object]:
    return {"ID": config_id, "CreatedAt": created, "Spec": body}


def test_a_record_round_trips_through_its_config_without_the_secrets_content() -> None:
    record = _record()
    body = record_config(record)
    assert body is not None
    assert body["Labels"] == {LABEL_SWARM_NAMESPACE: "shop", "orchestrator.stack": "shop", LABEL_STACK_RECORD: "shop"}
    assert "s3cret" not in base64.b64decode(body["Data"]).decode()
    found = newest_records([_listed(body, "c1", "2026-12-01T02:00:00.123456789Z")])
    config_id, kept = found["shop"]
    assert config_id == "c1"
    assert kept.spec.services == record.spec.services
    assert kept.spec.secrets["token"].content is None and kept.spec.secrets["token"].environment == "TOKEN"


def test_the_name_is_a_valid_swarm_name_that_changes_with_the_content() -> None:
    first, second = record_config(_record(image="web:1")), record_config(_record(image="web:2"))
    assert first is not None and second is not None
    assert first["Name"] != second["Name"]
    assert first["Name"].startswith("orchestrator-stack-") and len(first["Name"]) <= 64
    assert record_config(_record(stack="x" * 60)) is not None  # the stack's name is hashed


def test_the_newest_readable_record_of_each_stack_wins() -> None:
    old, new, other = (record_config(r) for r in (_record(image="web:1"), _record(image="web:2"),
                                                  _record(stack="blog", secret=None)))
    assert old is not None and new is not None and other is not None
    damaged = {**new, "Data": base64.b64encode(b"{not json").decode()}
    wrong_layout = {**new, "Data": base64.b64encode(json.dumps({"spec": 3}).encode()).decode()}
    listed = [
        _listed(new, "new", "2026-12-01T02:00:02Z"),
        _listed(old, "old", "2026-12-01T02:00:01Z"),
        _listed(damaged, "damaged", "2026-12-01T02:00:09Z"),
        _listed(wrong_layout, "wrong", "2026-12-01T02:00:09Z"),
        _listed(other, "blog", "2026-12-01T02:00:00Z"),
        {"ID": "unlabelled", "Spec": {"Name": "x", "Data": new["Data"]}},
    ]
    found = newest_records(listed)
    assert {stack: config_id for stack, (config_id, _) in found.items()} == {"shop": "new", "blog": "blog"}
    assert found["shop"][1].spec.services["web"].image == "web:2"


def test_a_record_over_swarms_size_is_not_kept(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(records.MAX_DATA, "configs", 100)
    assert record_config(_record()) is None
