"""The soak of benchmarks/soak for 60 seconds: the real daemon under client load and random
faults must keep every invariant (it exits non-zero otherwise and prints which one broke).
The dockerd restart is included only in CI, as in test_daemon_process.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]


def test_soak_keeps_every_invariant_under_faults() -> None:
    engine_restart = os.environ.get("CI") == "true" or os.environ.get("ORCHESTRATOR_TEST_ENGINE_RESTART") == "1"
    command = [sys.executable, str(REPO / "benchmarks" / "soak.py"), "--seconds", "60", "--seed", "8"]
    if engine_restart:
        command.append("--engine-restart")
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-3000:]}"
    assert "invariants: all held" in done.stdout
