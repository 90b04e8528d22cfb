"""The soak of benchmarks/soak for 60 seconds: the real daemon under client load and random
faults must keep every invariant (it exits non-zero otherwise and prints which one broke).
Its one dockerd restart is included where tests may restart the engine (engine_restart.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.engine_restart import ALLOWED as ENGINE_RESTART_ALLOWED

pytestmark = [pytest.mark.integration, pytest.mark.serial]  # it may restart dockerd

REPO = Path(__file__).parents[2]


# 60 s of faults, then the recoveries of a SIGKILL during rm and during an update, and the checks:
# about 2 minutes on a quiet machine, more on a loaded one (pytest's default bound is 300 s).
@pytest.mark.timeout(460)
def test_soak_keeps_every_invariant_under_faults() -> None:
    command = [sys.executable, str(REPO / "benchmarks" / "soak.py"), "--seconds", "60", "--seed", "8"]
    if not ENGINE_RESTART_ALLOWED:
        command.append("--no-engine-restart")
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=450, check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr[-3000:]}"
    assert "invariants: all held" in done.stdout
