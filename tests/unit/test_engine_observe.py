"""Engine list/inspect JSON → ContainerState, and the inspect cache, without an engine."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.engine.observe import (
    FactsCache,
    container_state,
    decimal,
    facts_from_inspect,
    health_from_status,
    parse_time,
    published_ports,
)
from orchestrator.labels import container_labels
from orchestrator.model.observed import SlotKey


def _entry(state: str = "running", status: str = "Up 2 seconds", **extra: Any) -> dict[str, Any]:
    return {
        "Id": "c" * 64,
        "Names": ["/s_web.1.abc"],
        "State": state,
        "Status": status,
        "Created": 100,
        "Labels": container_labels(SlotKey("s", "web", 1), "hash", "abc", 1_500_000_000_250_000_000),
        "Ports": [],
        **extra,
    }


def _inspect(status: str, exit_code: int = 0, **state: Any) -> dict[str, Any]:
    return {
        "State": {
            "Status": status, "ExitCode": exit_code, "OOMKilled": False, "Error": "",
            "StartedAt": "2024-05-01T10:00:00.123456789Z", "FinishedAt": "2024-05-01T10:00:05Z", **state,
        }
    }  # fmt: skip


@pytest.mark.parametrize(
    ("status", "health"),
    [
        pytest.param("Up 3 seconds (healthy)", "healthy", id="healthy"),
        pytest.param("Up 3 seconds (unhealthy)", "unhealthy", id="unhealthy"),
        pytest.param("Up 1 second (health: starting)", "starting", id="starting"),
        pytest.param("Up 3 minutes", None, id="no-healthcheck"),
        pytest.param("Exited (3) 2 seconds ago", None, id="exited"),
    ],
)
def test_health_from_the_list_status_text(status: str, health: str | None) -> None:
    assert health_from_status(status) == health


def test_times_parse_nanoseconds_and_the_zero_time_is_never() -> None:
    assert parse_time("2024-05-01T10:00:00.123456789Z") == pytest.approx(1714557600.123456)
    assert parse_time("2024-05-01T12:00:00+02:00") == 1714557600.0
    assert parse_time("0001-01-01T00:00:00Z") is None
    assert parse_time(None) is None


def test_published_ports_first_binding_wins_and_unpublished_are_skipped() -> None:
    ports = [
        {"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 49153, "Type": "tcp"},
        {"IP": "::1", "PrivatePort": 80, "PublicPort": 49154, "Type": "tcp"},
        {"PrivatePort": 9000, "Type": "tcp"},
        {"IP": "127.0.0.1", "PrivatePort": 53, "PublicPort": 5353, "Type": "udp"},
    ]
    assert published_ports(ports) == {"80/tcp": 49153, "53/udp": 5353}


def test_running_container_from_the_list_alone() -> None:
    entry = _entry(status="Up 1 second (unhealthy)", Ports=[{"PrivatePort": 80, "PublicPort": 3, "Type": "tcp"}])
    state = container_state(entry, None)
    assert state is not None
    assert (state.key, state.name, state.spec_hash, state.task_id) == (SlotKey("s", "web", 1), "s_web.1.abc", "hash", "abc")
    assert state.created_at == 1_500_000_000.25  # from our label, not the list's whole seconds
    assert (state.status, state.health, state.ports) == ("running", "unhealthy", {"80/tcp": 3})


def test_exited_container_takes_its_facts_from_inspect() -> None:
    facts = facts_from_inspect(_inspect("exited", 3, OOMKilled=True, Error="boom"))
    state = container_state(_entry("exited", "Exited (3) 1 second ago"), facts)
    assert state is not None
    assert (state.exit_code, state.oom_killed, state.error) == (3, True, "boom")
    assert state.started_at == pytest.approx(1714557600.123456)
    assert state.finished_at == 1714557605.0


def test_an_inspect_newer_than_the_list_wins() -> None:
    # The engine emits `die` before its list stops saying "running".
    facts = facts_from_inspect(_inspect("exited", 1))
    state = container_state(_entry("running", Ports=[{"PrivatePort": 80, "PublicPort": 3}]), facts)
    assert state is not None
    assert (state.status, state.exit_code, state.ports) == ("exited", 1, {})


def test_a_running_inspect_has_no_exit_code() -> None:
    facts = facts_from_inspect(_inspect("running", 0, Health={"Status": "healthy"}))
    assert (facts.exit_code, facts.finished_at, facts.health) == (None, None, "healthy")


def test_containers_without_our_labels_are_skipped() -> None:
    assert container_state(_entry(Labels={"other": "x"}), None) is None


@pytest.mark.parametrize("slot", ["²", "", "0", "-1", "1" * 30, " 1"])
def test_containers_whose_slot_label_is_no_slot_number_are_skipped(slot: str) -> None:
    labels = {**_entry()["Labels"], "orchestrator.slot": slot}
    assert container_state(_entry(Labels=labels), None) is None


def test_a_created_ns_label_that_is_no_number_falls_back_to_the_engine_time() -> None:
    labels = {**_entry()["Labels"], "orchestrator.created-ns": "١٢٣"}  # Arabic-Indic digits
    state = container_state(_entry(Labels=labels), None)
    assert state is not None and state.created_at == 100.0


@pytest.mark.parametrize(("text", "value"), [("0", 0), ("137", 137), ("-1", -1), ("²", None),
                                             ("", None), ("1e3", None), ("9" * 20, None)])
def test_decimal_reads_ascii_digits_only(text: str, value: int | None) -> None:
    assert decimal(text) == value


def test_cache_holds_facts_while_the_state_stays() -> None:
    cache = FactsCache()
    exited, created = _entry("exited"), _entry("created")
    assert cache.needs_inspect(exited)
    assert cache.needs_inspect(created)  # its start may have failed: only inspect tells
    cache.store(exited["Id"], facts_from_inspect(_inspect("exited", 2)))
    assert not cache.needs_inspect(exited)
    assert cache.needs_inspect(_entry("running"))  # started again: stale
    cache.forget(exited["Id"])
    assert cache.needs_inspect(exited)
    cache.store(exited["Id"], facts_from_inspect(_inspect("exited", 2)))
    cache.keep_only(set())
    assert cache.needs_inspect(exited)


def test_a_die_event_is_believed_while_the_list_still_says_running() -> None:
    """The engine sends `die` before its list changes, and an inspect would wait for its clean-up."""
    cache = FactsCache()
    running = _entry("running")
    cache.store(running["Id"], facts_from_inspect(_inspect("running")))
    cache.forget(running["Id"])  # another event came first (kill, health_status…)
    cache.died(running["Id"], 137, at=1714557610.5)
    assert not cache.needs_inspect(running)
    state = container_state(running, cache.lookup(running))
    assert state is not None
    assert (state.status, state.exit_code, state.finished_at) == ("exited", 137, 1714557610.5)
    assert state.started_at == pytest.approx(1714557600.123456)  # kept from the earlier inspect
    assert not state.alive


def test_the_list_catching_up_with_a_die_of_unknown_start_asks_for_an_inspect() -> None:
    cache = FactsCache()
    exited = _entry("exited", "Exited (137) 1 second ago")
    cache.died(exited["Id"], 137, at=1.0, oom_killed=True)
    assert cache.needs_inspect(exited)  # no start seen: the engine's own facts replace the event's
    cache.store(exited["Id"], facts_from_inspect(_inspect("exited", 137)))
    assert not cache.needs_inspect(exited)


def test_a_die_after_a_seen_start_needs_no_inspect_once_the_list_agrees() -> None:
    """The replacement's pass lists the dead replica's slot: the event told everything an inspect
    would, so the critical path has no inspect (issue 18)."""
    cache = FactsCache()
    exited = _entry("exited", "Exited (137) 1 second ago")
    cache.started(exited["Id"], at=100.0)
    cache.died(exited["Id"], 137, at=105.5, oom_killed=True)
    assert not cache.needs_inspect(exited)
    state = container_state(exited, cache.lookup(exited))
    assert state is not None
    assert (state.status, state.exit_code, state.started_at, state.finished_at, state.oom_killed) == (
        "exited", 137, 100.0, 105.5, True)
    assert not cache.needs_inspect(exited)  # confirmed: it stays so
    assert cache.needs_inspect(_entry("running"))  # started again since: stale
    unknown = _entry("exited")
    cache.started(unknown["Id"], at=100.0)
    cache.died(unknown["Id"], None, at=101.0)  # a `die` without its exit code
    assert cache.needs_inspect(unknown)
    dead = _entry("dead")
    cache.started(dead["Id"], at=100.0)
    cache.died(dead["Id"], 1, at=101.0)
    assert cache.needs_inspect(dead)  # not what the event said: the engine's facts decide


def test_our_start_answered_saves_the_inspect_whichever_of_answer_and_event_comes_first() -> None:
    cache = FactsCache()
    running = _entry("running")
    cache.created(running["Id"])
    cache.start_answered(running["Id"], at=200.0)  # the answer before the event
    assert not cache.needs_inspect(running)
    assert cache.lookup(running).started_at == 200.0  # type: ignore[union-attr]
    cache.started(running["Id"], at=199.9)  # then the event: the engine's own time wins
    cache.start_answered(running["Id"], at=200.5)  # an answer after the event changes nothing
    assert cache.lookup(running).started_at == 199.9  # type: ignore[union-attr]
    cache.died(running["Id"], 1, at=201.0)  # it died before our answer came: the death stands
    cache.start_answered(running["Id"], at=201.5)
    assert cache.lookup(_entry("exited")).status == "exited"  # type: ignore[union-attr]


def test_the_exit_of_a_stopped_container_is_its_die_events() -> None:
    """Our stop's exit code comes from the `die` seen before its answer: no inspect."""
    cache = FactsCache()
    running = _entry("running")
    assert cache.exit_of(running["Id"]) is None  # nothing seen: the stop inspects
    cache.started(running["Id"], at=100.0)
    assert cache.exit_of(running["Id"]) is None  # running
    cache.died(running["Id"], None, at=101.0)
    assert cache.exit_of(running["Id"]) is None  # a death without its code
    cache.died(running["Id"], 143, at=101.0)
    assert cache.exit_of(running["Id"]).exit_code == 143  # type: ignore[union-attr]


