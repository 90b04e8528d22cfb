"""Which engines forget to probe the containers they live-restored (engine/health_probes.py)."""

from __future__ import annotations

import pytest

from orchestrator.engine.health_probes import forgets_probes


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
