"""Issue 5's proof over HTTP: every route of the real daemon (`python -m orchestrator daemon`)
against the real engine and Redis, each error class, the token rule, SSE resume, /metrics."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
import pytest
import redis.asyncio as aioredis

from orchestrator.labels import LABEL_STACK
from tests.integration.conftest import BUSYBOX, delete_prefixed
from tests.integration.daemon_process import DaemonProcess, free_port
from tests.integration.test_api_events import read_events

pytestmark = pytest.mark.integration

#: A name no engine has; its registry is a closed port on loopback, so the pull fails at once
#: and sends nothing off the machine.
MISSING_IMAGE = "127.0.0.1:1/orchestrator-test/missing:latest"


def service(name: str, command: str, *, replicas: int = 1, extra: str = "") -> str:
    """One busybox service; `init` lets SIGTERM end it at once (sh as PID 1 ignores it)."""
    return (f"  {name}:\n    image: {BUSYBOX}\n    init: true\n"
            f"    command: [\"sh\", \"-c\", {json.dumps(command)}]\n"
            f"    deploy:\n      replicas: {replicas}\n{extra}")


ECHO = "echo one; echo two; echo three; exec sleep 600"
TICK = "i=0; while true; do i=$$((i+1)); echo tick $$i; sleep 0.2; done"


def stack(*services: str, top: str = "") -> str:
    return "services:\n" + "".join(services) + top


def running(name: str, count: int) -> Any:
    """A check for GET .../services: service `name` runs `count` of `count` replicas."""
    def check(body: list[dict[str, Any]]) -> bool:
        svc = next(s for s in body if s["name"] == name)
        return bool(svc["replicas_desired"] == svc["replicas_running"] == count)
    return check


def metric(text: str, name: str, **labels: str) -> float | None:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(name) + (r"\{" + re.escape(wanted) + r"\}" if labels else "") + r" (\S+)"
    found = re.search(rf"^{pattern}$", text, re.MULTILINE)
    return float(found.group(1)) if found else None


async def get_text(daemon: DaemonProcess, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession(headers=daemon.auth) as session, session.get(daemon.url + path) as response:
        return response.status, await response.text()


async def test_deploy_inspect_scale_and_remove(
    daemon: DaemonProcess, docker: aiodocker.Docker, stack_name: str
) -> None:
    text = stack(service("web", ECHO, replicas=2), top="volumes:\n  data: {}\n")
    status, body = await daemon.request("PUT", f"/v1/stacks/{stack_name}", data=text)
    assert (status, body["result"]) == (201, "created"), body
    status, body = await daemon.request("PUT", f"/v1/stacks/{stack_name}", data=text)
    assert (status, body["result"]) == (200, "unchanged"), body
    await daemon.poll(f"/v1/stacks/{stack_name}/services", running("web", 2))

    # The stacks list counts from the last pass, which may not have seen the second start yet.
    stacks = await daemon.poll("/v1/stacks", lambda body: any(
        s["name"] == stack_name and s["replicas_running"] == 2 for s in body))
    [mine] = [s for s in stacks if s["name"] == stack_name]
    assert (mine["services"], mine["replicas_desired"], mine["replicas_running"]) == (1, 2, 2)
    _, inspected = await daemon.request("GET", f"/v1/stacks/{stack_name}")
    assert inspected["spec"]["services"]["web"]["image"] == BUSYBOX
    assert [s["name"] for s in inspected["services"]] == ["web"]
    _, tasks = await daemon.request("GET", f"/v1/stacks/{stack_name}/tasks")
    assert [(t["slot"], t["state"], t["desired_state"]) for t in tasks] == [
        (1, "running", "running"), (2, "running", "running")]

    status, body = await daemon.request("POST", f"/v1/stacks/{stack_name}/scale", json={"web": 1})
    assert (status, body) == (200, {"stack": stack_name, "replicas": {"web": 1}})
    await daemon.poll(f"/v1/stacks/{stack_name}/tasks?all=true", lambda b: len(b) == 1)
    _, metrics_text = await get_text(daemon, "/metrics")
    labels = {"stack": stack_name, "service": "web"}
    assert metric(metrics_text, "orchestrator_replicas_desired", **labels) == 1
    assert metric(metrics_text, "orchestrator_replicas_running", **labels) == 1
    assert (metric(metrics_text, "orchestrator_reconcile_pass_seconds_count") or 0) > 0
    assert (metric(metrics_text, "orchestrator_events_published_total") or 0) > 0

    status, body = await daemon.request("DELETE", f"/v1/stacks/{stack_name}")
    assert (status, body["removed"]) == (200, True)
    assert (await daemon.request("GET", f"/v1/stacks/{stack_name}"))[0] == 404
    label = {"label": [f"{LABEL_STACK}={stack_name}"]}
    assert await docker.containers.list(all=True, filters=label) == []
    volumes = (await docker.volumes.list(filters=label)).get("Volumes") or []
    assert [v["Name"] for v in volumes] == [f"{stack_name}_data"], "kept without ?volumes=true"
    _, metrics_text = await get_text(daemon, "/metrics")
    assert metric(metrics_text, "orchestrator_replicas_desired", **labels) is None


async def test_ps_shows_rejections_failures_and_history(daemon: DaemonProcess, stack_name: str) -> None:
    restart = "      restart_policy: {condition: on-failure, delay: 0s, max_attempts: 2}\n"
    text = stack(
        f"  bad:\n    image: {MISSING_IMAGE}\n",
        service("crash", "echo crashing; exit 3", extra=restart),
    )
    await daemon.deploy(stack_name, text)

    def settled(tasks: list[dict[str, Any]]) -> bool:
        return any(t["service"] == "bad" for t in tasks) and sum(
            t["service"] == "crash" and t["state"] == "failed" for t in tasks) == 3

    tasks = await daemon.poll(f"/v1/stacks/{stack_name}/tasks?all=true", settled)
    [bad] = [t for t in tasks if t["service"] == "bad" and t["current"]]
    assert (bad["state"], bad["container_id"]) == ("rejected", "")
    assert "127.0.0.1:1/orchestrator-test/missing" in bad["error"]
    crash = [t for t in tasks if t["service"] == "crash"]
    assert [(t["current"], t["exit_code"], t["error"]) for t in crash] == [
        (True, 3, "non-zero exit (3)"), (False, 3, "non-zero exit (3)"), (False, 3, "non-zero exit (3)")]
    assert [t["desired_state"] for t in crash] == ["running", "shutdown", "shutdown"]
    _, current_only = await daemon.request("GET", f"/v1/stacks/{stack_name}/tasks")
    assert sorted(t["service"] for t in current_only) == ["bad", "crash"]

    _, metrics_text = await get_text(daemon, "/metrics")
    assert metric(metrics_text, "orchestrator_restarts_total", stack=stack_name, service="crash") == 2
    assert metric(metrics_text, "orchestrator_replicas_running", stack=stack_name, service="bad") == 0

    url = f"/v1/stacks/{stack_name}/services/crash/rollback"
    status, body = await daemon.request("POST", url)
    assert (status, body["error"]["code"]) == (409, "conflict"), body
    assert "no previous version" in body["error"]["message"]


async def test_logs_with_and_without_follow_and_tail(daemon: DaemonProcess, stack_name: str) -> None:
    await daemon.deploy(stack_name, stack(service("web", ECHO, replicas=2), service("ticker", TICK)))
    base = f"/v1/stacks/{stack_name}/services"
    await daemon.poll(f"/v1/stacks/{stack_name}/services", running("web", 2))

    def three_each(lines: str) -> bool:
        return len(lines.splitlines()) == 6

    async with asyncio.timeout(10):  # the replicas run before they have echoed
        while not three_each((await get_text(daemon, f"{base}/web/logs"))[1]):
            await asyncio.sleep(0.2)
    _, body = await get_text(daemon, f"{base}/web/logs")
    lines = [json.loads(line) for line in body.splitlines()]
    assert sorted((line["slot"], line["text"]) for line in lines) == sorted(
        (slot, word) for slot in (1, 2) for word in ("one", "two", "three"))
    _, body = await get_text(daemon, f"{base}/web/logs?tail=1&format=text")
    assert sorted(re.sub(r"\.[0-9a-f]{12} ", " ", line) for line in body.splitlines()) == [
        f"{stack_name}_web.1 | three", f"{stack_name}_web.2 | three"]

    async with aiohttp.ClientSession(headers=daemon.auth) as session:
        async with session.get(f"{daemon.url}{base}/ticker/logs?follow=true&tail=1") as response:
            async with asyncio.timeout(10):
                ticks = [json.loads(await response.content.readline())["text"] for _ in range(4)]
    numbers = [int(t.split()[1]) for t in ticks]
    assert numbers == list(range(numbers[0], numbers[0] + 4)), "one old line, then new ones live"


async def test_events_resume_by_last_event_id(daemon: DaemonProcess, stack_name: str) -> None:
    await daemon.deploy(stack_name, stack(service("web", ECHO)))
    await daemon.poll(f"/v1/stacks/{stack_name}/services", running("web", 1))
    async with aiohttp.ClientSession(headers=daemon.auth) as session:
        async with session.get(f"{daemon.url}/v1/events?since=0") as response:
            first = await read_events(response, 6)
            response.close()
        assert [int(i) for i, _, _ in first] == [1, 2, 3, 4, 5, 6], "since=0 replays from the start"
        resume_from = first[1][0]
        headers = {"Last-Event-ID": str(resume_from)}
        async with session.get(f"{daemon.url}/v1/events?stack={stack_name}", headers=headers) as response:
            resumed = await read_events(response, 2)
            response.close()
    # ?stack= skips the daemon's own messages (engine.*), which belong to no stack
    expected = [(i, data) for i, _, data in first[2:] if data.get("stack") == stack_name][:2]
    assert [(r[0], r[2]) for r in resumed] == expected


async def test_error_classes(daemon: DaemonProcess, stack_name: str) -> None:
    bad = "services:\n  web:\n    image: x\n    deploy:\n      replicas: many\n"
    status, body = await daemon.request("PUT", f"/v1/stacks/{stack_name}", data=bad)
    assert (status, body["error"]["code"], body["error"]["path"]) == (
        400, "invalid_stack_file", "services.web.deploy.replicas")
    assert body["error"]["problems"][0]["line"] == 5
    assert (await daemon.request("GET", f"/v1/stacks/{stack_name}"))[0] == 404, "nothing deployed"

    for method, path, kwargs in [
        ("GET", "/v1/stacks/nosuch", {}),
        ("GET", "/v1/stacks/nosuch/tasks", {}),
        ("DELETE", "/v1/stacks/nosuch", {}),
        ("POST", "/v1/stacks/nosuch/scale", {"json": {"web": 1}}),
    ]:
        status, body = await daemon.request(method, path, **kwargs)
        assert (status, body["error"]["code"]) == (404, "unknown_stack"), (method, path)

    port = free_port()
    published = stack(service("web", ECHO, extra=""), top="")
    published = published.replace("    deploy:", f"    ports: [\"{port}:80\"]\n    deploy:")
    await daemon.deploy(stack_name, published)
    for path, kwargs in [(f"/v1/stacks/{stack_name}/scale", {"json": {"nope": 1}}),
                         (f"/v1/stacks/{stack_name}/services/nope/logs", {})]:
        status, body = await daemon.request("POST" if "scale" in path else "GET", path, **kwargs)
        assert (status, body["error"]["code"]) == (404, "unknown_service"), path
    status, body = await daemon.request("PUT", f"/v1/stacks/{stack_name}x", data=published)
    assert (status, body["error"]["code"]) == (409, "conflict"), body
    assert f"port {port} is already published by stack {stack_name}" in body["error"]["message"]

    status, body = await daemon.request("PUT", f"/v1/stacks/{stack_name}", data="#" * (1024 * 1024 + 1))
    assert (status, body["error"]["code"]) == (413, "body_too_large")
    status, body = await daemon.request("GET", "/v1/stacks/Not_A_Name")
    assert (status, body["error"]["code"]) == (400, "invalid_name")


async def test_health_is_503_and_events_are_counted_as_dropped_without_redis(
    tmp_path: Path, redis_prefix: str, stack_name: str
) -> None:
    closed = f"redis://127.0.0.1:{free_port()}/0"
    process = DaemonProcess(tmp_path / "state", redis_prefix, extra_env={
        "ORCHESTRATOR_REDIS_URL": closed, "ORCHESTRATOR_QUEUE_LIMIT": "2"})
    await process.start()
    try:
        status, body = await process.request("GET", "/v1/health")
        assert (status, body["engine"], body["redis"]) == (503, True, False), body
        assert body["redis_error"]
        await process.deploy(stack_name, stack(service("web", ECHO)))
        await process.poll(f"/v1/stacks/{stack_name}/services", running("web", 1))
        _, metrics_text = await get_text(process, "/metrics")
        assert (metric(metrics_text, "orchestrator_events_dropped_total") or 0) >= 1
        status, body = await process.request("GET", "/v1/events")
        assert (status, body["error"]["code"]) == (503, "events_unavailable"), body
    finally:
        await process.stop()


async def test_token_is_required_except_for_health(
    tmp_path: Path, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    process = DaemonProcess(tmp_path / "state", redis_prefix, extra_env={"ORCHESTRATOR_TOKEN": "s3cret"})
    await process.start()
    try:
        assert (await process.request("GET", "/v1/health"))[0] == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            status, body = await process.request("GET", "/v1/stacks", auth=False, headers=headers)
            assert (status, body["error"]["code"]) == (401, "unauthorized")
        ok = await process.request("GET", "/v1/stacks", auth=False, headers={"Authorization": "Bearer s3cret"})
        assert ok == (200, [])
    finally:
        await process.stop()
        await delete_prefixed(redis_client, redis_prefix)


async def test_refuses_to_listen_beyond_loopback_without_a_token(tmp_path: Path) -> None:
    env = DaemonProcess(tmp_path / "state", "unused").env
    env.pop("ORCHESTRATOR_TOKEN", None)
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "orchestrator", "daemon", "--listen", f"0.0.0.0:{free_port()}",
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    async with asyncio.timeout(20):
        out, err = await child.communicate()
    message = (out + err).decode()
    assert child.returncode == 1, message
    assert "refusing to listen on 0.0.0.0" in message and "ORCHESTRATOR_TOKEN" in message
    assert "Traceback" not in message


async def test_rm_goes_on_while_the_engine_keeps_the_network_and_finishes_when_it_lets_go(
    daemon: DaemonProcess, docker: aiodocker.Docker, redis_client: aioredis.Redis, stack_name: str
) -> None:
    """A container that is not the daemon's holds the stack's network, so the engine refuses to
    remove it ("has active endpoints"; a stale endpoint does the same, moby#42119): the answer is
    a 202 that says why, the stack is listed as removing and takes no change; once the engine
    lets go, the daemon finishes the removal by itself and the name is free again."""
    await daemon.deploy(stack_name, stack(service("web", ECHO)))
    await daemon.poll(f"/v1/stacks/{stack_name}/services", running("web", 1))
    stranger: aiodocker.containers.DockerContainer | None = await docker.containers.run({
        "Image": BUSYBOX, "Cmd": ["sleep", "60"],
        "HostConfig": {"NetworkMode": f"{stack_name}_default", "Init": True},
    }, name=f"{stack_name}-stranger")
    try:
        status, body = await daemon.request("DELETE", f"/v1/stacks/{stack_name}")
        assert (status, body["removed"], body["state"]) == (202, False, "removing"), body
        assert f"active endpoints: {stack_name}-stranger still attached" in body["message"]
        _, listed = await daemon.request("GET", "/v1/stacks")
        (row,) = [s for s in listed if s["name"] == stack_name]
        assert row["state"] == "removing" and "active endpoints" in row["message"]
        assert not await docker.containers.list(all=True, filters={"label": [f"{LABEL_STACK}={stack_name}"]})
        for method, path, kwargs in (
            ("PUT", f"/v1/stacks/{stack_name}", {"data": stack(service("web", ECHO))}),
            ("POST", f"/v1/stacks/{stack_name}/scale", {"json": {"web": 2}}),
        ):
            status, body = await daemon.request(method, path, **kwargs)
            assert (status, body["error"]["code"]) == (409, "conflict"), body
            assert "is being removed" in body["error"]["message"]
        await stranger.delete(force=True)
        stranger = None
        async with asyncio.timeout(60):
            while (await daemon.request("GET", f"/v1/stacks/{stack_name}"))[0] != 404:
                await asyncio.sleep(0.2)
        assert not await docker.networks.list(filters={"label": [f"{LABEL_STACK}={stack_name}"]})
        async with asyncio.timeout(10):  # the publisher sends it a moment later
            while True:
                types = [json.loads(fields["event"])["type"]
                         for _, fields in await redis_client.xrange(f"{daemon.prefix}:stream")]
                if "stack.removed" in types:
                    break
                await asyncio.sleep(0.1)
        assert types.count("stack.removed") == 1
        status, _ = await daemon.request("PUT", f"/v1/stacks/{stack_name}", data=stack(service("web", ECHO)))
        assert status == 201, "the name is free again"
    finally:
        if stranger is not None:
            await stranger.delete(force=True)
