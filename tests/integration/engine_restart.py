"""Restarting the machine's dockerd, for the tests and the soak that prove the daemon survives it.

They run in CI and where ORCHESTRATOR_TEST_ENGINE_RESTART=1 says so: on a developer's machine the
engine is shared with whatever else runs there, and a restart stops every container on it."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]

ALLOWED = os.environ.get("CI") == "true" or os.environ.get("ORCHESTRATOR_TEST_ENGINE_RESTART") == "1"

#: marks a test that restarts dockerd: it runs only where that is allowed
restarts_engine = pytest.mark.skipif(
    not ALLOWED, reason="restarts the machine's dockerd: runs in CI or with ORCHESTRATOR_TEST_ENGINE_RESTART=1"
)


def restart_engine() -> None:
    """Restart dockerd the way it was started (systemd, or by scripts/setup) and wait for it."""
    if shutil.which("systemctl") and subprocess.run(
        ["systemctl", "is-active", "--quiet", "docker"], check=False
    ).returncode == 0:
        subprocess.run(["systemctl", "restart", "docker"], check=True)
        return
    subprocess.run(["pkill", "-TERM", "-x", "dockerd"], check=True)
    for _ in range(300):
        if subprocess.run(["pgrep", "-x", "dockerd"], check=False, capture_output=True).returncode != 0:
            break
        subprocess.run(["sleep", "0.2"], check=True)
    subprocess.run(["bash", "-c", "source scripts/lib.sh && ensure_engine"], cwd=REPO, check=True)
