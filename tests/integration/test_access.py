"""Access to the real daemon (docs/settings.md, "Access"): another local user cannot drive it
over TCP, its owner's CLI needs nothing set, bad credentials are a 401, and neither the token
nor anything a caller sends reaches the log as anything but JSON without secrets."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.integration.conftest import delete_prefixed
from tests.integration.daemon_process import DaemonProcess
from tests.integration.test_api_daemon import ECHO, service, stack
from tests.integration.test_cli_daemon import cli

pytestmark = pytest.mark.integration

#: What `curl http://127.0.0.1:PORT/PATH` says, run by another user: "STATUS BODY".
AS_ANOTHER_USER = """
import sys, urllib.request, urllib.error
request = urllib.request.Request(sys.argv[1], headers=dict(h.split(": ", 1) for h in sys.argv[2:]))
try:
    with urllib.request.urlopen(request, timeout=10) as answer:
        print(answer.status, answer.read().decode())
except urllib.error.HTTPError as answer:
    print(answer.code, answer.read().decode())
"""


#: The system's Python: another user may run it (the virtualenv's may live under /root).
SYSTEM_PYTHON = "/usr/bin/python3"


async def as_nobody(url: str, *headers: str) -> tuple[int, str]:
    if os.geteuid() != 0 or not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"needs root and {SYSTEM_PYTHON}, to send a request as the user nobody")
    child = await asyncio.to_thread(
        subprocess.run, [SYSTEM_PYTHON, "-c", AS_ANOTHER_USER, url, *headers], user="nobody",
        cwd="/", capture_output=True, text=True, timeout=30, check=False)
    assert child.returncode == 0, child.stderr
    status, _, body = child.stdout.strip().partition(" ")
    return int(status), body


async def test_another_local_user_cannot_drive_the_daemon_over_tcp(
        daemon: DaemonProcess, stack_name: str) -> None:
    await daemon.deploy(stack_name, stack(service("web", ECHO)))
    status, body = await as_nobody(f"{daemon.url}/v1/stacks")
    assert status == 401 and json.loads(body)["error"]["code"] == "unauthorized"
    assert stack_name not in body
    for guess in ("Authorization: Bearer ", "Authorization: Bearer orchestrator"):
        assert (await as_nobody(f"{daemon.url}/v1/stacks", guess))[0] == 401
    status, body = await as_nobody(f"{daemon.url}/v1/health")
    assert json.loads(body) == {"engine": True, "redis": True}, "booleans only, no addresses"
    # The token file is the owner's alone, in a state dir closed to others.
    token_file = daemon.state_dir / "token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(daemon.state_dir.stat().st_mode) == 0o700
    status, body = await as_nobody(f"{daemon.url}/v1/stacks", f"Authorization: Bearer {daemon.token}")
    assert status == 200 and stack_name in body, "the token, and only the token, lets one in"


async def test_the_owners_cli_needs_nothing_set(daemon: DaemonProcess, stack_name: str) -> None:
    await daemon.deploy(stack_name, stack(service("web", ECHO)))
    plain = {k: v for k, v in daemon.env.items() if k not in ("ORCHESTRATOR_HOST", "ORCHESTRATOR_TOKEN")}
    # No host: the unix socket of the state dir (the daemon's default, as on a real machine).
    code, out, err = await cli(plain, "ls")
    assert (code, err) == (0, "") and stack_name in out
    # The TCP address: the CLI brings the token from the state dir.
    code, out, err = await cli({**plain, "ORCHESTRATOR_HOST": daemon.url}, "ls")
    assert (code, err) == (0, "") and stack_name in out
    # Someone without the token file gets a 401 that says how to get in.
    code, _, err = await cli({**plain, "ORCHESTRATOR_HOST": daemon.url,
                              "ORCHESTRATOR_STATE_DIR": str(daemon.state_dir.parent / "elsewhere")}, "ls")
    assert code == 1 and err.startswith("error: missing or wrong bearer token\nhint: ")


async def test_the_token_is_kept_across_restarts(daemon: DaemonProcess) -> None:
    token = daemon.token
    assert token
    await daemon.stop()
    await daemon.start()
    assert daemon.token == token
    assert (await daemon.request("GET", "/v1/stacks"))[0] == 200


async def raw_request(daemon: DaemonProcess, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", daemon.port)
    try:
        writer.write(request)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def log_lines(daemon: DaemonProcess) -> list[str]:
    return (daemon.state_dir / "daemon.log").read_text().splitlines()


async def test_bad_credentials_and_malformed_requests_leave_no_secret_in_the_log(
        tmp_path: Path, redis_prefix: str, redis_client: aioredis.Redis) -> None:
    token = "integration-test-token-7f3a"
    process = DaemonProcess(tmp_path / "state", redis_prefix, extra_env={
        "ORCHESTRATOR_TOKEN": token,
        "ORCHESTRATOR_REDIS_URL": "redis://:the-redis-password@127.0.0.1:6379/0?password=the-redis-password",
    })
    await process.start()
    try:
        answer = await raw_request(process, b"GET /v1/stacks HTTP/1.1\r\nHost: x\r\n"
                                   b"Authorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 401 "), answer[:100]
        # A request aiohttp's parser refuses, with the token in the bytes it quotes.
        await raw_request(process, b"GET /v1/stacks HTTP/1.1\r\nAuthorization: Bearer " + token.encode()
                          + b"\r\nX-Bad\x01" + token.encode() + b": 1\r\n\r\n")
        await raw_request(process, b"GET /v1/stacks HTTP/1.1\r\n\r\n" + token.encode() + b" /x HTTP/1.1\r\n\r\n")
        _, body = await process.request("GET", "/v1/health")
        assert "the-redis-password" not in json.dumps(body)
    finally:
        await process.stop()
        await delete_prefixed(redis_client, redis_prefix)
    lines = log_lines(process)
    text = "\n".join(lines)
    assert token not in text and "the-redis-password" not in text
    assert [line for line in lines if not line.startswith("{")] == [], "every line is JSON"
    assert '"locals"' not in text
    assert any(json.loads(line).get("logger") == "aiohttp.server" for line in lines), (
        "the malformed requests were logged, as JSON")


async def test_replica_counts_have_limits(tmp_path: Path, redis_prefix: str, stack_name: str,
                                         redis_client: aioredis.Redis) -> None:
    process = DaemonProcess(tmp_path / "state", redis_prefix, extra_env={
        "ORCHESTRATOR_MAX_REPLICAS_TOTAL": "3"})
    await process.start()
    try:
        await process.deploy(stack_name, stack(service("web", ECHO)))
        url = f"/v1/stacks/{stack_name}/scale"
        status, body = await process.request("POST", url, json={"web": 1_000_000_000_000})
        assert (status, body["error"]["code"], body["error"]["path"]) == (400, "limit_exceeded", "web")
        assert "ORCHESTRATOR_MAX_REPLICAS)" in body["error"]["message"]
        status, body = await process.request("POST", url, json={"web": 4})
        assert (status, body["error"]["code"]) == (400, "limit_exceeded")
        assert "over the limit of 3 (setting max_replicas_total" in body["error"]["message"]
        _, services = await process.request("GET", f"/v1/stacks/{stack_name}/services")
        assert [s["replicas_desired"] for s in services] == [1], "nothing changed"
        assert (await process.request("POST", url, json={"web": 3}))[0] == 200
        status, body = await process.request("PUT", f"/v1/stacks/{stack_name}x", data=stack(service("web", ECHO)),
                                             headers={"Content-Type": "application/yaml"})
        assert (status, body["error"]["code"]) == (400, "limit_exceeded"), "a 4th replica, by deploy"
        huge = stack(service("web", ECHO, replicas=1_000_000_000))
        status, body = await process.request("PUT", f"/v1/stacks/{stack_name}", data=huge,
                                             headers={"Content-Type": "application/yaml"})
        assert status == 400 and "ORCHESTRATOR_MAX_REPLICAS" in body["error"]["message"], body
    finally:
        await process.request("DELETE", f"/v1/stacks/{stack_name}")
        await process.stop()
        await delete_prefixed(redis_client, redis_prefix)
