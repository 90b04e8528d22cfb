"""Issue 5's proof through the CLI: every client command as a user runs it (`python -m
orchestrator ...` in its own process) against the real daemon, with its output and exit code."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path

import aiodocker
import pytest

from orchestrator.labels import LABEL_STACK
from tests.integration.conftest import BUSYBOX
from tests.integration.daemon_process import DaemonProcess, free_port
from tests.integration.test_api_daemon import ECHO, MISSING_IMAGE, service, stack

pytestmark = pytest.mark.integration


async def cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(60):
        out, err = await child.communicate()
    assert "Traceback" not in err.decode(), err.decode()
    return child.returncode or 0, out.decode(), err.decode()


def rows(table: str) -> list[list[str]]:
    """A docker-style table's body, split on its 3-space column gaps."""
    return [re.split(r"\s{3,}", line.strip()) for line in table.splitlines()[1:]]


async def test_deploy_wait_list_scale_logs_and_rm(
    daemon: DaemonProcess, docker: aiodocker.Docker, stack_name: str, tmp_path: Path
) -> None:
    env = daemon.env
    stack_file = tmp_path / "stack.yml"
    stack_file.write_text(stack(service("web", ECHO, replicas=2), top="volumes:\n  data: {}\n"))
    code, out, _ = await cli(env, "deploy", "-c", str(stack_file), stack_name, "--wait", "--timeout", "60",
                             "--stable", "1")
    assert code == 0
    assert f"Creating service {stack_name}_web" in out
    assert out.splitlines()[-3:] == [
        "web: 2/2", "verifying for 1 s that the replicas stay up", f"Stack {stack_name} converged"]
    code, out, _ = await cli(env, "deploy", "-c", str(stack_file), stack_name)
    assert (code, out) == (0, f"Stack {stack_name} is up to date\n")

    code, out, _ = await cli(env, "ls")
    assert [r[:3] for r in rows(out) if r[0] == stack_name] == [[stack_name, "1", "2/2"]]
    code, out, _ = await cli(env, "ls", "--format", "json")
    assert [s["replicas_running"] for s in json.loads(out) if s["name"] == stack_name] == [2]
    code, out, _ = await cli(env, "services", stack_name)
    assert [r[1:5] for r in rows(out)] == [[f"{stack_name}_web", "replicated", "2/2", BUSYBOX]]
    code, out, _ = await cli(env, "ps", stack_name)
    assert [(r[1], r[3], r[4].split()[0]) for r in rows(out)] == [
        (f"{stack_name}_web.1", "Running", "Running"), (f"{stack_name}_web.2", "Running", "Running")]

    code, out, _ = await cli(env, "logs", stack_name, "web")
    assert sorted(re.sub(r"\.[0-9a-f]{12} ", " ", line) for line in out.splitlines()) == sorted(
        f"{stack_name}_web.{slot} | {word}" for slot in (1, 2) for word in ("one", "two", "three"))
    code, out, _ = await cli(env, "logs", "--tail", "1", stack_name, "web")
    assert sorted(line.split(" | ")[1] for line in out.splitlines()) == ["three", "three"]
    await follow_prints_then_runs_until_interrupted(env, stack_name)

    code, out, _ = await cli(env, "scale", stack_name, "web=1")
    assert (code, out) == (0, f"{stack_name}_web scaled to 1\n")
    await daemon.poll(f"/v1/stacks/{stack_name}/tasks?all=true", lambda body: len(body) == 1)
    code, out, err = await cli(env, "rollback", stack_name, "web")
    assert (code, err) == (1, f"error: {stack_name}_web: there is no previous version to roll back to\n")

    code, out, _ = await cli(env, "rm", "--volumes", stack_name)
    assert (code, out) == (0, f"Removing stack {stack_name} and its volumes\n")
    label = {"label": [f"{LABEL_STACK}={stack_name}"]}
    assert await docker.containers.list(all=True, filters=label) == []
    assert not (await docker.volumes.list(filters=label)).get("Volumes")
    code, _, err = await cli(env, "ps", stack_name)
    assert (code, err) == (1, f"error: no such stack: {stack_name}\n")


