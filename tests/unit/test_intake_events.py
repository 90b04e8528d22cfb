"""Engine events → ContainerEvent, replay de-duplication, the `since` format: no engine."""

from __future__ import annotations

import pytest

from orchestrator.backend import EngineEvent
from orchestrator.engine.events import parse_event, since_param
from orchestrator.loop.intake import SeenEvents, container_event
from orchestrator.labels import LABEL_SERVICE, LABEL_SLOT, LABEL_STACK

OURS = {LABEL_STACK: "s", LABEL_SERVICE: "web", LABEL_SLOT: "3"}


def _event(action: str, time_ns: int = 1, actor: str = "c1", **attributes: str) -> EngineEvent:
    return EngineEvent("container", action, actor, time_ns, {**OURS, **attributes})


@pytest.mark.parametrize(
    ("action", "normalised", "health"),
    [
        pytest.param("health_status: unhealthy", "health_status", "unhealthy", id="unhealthy"),
        pytest.param("health_status: healthy", "health_status", "healthy", id="healthy"),
        pytest.param("start", "start", None, id="plain"),
    ],
)
def test_health_actions_lose_their_suffix(action: str, normalised: str, health: str | None) -> None:
    event = container_event(_event(action))
    assert (event.action, event.health) == (normalised, health)


def test_die_carries_exit_code_and_slot_identity() -> None:
    event = container_event(_event("die", time_ns=7, exitCode="137"))
    assert (event.stack, event.service, event.slot, event.container_id) == ("s", "web", 3, "c1")
    assert (event.exit_code, event.time_ns) == (137, 7)
    assert container_event(_event("start")).exit_code is None


def test_labels_missing_give_empty_identity() -> None:
    event = container_event(EngineEvent("container", "start", "c1", 1, {LABEL_STACK: "s"}))
    assert (event.service, event.slot) == ("", None)


def test_replayed_events_are_seen_once_and_memory_is_bounded() -> None:
    seen = SeenEvents(capacity=2)
    first, other = _event("die", 5), _event("die", 5, actor="c2")
    assert seen.first_time(first) and not seen.first_time(first)
    assert seen.first_time(other) and seen.first_time(_event("start", 6))
    assert seen.first_time(first)  # evicted: the oldest key went first


def test_since_is_seconds_dot_nanoseconds() -> None:
    assert since_param(1_700_000_000_000_000_042) == "1700000000.000000042"


def test_parse_event_prefers_time_nano() -> None:
    raw = {"Type": "container", "Action": "die", "time": 2, "timeNano": 2_000_000_005,
           "Actor": {"ID": "c1", "Attributes": {"exitCode": "0"}}}  # fmt: skip
    assert parse_event(raw) == EngineEvent("container", "die", "c1", 2_000_000_005, {"exitCode": "0"})
    assert parse_event({"Action": "x", "time": 3}).time_ns == 3_000_000_000