def test_a_destroyed_container_leaves_nothing_behind() -> None:
    cache = FactsCache()
    running = _entry("running")
    cache.store(running["Id"], facts_from_inspect(_inspect("running")))
    cache.forget()
    cache.drop(running["Id"])
    cache.died(running["Id"], 1, at=2.0)
    assert cache.lookup(running) is not None and cache.lookup(running).started_at is None  # type: ignore[union-attr]


def test_a_start_event_saves_the_inspect_of_a_running_container() -> None:
    cache = FactsCache()
    running = _entry("running", "Up 1 second (health: starting)")
    cache.started(running["Id"], at=1714557600.5)
    assert not cache.needs_inspect(running)
    state = container_state(running, cache.lookup(running))
    assert state is not None
    assert (state.status, state.started_at, state.health, state.exit_code) == ("running", 1714557600.5, "starting", None)
    assert cache.needs_inspect(_entry("exited"))  # it stopped and the die event was missed


def test_our_own_create_saves_the_inspect_of_a_created_container_until_its_start_fails() -> None:
    """An inspect waits for the container's lock, which a start in flight holds: a pass listing
    a converging stack must not inspect the creates whose starts are in flight (issue 18)."""
    cache = FactsCache()
    created = _entry("created")
    cache.created(created["Id"])
    assert not cache.needs_inspect(created)
    state = container_state(created, cache.lookup(created))
    assert state is not None
    assert (state.status, state.exit_code, state.started_at, state.error) == ("created", None, None, "")
    assert cache.needs_inspect(_entry("running"))  # started, and the start event not seen yet
    cache.started(created["Id"], at=1714557600.5)
    assert not cache.needs_inspect(created)  # a list made before the start: the event is newer
    cache.forget(created["Id"])  # the start failed: only an inspect shows the engine's error
    assert cache.needs_inspect(created)
