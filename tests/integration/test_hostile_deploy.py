"""The real daemon while a deploy's stack file is being parsed for a long time: it keeps replacing
replicas and answering, and a refused `build:` context is a rejected task with the reason."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any

import aiodocker
import pytest

from orchestrator.labels import LABEL_SERVICE, LABEL_STACK
from tests.integration.conftest import BUSYBOX
from tests.hostile import alias_bombs
from tests.integration.daemon_process import DaemonProcess

pytestmark = pytest.mark.integration

#: ~25 s of loading on these machines, within every limit of the loader (tests/hostile.py).
HOSTILE = alias_bombs(12)
YAML = {"Content-Type": "application/yaml"}


@pytest.fixture(autouse=True)
def _patient_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon keeps parsing the hostile file for the whole test (the client then hangs up)."""
    monkeypatch.setenv("ORCHESTRATOR_PARSE_TIMEOUT", "300")


def stack(replicas: int) -> str:
    return (f"services:\n  app:\n    image: {BUSYBOX}\n    command: [\"sleep\", \"3600\"]\n"
            f"    stop_signal: SIGKILL\n    deploy:\n      replicas: {replicas}\n"
            "      restart_policy: {condition: any, delay: 0s}\n")


async def running_ids(docker: aiodocker.Docker, stack_name: str) -> set[str]:
    listed = await docker.containers.list(filters={"status": ["running"], "label": [
        f"{LABEL_STACK}={stack_name}", f"{LABEL_SERVICE}=app"]})
    return {c.id for c in listed}


def cpu_ticks_below(pid: int) -> int:
    """CPU ticks used by the processes whose parent's parent is `pid` (the loading workers:
    the daemon starts the forkserver, which forks them)."""
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    children = {p for p, (parent, _) in stats.items() if parent == pid}
    return sum(ticks for parent, ticks in stats.values() if parent in children)


async def test_replicas_are_replaced_and_the_api_answers_while_a_hostile_file_is_parsed(
    daemon: DaemonProcess, docker: aiodocker.Docker, stack_name: str
) -> None:
    status, body = await daemon.request("PUT", f"/v1/stacks/{stack_name}", data=stack(2), headers=YAML)
    assert status == 201, body
    await daemon.poll(f"/v1/stacks/{stack_name}/services", lambda s: s[0]["replicas_running"] == 2)
    assert daemon.process is not None
    idle_ticks = cpu_ticks_below(daemon.process.pid)

    hostile = asyncio.create_task(
        daemon.request("PUT", f"/v1/stacks/{stack_name}-x", data=HOSTILE,
                       headers={"Content-Type": "application/json"}))
    try:
        while cpu_ticks_below(daemon.process.pid) < idle_ticks + 50:  # a worker is at it
            assert not hostile.done(), hostile.result()
            await asyncio.sleep(0.1)
        before = await running_ids(docker, stack_name)
        victim = await docker.containers.get(sorted(before)[0])
        os.kill((await victim.show())["State"]["Pid"], signal.SIGKILL)

        answers = 0
        while True:  # every GET below is the loop answering while the worker parses
            status, _ = await daemon.request("GET", "/v1/health")
            assert status == 200
            answers += 1
            now = await running_ids(docker, stack_name)
            if len(now) == 2 and victim.id not in now:
                break
            assert not hostile.done(), f"the parse ended before the replacement: {hostile.result()}"
            await asyncio.sleep(0.2)
        assert not hostile.done(), "the hostile deploy must still be in its worker"
        assert answers >= 1
    finally:
        hostile.cancel()  # hanging up stops its worker
        await asyncio.gather(hostile, return_exceptions=True)
    status, body = await daemon.request("PUT", f"/v1/stacks/{stack_name}", data=stack(3), headers=YAML)
    assert (status, body["result"]) == (200, "updated"), body  # a fresh worker loads the next one


async def test_a_build_context_of_the_root_is_a_rejected_task_with_the_reason(
    daemon: DaemonProcess, stack_name: str
) -> None:
    text = "services:\n  app:\n    build: /\n    command: [\"sleep\", \"60\"]\n"
    status, body = await daemon.request("PUT", f"/v1/stacks/{stack_name}", json={
        "files": [{"name": "stack.yml", "content": text}], "base_dir": "/"})
    assert status == 201, body

    def rejected(tasks: list[dict[str, Any]]) -> bool:
        return any(t["state"] == "rejected" and "system directory" in t["error"] for t in tasks)

    tasks = await daemon.poll(f"/v1/stacks/{stack_name}/tasks", rejected)
    assert "build refused" in json.dumps(tasks)
