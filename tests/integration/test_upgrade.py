"""The upgrade path, old → new (issue 16), with a real older version of the daemon.

The package of an earlier commit (OLD: the first with the ingress as its own process) is taken
out of this repository's history and run on a state directory; it deploys the getting-started
stack and serves it under load. It is stopped with SIGTERM, as an upgrade stops it, and the
daemon of this tree is started on the same state directory and port: the published port fails no
request, the new daemon adopts the old ingress process and the old replicas (none restarted), and
it is in charge (a killed replica is replaced).
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import aiodocker
import pytest

from orchestrator.labels import LABEL_STACK
from tests.integration.daemon_process import DaemonProcess, free_port
from tests.integration.test_dataplane import PER_PHASE, deployed

pytestmark = pytest.mark.integration

REPO = Path(__file__).parents[2]
#: The merge of the data plane (issue 16): the oldest version an upgrade keeps the ports up from.
OLD = "040bb41"


def old_package(into: Path) -> Path:
    """OLD's `orchestrator/` package, extracted from git into `into`; skips without the history."""
    into.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", OLD, "orchestrator"],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        pytest.skip(f"commit {OLD} is not in this clone's history: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    return into


async def replicas(docker: aiodocker.Docker, stack: str) -> set[str]:
    """The running replicas of `stack` (standbys are created, never running)."""
    found = await docker.containers.list(filters={"label": [f"{LABEL_STACK}={stack}"], "status": ["running"]})
    return {c["Id"] for c in found}


async def test_an_upgrade_from_an_older_daemon_fails_no_request_and_restarts_nothing(
    tmp_path: Path, redis_prefix: str, stack_name: str, docker: aiodocker.Docker
) -> None:
    old_tree = old_package(tmp_path / "old")
    state, port = tmp_path / "state", free_port()
    old = DaemonProcess(state, redis_prefix, port=port, cwd=old_tree, extra_env={"PYTHONPATH": str(old_tree)})
    new = DaemonProcess(state, redis_prefix, port=port)
    await old.start()
    try:
        load = await deployed(old, stack_name, free_port(), "Old")
        try:
            await load.answered(PER_PHASE)
            ingress, before = old.ingress_pid, await replicas(docker, stack_name)
            assert ingress is not None, "the old daemon runs no ingress process"
            assert await old.stop_daemon() == 0  # SIGTERM: the ingress and replicas stay
            await load.answered(PER_PHASE)
            await new.start()
            await new.poll(f"/v1/stacks/{stack_name}/services",
                           lambda views: all(v["replicas_running"] == v["replicas_desired"] for v in views), 60)
            await load.answered(PER_PHASE)
            assert new.ingress_pid == ingress, "the new daemon started a second ingress"
            await asyncio.sleep(3)  # give a wrong daemon time to replace what it adopted
            assert await replicas(docker, stack_name) == before, "the upgrade restarted replicas"
            # The load ends here: a request in flight on the replica killed next may rightly fail
            # (the goal covers every request but those), and only the upgrade is measured.
            await load.stop()

            victim = sorted(before)[0]  # and it is in charge
            await docker.containers.container(victim).kill(signal="SIGKILL")
            await new.poll(f"/v1/stacks/{stack_name}/services",
                           lambda views: all(v["replicas_running"] == v["replicas_desired"] for v in views), 60)
            assert victim not in await replicas(docker, stack_name)
        finally:
            await load.stop()
    finally:
        await new.stop()
        await old.stop()
    assert load.failures == [], f"{len(load.failures)} of {len(load.pages) + len(load.failures)} failed: {load.failures[:5]}"
    assert "Traceback" not in new.log_tail(10_000)