async def follow_prints_then_runs_until_interrupted(env: dict[str, str], stack_name: str) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", "logs", "-f", "--tail", "1", stack_name, "web",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    async with asyncio.timeout(20):
        lines = [(await child.stdout.readline()).decode() for _ in range(2)]
    assert all(line.endswith(" | three\n") for line in lines), lines
    await asyncio.sleep(0.3)
    assert child.returncode is None, "-f keeps following"
    child.send_signal(signal.SIGINT)
    async with asyncio.timeout(10):
        _, err = await child.communicate()
    assert child.returncode == 130 and "Traceback" not in err.decode()


async def test_ps_shows_a_rejected_task_with_its_reason(
    daemon: DaemonProcess, stack_name: str, tmp_path: Path
) -> None:
    stack_file = tmp_path / "stack.yml"
    stack_file.write_text(stack(f"  bad:\n    image: {MISSING_IMAGE}\n"))
    code, _, err = await cli(daemon.env, "deploy", "-c", str(stack_file), stack_name, "--wait",
                             "--timeout", "2")
    assert (code, err) == (1, f"error: timed out after 2 s waiting for stack {stack_name} to converge\n")
    code, out, _ = await cli(daemon.env, "ps", stack_name)
    [row] = rows(out)
    assert (row[1], row[2], row[3], row[4].split()[0]) == (
        f"{stack_name}_bad.1", MISSING_IMAGE, "Running", "Rejected")
    assert row[5].startswith('"image 127.0.0.1:1/') and row[5].endswith('…"'), "truncated"
    code, out, _ = await cli(daemon.env, "ps", "--no-trunc", "--all", stack_name)
    assert all(MISSING_IMAGE in r[5] and not r[5].endswith('…"') for r in rows(out))
    code, out, _ = await cli(daemon.env, "ps", "--format", "json", stack_name)
    [task] = json.loads(out)
    assert (task["state"], task["container_id"]) == ("rejected", "")


async def test_deploy_wait_stops_when_the_restart_policy_gave_up(
    daemon: DaemonProcess, stack_name: str, tmp_path: Path
) -> None:
    """Waiting cannot bring back a replica whose max_attempts are used up: --wait says so and
    exits 1 instead of waiting out its timeout (the timeout's message would differ)."""
    # the healthcheck keeps the short runs from counting as running replicas (ready = healthy)
    crash = service("crash", "sleep 0.3; exit 3", replicas=2,
                    extra="      restart_policy: {condition: on-failure, delay: 0s, max_attempts: 1}\n"
                          "    healthcheck: {test: [CMD, 'true'], interval: 30s}\n")
    stack_file = tmp_path / "stack.yml"
    stack_file.write_text(stack(service("web", ECHO), crash))
    code, out, err = await cli(daemon.env, "deploy", "-c", str(stack_file), stack_name, "--wait",
                               "--timeout", "55")
    assert code == 1, (out, err)
    assert err.startswith(f"error: stack {stack_name} will not converge: restart policy gave up on "
                          "crash (2 gave up: "), err
    assert "exit code 3" in err and "web" not in err.partition("gave up on")[2], err
    code, out, _ = await cli(daemon.env, "services", stack_name)
    assert [r[3] for r in rows(out)] == ["0/2 (2 gave up)", "1/1"]


async def test_user_mistakes_are_one_line_and_exit_codes(
    daemon: DaemonProcess, stack_name: str, tmp_path: Path
) -> None:
    bad_file = tmp_path / "bad.yml"
    bad_file.write_text("services:\n  web:\n    image: x\n    deploy:\n      replicas: many\n")
    code, _, err = await cli(daemon.env, "deploy", "-c", str(bad_file), stack_name)
    assert code == 1
    assert err.splitlines() == ["error: 1 problem(s) in the stack file:",
                                f"  {bad_file}:5: services.web.deploy.replicas: must be an integer, not 'many'"]
    code, _, err = await cli(daemon.env, "scale", stack_name, "web=lots")
    assert code == 2 and "invalid scale specifier" in err
    code, _, err = await cli(daemon.env, "services", "nosuch")
    assert (code, err) == (1, "error: no such stack: nosuch\n")

    nobody = f"http://127.0.0.1:{free_port()}"
    code, _, err = await cli({**daemon.env, "ORCHESTRATOR_HOST": nobody}, "ls")
    assert code == 1
    assert err.startswith(f"error: the daemon is not running at {nobody} (")
    assert "start it with `orchestrator daemon`" in err and len(err.splitlines()) == 1
