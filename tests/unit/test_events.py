"""The message every builder makes is valid under the shipped JSON Schema, and the schema is strict
enough to catch a message that lacks what its type needs."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from orchestrator.publishing import events
from orchestrator.publishing.events import EVENT_TYPES, Event
from orchestrator.model.observed import SlotKey, TaskState

KEY = SlotKey("shop", "web", 2)
CONTAINER = "0123456789abcdef" * 4
TIME = 1714564800.1234  # 2024-05-01T12:00:00.123Z

EXAMPLES = {
    "stack.deployed": events.stack_deployed("shop"),
    "stack.removed": events.stack_removed("shop", reason="orchestrator rm"),
    "service.scaled": events.service_scaled("shop", "web", replicas=3, running=1),
    "service.converged": events.service_converged("shop", "web", replicas=3),
    "service.degraded": events.service_degraded("shop", "web", 3, 2, "slot 2 failed: exit 1"),
    "service.port_unavailable": events.service_port_unavailable(
        "shop", "web", "cannot listen on 0.0.0.0:8080/tcp: address already in use; not published, retrying"
    ),
    "service.port_published": events.service_port_published(
        "shop", "web", "listening on 0.0.0.0:8080/tcp again after 3 failed attempts"
    ),
    "task.state": events.task_state(KEY, CONTAINER, "k3j9", TaskState.RUNNING, TaskState.FAILED, 1, "exit 1"),
    "task.restart_scheduled": events.task_restart_scheduled(KEY, 2.5, "on-failure", exit_code=1),
    "task.gave_up": events.task_gave_up(KEY, "3 attempts within 60s", exit_code=1),
    "task.unhealthy": events.task_unhealthy(KEY, CONTAINER, "k3j9", "healthcheck failed 3 times"),
    "update.started": events.update_started("shop", "web", 3, reason="spec changed"),
    "update.completed": events.update_completed("shop", "web", 3),
    "update.paused": events.update_paused("shop", "web", "slot 1 failed during monitor"),
    "update.rollback_started": events.update_rollback_started("shop", "web", 3, "2 of 3 updated tasks failed"),
    "update.rolled_back": events.update_rolled_back("shop", "web", "failure ratio 0.5 > 0"),
    "engine.disconnected": events.engine_disconnected("event stream closed"),
    "engine.reconnected": events.engine_reconnected(),
    "events.dropped": events.events_dropped(42),
}


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = events.load_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_there_is_an_example_of_every_type() -> None:
    assert sorted(EXAMPLES) == sorted(EVENT_TYPES)
    assert all(event.type == name for name, event in EXAMPLES.items())


@pytest.mark.parametrize("event", [pytest.param(e, id=name) for name, e in EXAMPLES.items()])
def test_every_builder_makes_a_valid_message(event: Event, validator: jsonschema.Draft202012Validator) -> None:
    message = json.loads(event.to_json(seq=7, time=TIME))
    validator.validate(message)
    assert (message["v"], message["seq"], message["type"]) == (1, 7, event.type)


def test_the_wire_form_names_task_states_from_and_to_and_omits_what_is_unset() -> None:
    event = events.task_state(KEY, None, "k3j9", TaskState.NEW, TaskState.CREATED)
    assert event.message(seq=1, time=TIME) == {
        "v": 1, "seq": 1, "time": "2024-05-01T12:00:00.123Z", "type": "task.state",
        "stack": "shop", "service": "web", "slot": 2, "task_id": "k3j9", "from": "new", "to": "created",
    }  # fmt: skip


def test_time_is_utc_with_milliseconds() -> None:
    assert events.format_time(0) == "1970-01-01T00:00:00.000Z"
    assert events.format_time(1714564800.9999) == "2024-05-01T12:00:00.999Z"


def _without(message: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in message.items() if k != key}


@pytest.mark.parametrize(
    ("name", "missing"),
    [
        pytest.param("task.state", "to", id="task.state-without-to"),
        pytest.param("task.state", "slot", id="task.state-without-slot"),
        pytest.param("task.restart_scheduled", "delay_s", id="restart-without-delay"),
        pytest.param("service.degraded", "reason", id="degraded-without-reason"),
        pytest.param("events.dropped", "dropped", id="dropped-without-count"),
        pytest.param("stack.deployed", "seq", id="without-seq"),
    ],
)
def test_the_schema_rejects_a_message_missing_what_its_type_needs(
    name: str, missing: str, validator: jsonschema.Draft202012Validator
) -> None:
    message = EXAMPLES[name].message(seq=1, time=TIME)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(_without(message, missing))


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"type": "task.exploded"}, id="unknown-type"),
        pytest.param({"to": "zombie"}, id="unknown-task-state"),
        pytest.param({"time": "2024-05-01 12:00:00"}, id="time-not-rfc3339"),
        pytest.param({"v": 2}, id="other-version"),
        pytest.param({"slot": None}, id="null-instead-of-absent"),
        pytest.param({"colour": "red"}, id="unknown-field"),
    ],
)
def test_the_schema_rejects_malformed_messages(change: dict[str, Any], validator: jsonschema.Draft202012Validator) -> None:
    message = EXAMPLES["task.state"].message(seq=1, time=TIME) | change
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(message)


def test_docs_explain_every_type_with_a_valid_example(validator: jsonschema.Draft202012Validator) -> None:
    doc = (Path(__file__).parents[2] / "docs" / "events.md").read_text()
    examples = dict(re.findall(r"^### `([a-z_.]+)`\n.*?```json\n(.*?)\n```", doc, flags=re.M | re.S))
    assert sorted(examples) == sorted(EVENT_TYPES)
    for name, text in examples.items():
        message = json.loads(text)
        validator.validate(message)
        assert message["type"] == name
        assert message == EXAMPLES[name].message(seq=message["seq"], time=message_time(message))


def message_time(message: dict[str, Any]) -> float:
    return datetime.fromisoformat(message["time"]).timestamp()
