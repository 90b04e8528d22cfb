"""The docker CLI as the Swarm harness runs it, and the names the harness marks things with."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

LABEL_CLUSTER = "orchestrator.swarm.cluster"
LABEL_OWNER = "orchestrator.swarm.owner"
LABEL_ROLE = "orchestrator.swarm.role"
#: Each cluster's host folder (`<name>/`), with each node's socket in `<name>/<node>/`.
BASE_DIR = Path("/tmp/orchestrator-swarm")


class ClusterError(RuntimeError):
    """The Swarm could not be started or driven; the message says which step and why."""


def docker(*args: str, host: str | None = None, timeout: float = 120) -> str:
    """Run the docker CLI against `host`, by default the host's engine; its stdout, stripped."""
    command = ["docker", *(["-H", host] if host else []), *args]
    try:
        done = subprocess.run(command, capture_output=True, timeout=timeout, check=False, env=host_environment())
    except subprocess.TimeoutExpired as exc:
        raise ClusterError(f"`{' '.join(command)}` did not finish within {timeout:.0f} s") from exc
    if done.returncode != 0:
        raise ClusterError(f"`{' '.join(command)}` failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode(errors="replace").strip()


def host_environment() -> dict[str, str]:
    """This process's environment, except a DOCKER_HOST that points at a node (left there by
    `eval "$(scripts/swarm env)"`): a node's engine is never the host's."""
    env = dict(os.environ)
    if env.get("DOCKER_HOST", "").startswith(f"unix://{BASE_DIR}/"):
        del env["DOCKER_HOST"]
    return env
