"""Adoption and survival (issue 3): a SIGKILLed daemon restarted beside its containers adopts
them; a restarted Docker engine is waited for and the stacks converge again."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiodocker
import pytest
import redis.asyncio as aioredis

from orchestrator.labels import LABEL_STACK, LABEL_STANDBY
from orchestrator.publishing.channels import STREAM_FIELD_EVENT, events_stream
from tests.integration.conftest import BUSYBOX
from tests.integration.daemon_process import DaemonProcess, free_port
from tests.integration.engine_restart import restart_engine, restarts_engine
from tests.integration.private_redis import PrivateRedis

pytestmark = pytest.mark.integration


def stack(replicas: int) -> str:
    return (
        "services:\n"
        "  web:\n"
        f"    image: {BUSYBOX}\n"
        "    command: [\"sleep\", \"600\"]\n"
        "    stop_grace_period: 1s\n"
        f"    deploy:\n      replicas: {replicas}\n"
    )


async def containers(docker: aiodocker.Docker, stack_name: str) -> list[dict]:
    return await docker.containers.list(all=True, filters={"label": [f"{LABEL_STACK}={stack_name}"]})


async def wait_running(docker: aiodocker.Docker, stack_name: str, count: int, timeout: float = 60) -> list[str]:
    async with asyncio.timeout(timeout):
        while True:
            found = [c for c in await containers(docker, stack_name) if c["State"] == "running"]
            if len(found) == count:
                return sorted(c["Id"] for c in found)
            await asyncio.sleep(0.2)


async def test_sigkilled_daemon_adopts_its_containers(
    daemon: DaemonProcess, docker: aiodocker.Docker, stack_name: str
) -> None:
    await daemon.deploy(stack_name, stack(3))
    before = await wait_running(docker, stack_name, 3)
    await daemon.kill()
    await daemon.start()
    await asyncio.sleep(3)  # give a wrong daemon time to do something wrong
    assert await wait_running(docker, stack_name, 3) == before, "no restart, no duplicate"
    tasks = [c for c in await containers(docker, stack_name) if LABEL_STANDBY not in c["Labels"]]
    assert len(tasks) == 3, "no orphan, no extra container (standbys aside: docs/standby.md)"
    # and it is in charge: a killed replica comes back
    await docker.containers.container(before[0]).kill(signal="SIGKILL")
    async with asyncio.timeout(30):
        while before[0] in await wait_running(docker, stack_name, 3):
            await asyncio.sleep(0.2)


async def test_sigterm_leaves_containers_running(
    daemon: DaemonProcess, docker: aiodocker.Docker, stack_name: str
) -> None:
    await daemon.deploy(stack_name, stack(2))
    before = await wait_running(docker, stack_name, 2)
    assert await daemon.stop() == 0
    assert await wait_running(docker, stack_name, 2) == before
    await daemon.start()
    await asyncio.sleep(2)
    assert await wait_running(docker, stack_name, 2) == before


@pytest.mark.engine_restart
@restarts_engine
async def test_engine_restart_is_waited_for_and_stacks_converge(
    daemon: DaemonProcess, docker: aiodocker.Docker, stack_name: str
) -> None:
    live_restore = (await docker.system.info())["LiveRestoreEnabled"]
    await daemon.deploy(stack_name, stack(2))
    before = await wait_running(docker, stack_name, 2)
    await asyncio.to_thread(restart_engine)
    async with aiodocker.Docker() as fresh:
        await daemon.poll("/v1/health", lambda body: body["engine"], 60)
        after = await wait_running(fresh, stack_name, 2, timeout=90)
        if live_restore:  # the engine kept them running: the daemon adopts, restarts nothing
            await asyncio.sleep(3)  # give a wrong daemon time to replace them
            assert await wait_running(fresh, stack_name, 2) == before
        else:  # dockerd stopped the replicas on its way down (engine restart policy "no")
            assert not set(after) & set(before), "the old replicas were stopped by dockerd"
            assert len(await containers(fresh, stack_name)) >= 4, "the stopped ones stay as history"
    status, body = await daemon.request("GET", "/v1/health")
    assert status == 200, body


def sick_when_flagged(replicas: int) -> str:
    return stack(replicas) + (
        "    healthcheck:\n"
        "      test: [\"CMD-SHELL\", \"test ! -f /tmp/sick\"]\n"
        "      interval: 1s\n"
        "      timeout: 2s\n"
        "      retries: 2\n"
    )


@pytest.mark.engine_restart
@restarts_engine
async def test_a_replica_turning_unhealthy_after_a_dockerd_restart_is_replaced(
    daemon: DaemonProcess, docker: aiodocker.Docker, stack_name: str
) -> None:
    """With live-restore the replicas outlive dockerd, but an engine before 23.0 no longer probes
    their health (moby#41871): the daemon starts the probes again (engine/health_probes.py)."""
    await daemon.deploy(stack_name, sick_when_flagged(1))
    await wait_running(docker, stack_name, 1)
    await asyncio.to_thread(restart_engine)
    async with aiodocker.Docker() as fresh:
        await daemon.poll("/v1/health", lambda body: body["engine"], 60)
        [victim] = await wait_running(fresh, stack_name, 1, timeout=90)
        await asyncio.sleep(2)  # the daemon's event stream is back (its reconnect backoff)
        execution = await fresh.containers.container(victim).exec(["touch", "/tmp/sick"])
        await execution.start(detach=True)
        async with asyncio.timeout(60):
            while victim in await wait_running(fresh, stack_name, 1, timeout=60):
                await asyncio.sleep(0.5)


async def test_events_queued_at_sigterm_are_sent_before_exit(tmp_path: Path, redis_prefix: str,
                                                              docker: aiodocker.Docker, stack_name: str) -> None:
    """Redis is away while the stack is removed, so its events wait in the publisher's queue;
    Redis is back, but the publisher is still in a long reconnect backoff when SIGTERM arrives:
    the daemon must give it its shutdown grace rather than cancel it, and the publisher must
    spend that grace trying, not sleeping (scripts/stop --rm right after an outage)."""
    redis = PrivateRedis(free_port())
    await redis.start()
    daemon = DaemonProcess(tmp_path / "state", redis_prefix, extra_env={"ORCHESTRATOR_REDIS_URL": redis.url})
    try:
        await daemon.start()
        await daemon.deploy(stack_name, stack(1))
        await wait_running(docker, stack_name, 1)
        redis.stop()
        status, body = await daemon.request("DELETE", f"/v1/stacks/{stack_name}")
        assert status == 200, body
        await asyncio.sleep(3)  # the reconnect backoff grows past the 2 s the daemon gives it
        await redis.start()
        assert await daemon.stop() == 0
        async with aioredis.Redis.from_url(redis.url, decode_responses=True) as client:
            entries = await client.xrange(events_stream(redis_prefix))
    finally:
        await daemon.stop()
        redis.stop()
    types = [json.loads(fields[STREAM_FIELD_EVENT])["type"] for _, fields in entries]
    assert "stack.removed" in types, types
    assert "publisher_stopped_with_unsent_events" not in daemon.log_tail(100)


async def test_port_in_use_is_one_clear_line_and_exit_1(tmp_path: Path, redis_prefix: str) -> None:
    import socket
    import sys

    process = DaemonProcess(tmp_path / "state", redis_prefix)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", process.port))
        taken.listen()
        result = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "orchestrator", "daemon", env=process.env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, stderr = await asyncio.wait_for(result.communicate(), 30)
    assert result.returncode == 1
    text = stderr.decode()
    assert "address already in use" in text and "Traceback" not in text


async def test_sigterm_while_waiting_for_the_engine_stops_the_daemon(tmp_path: Path, redis_prefix: str) -> None:
    """A daemon started before dockerd (or pointed at one that is down) still stops when asked."""
    import signal
    import sys

    process = DaemonProcess(tmp_path / "state", redis_prefix,
                            extra_env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"})
    (tmp_path / "state").mkdir()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", "daemon", env=process.env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert child.stdout is not None
    async with asyncio.timeout(30):
        while b"engine_unavailable_waiting" not in await child.stdout.readline():
            pass
    child.send_signal(signal.SIGTERM)
    output, _ = await asyncio.wait_for(child.communicate(), 30)
    assert child.returncode == 0, output.decode()
    assert b"Traceback" not in output and b"Unclosed" not in output
