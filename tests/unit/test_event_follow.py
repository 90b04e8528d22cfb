from __future__ import annotations

import socket

import pytest

from orchestrator.publishing import events
from orchestrator.cli.main import build_parser, main
from orchestrator.cli.event_follow import format_line, redis_target
from orchestrator.model.observed import SlotKey, TaskState

TIME = 1714564800.5


@pytest.mark.parametrize(
    ("event", "line"),
    [
        pytest.param(
            events.task_state(SlotKey("shop", "web", 2), "0123456789abcdef", "k3", TaskState.RUNNING,
                              TaskState.FAILED, exit_code=137, reason="OOM killed"),
            "9 2024-05-01T12:00:00.500Z task.state shop/web.2 running→failed 0123456789ab exit=137 OOM killed",
            id="task-state",
        ),
        pytest.param(
            events.task_restart_scheduled(SlotKey("shop", "web", 2), 2.5, "on-failure"),
            "9 2024-05-01T12:00:00.500Z task.restart_scheduled shop/web.2 delay=2.5s on-failure",
            id="restart",
        ),
        pytest.param(
            events.service_degraded("shop", "web", 3, 1, "2 slots failed"),
            "9 2024-05-01T12:00:00.500Z service.degraded shop/web running=1/3 2 slots failed",
            id="degraded",
        ),
        pytest.param(
            events.service_scaled("shop", "web", 5),
            "9 2024-05-01T12:00:00.500Z service.scaled shop/web replicas=5",
            id="scaled",
        ),
        pytest.param(events.engine_reconnected(), "9 2024-05-01T12:00:00.500Z engine.reconnected", id="engine"),
    ],
)
def test_format_line(event: events.Event, line: str) -> None:
    assert format_line(event.message(seq=9, time=TIME)) == line


def test_redis_target_reads_the_environment_with_defaults() -> None:
    assert redis_target({}) == ("redis://127.0.0.1:6379/0", "orchestrator")
    env = {"ORCHESTRATOR_REDIS_URL": "redis://127.0.0.1:7000/3", "ORCHESTRATOR_PREFIX": "blue"}
    assert redis_target(env) == ("redis://127.0.0.1:7000/3", "blue")


def test_events_command_arguments() -> None:
    args = build_parser().parse_args(["events", "--stack", "shop", "--since", "12", "--json"])
    assert (args.stack, args.since, args.json) == ("shop", 12, True)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["events", "--since", "-3"])


def test_the_failure_line_shows_the_redis_url_without_its_password(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setenv("ORCHESTRATOR_REDIS_URL", f"redis://:hunter2@127.0.0.1:{port}/0")
    assert main(["events"]) == 1
    err = capsys.readouterr().err
    assert f"cannot reach Redis at redis://:***@127.0.0.1:{port}/0" in err
    assert "hunter2" not in err
    monkeypatch.setenv("ORCHESTRATOR_REDIS_URL", "http://:hunter2@127.0.0.1/0")
    assert main(["events"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("orchestrator events: ORCHESTRATOR_REDIS_URL=http://:***@127.0.0.1/0: ")
    assert "hunter2" not in err and "Traceback" not in err
