"""Which engines forget to probe the containers they live-restored, and when a container's probe
counts as dead (engine/health_probes.py)."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from orchestrator.engine.health_probes import (
    DEFAULT_INTERVAL_S, DEFAULT_TIMEOUT_S, MARGIN_S, forgets_probes, probe_clock,
)


@pytest.mark.parametrize(("version", "forgets"), [
    ("20.10.24+dfsg1", True),  # Debian 12's docker.io, the engine of these machines
    ("1.13.1", True),
    ("22.06.0-beta.0", True),
    ("23.0.0", False),
    ("27.3.1", False),
    ("", False),  # unreadable: taken as a current engine, nothing is paused
    ("master-dockerproject-2026", False),
])
def test_engines_before_23_forget_the_probes_of_restored_containers(version: str, forgets: bool) -> None:
    assert forgets_probes(version) is forgets


def inspected(*, running: bool = True, paused: bool = False, log: list[str] | None = None,
              interval_s: float = 0, timeout_s: float = 0, test: list[str] | None = None) -> dict[str, Any]:
    return {
        "State": {"Running": running, "Paused": paused, "StartedAt": "2026-12-01T10:00:00.000000001Z",
                  "Health": {"Status": "healthy", "Log": [{"End": end} for end in log or []]}},
        "Config": {"Healthcheck": {"Test": test or ["CMD-SHELL", "true"],
                                   "Interval": int(interval_s * 1e9), "Timeout": int(timeout_s * 1e9)}},
    }


START = datetime(2026, 12, 1, 10, 0, tzinfo=timezone.utc).timestamp()


def test_the_next_probe_is_due_after_the_last_one_plus_interval_timeout_and_margin() -> None:
    clock = probe_clock(inspected(log=["2026-12-01T10:00:10.5Z"], interval_s=2, timeout_s=3))
    assert clock is not None and clock.last == "2026-12-01T10:00:10.5Z"
    assert clock.due == pytest.approx(START + 10.5 + 2 + 3 + MARGIN_S)


def test_without_a_probe_yet_the_start_counts_and_the_engine_defaults_apply() -> None:
    clock = probe_clock(inspected())
    assert clock is not None and clock.last == "2026-12-01T10:00:00.000000001Z"
    assert clock.due == pytest.approx(START + DEFAULT_INTERVAL_S + DEFAULT_TIMEOUT_S + MARGIN_S)


@pytest.mark.parametrize("container", [
    inspected(running=False),
    inspected(paused=True),  # a user's pause: its probe is stopped on purpose
    inspected(test=["NONE"]),  # healthcheck disabled
    {"State": {"Running": True}, "Config": {}},  # no healthcheck at all
])
def test_only_a_running_container_with_a_healthcheck_is_watched(container: dict[str, Any]) -> None:
    assert probe_clock(container) is None
