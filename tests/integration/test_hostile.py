"""Issue 12's hostile and careless inputs against one real daemon: each gets its clear answer (status,
error code, `path`, the words that say what is wrong), never a stack trace or a secret, and
nothing is half-applied (`GET /v1/stacks` is the same after a refusal). Meanwhile a healthy stack
deployed first stays untouched (the same containers, at count, and a replica killed at the end is
still replaced), and the daemon's memory stays bounded.

Where an item is proven in another test already it is referenced here, not repeated:

| issue 12 item                                   | where                                                         |
|-------------------------------------------------|---------------------------------------------------------------|
| 1 SIGKILL during rm                             | test_crash_points: test_sigkill_during_rm_then_the_next_start_finishes_it, test_sigkill_at_engine_calls_of_every_operation |
| 2 replicas 1e9 / 10**30, scale 1e12 / 10**30    | here: LIMITS (and test_access: test_replica_counts_have_limits, the total budget) |
| 3 parsing off the loop, `[`x100k, deep nesting,  | here: PARSER (each refused); the loop keeps replacing replicas while a worst-case file is parsed: test_hostile_deploy: test_replicas_are_replaced_and_the_api_answers_while_a_hostile_file_is_parsed; budget: unit test_deploy_loading |
|   alias bombs, 1001 services, 25k files         |                                                               |
| 4 build contexts                                | test_hostile_deploy: test_a_build_context_of_the_root_is_a_rejected_task_with_the_reason; engine/test_build_context; unit test_build_context (.dockerignore, size) |
| 5 cpus 1e308, delay .nan                        | here: VALUES                                                  |
| 6 `Bearer \\xff\\xfe`, token in the log          | test_access: test_bad_credentials_and_malformed_requests_leave_no_secret_in_the_log |
| 7 another local user over TCP                   | test_access: test_another_local_user_cannot_drive_the_daemon_over_tcp |
| 8 env_file / secret `file:` of /proc, /dev, /etc | here: FILES (and the canary check of the last test)           |
| 9 dangerous options                             | here: test_dangerous_options_are_listed_with_their_key_paths (warn, the default); deny: unit test_stackfile_dangerous |
| 10 values the engine would refuse               | here: VALUES; a refusal that still gets through: test_engine_refusals |
| 11 a published port that cannot be bound        | test_published_ports (409, nothing saved; unpublished and retried) |
| 12 service names                                | here: test_every_service_name_the_loader_takes_can_be_scaled_logged_and_rolled_back, NAMES |
| 13 `²` in tail/since/Last-Event-ID, deep YAML   | here: QUERIES, PARSER; `orchestrator config`: unit test_stackfile_limits: test_config_prints_the_nesting_problem_without_a_traceback |
| 14 CLI escaping, `probe%0A`                     | unit test_cli: test_names_and_counts_are_checked_before_any_request, test_the_client_quotes_and_checks_every_name_it_puts_in_a_path; here: NAMES |
| 15 engine refusals during removal               | test_api_daemon: test_rm_goes_on_while_the_engine_keeps_the_network_and_finishes_when_it_lets_go; unit test_executor |
| 16 no locals in logged tracebacks               | unit test_logs; here: the last test reads the whole daemon log |
| 17 Redis password in `events`, /v1/health,      | unit test_event_follow: test_the_failure_line_shows_the_redis_url_without_its_password; test_access (health, aiohttp's tracebacks as JSON); test_api_events: test_a_seq_newer_than_the_newest_message_is_a_400_naming_the_newest |
|   aiohttp tracebacks, since=<huge>              |                                                               |
| limits (What to build)                          | here: LIMITS, PARSER; body size: test_api_daemon: test_error_classes (413) |
| values, files, dangerous options                | here: VALUES, FILES, test_dangerous_options_are_listed_with_their_key_paths |
| ports                                           | test_published_ports; test_api_daemon: test_error_classes (409 a port of another stack) |
| crash consistency                               | test_crash_points, test_updates_daemon, benchmarks/soak       |
| OpenAPI matches the server                      | here: test_the_openapi_document_states_what_the_server_accepts; unit test_api_fuzz (schemathesis) |
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
import pytest
import pytest_asyncio
import redis.asyncio as aioredis

from orchestrator.publishing import channels
from orchestrator.labels import LABEL_SERVICE, LABEL_STACK
from tests.integration.conftest import BUSYBOX, REDIS_URL, delete_prefixed, remove_stack_objects
from tests.integration.daemon_process import DaemonProcess

# one daemon for the module: its tests go to one xdist worker (scripts/test)
pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module"), pytest.mark.xdist_group("hostile")]

YAML = {"Content-Type": "application/yaml"}
#: The daemon's RSS may grow this much over the suite (its idle figure is ~60-80 MB).
RSS_GROWTH_BOUND_KB = 150 * 1024


@dataclass
class Hostile:
    daemon: DaemonProcess
    docker: aiodocker.Docker
    healthy: str
    healthy_ids: set[str]
    idle_rss_kb: int
    #: In the daemon's environment: must never come back in an answer, a log line or an event.
    canary: str
    base_dir: Path
    created: set[str] = field(default_factory=set)

    def name(self) -> str:
        """A fresh stack name, cleaned up after the module."""
        name = f"x{secrets.token_hex(4)}"
        self.created.add(name)
        return name


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def healthy_stack() -> str:
    return (f"services:\n  app:\n    image: {BUSYBOX}\n    init: true\n    command: [\"sleep\", \"3600\"]\n"
            "    stop_signal: SIGKILL\n    deploy:\n      replicas: 2\n"
            "      restart_policy: {condition: any, delay: 0s}\n")


async def running_ids(docker: aiodocker.Docker, stack: str) -> set[str]:
    listed = await docker.containers.list(filters={"status": ["running"], "label": [
        f"{LABEL_STACK}={stack}", f"{LABEL_SERVICE}=app"]})
    return {c.id for c in listed}


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def hostile(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Hostile]:
    root = tmp_path_factory.mktemp("hostile")
    prefix = f"orchestrator-test-{secrets.token_hex(4)}"
    canary = f"canary-{secrets.token_hex(8)}"
    docker = aiodocker.Docker()
    redis = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        await docker.images.inspect(BUSYBOX)
        await redis.ping()
    except Exception as exc:  # noqa: BLE001 - as the conftest fixtures: no engine or Redis
        await docker.close()
        await redis.aclose()
        pytest.skip(f"needs the Docker engine with {BUSYBOX} and Redis: {exc}")
    daemon = DaemonProcess(root / "state", prefix, extra_env={
        "ORCHESTRATOR_TOKEN": f"token-{secrets.token_hex(16)}", "HOSTILE_CANARY": canary})
    healthy = f"h{secrets.token_hex(4)}"
    state = None
    try:
        await daemon.start()
        status, body = await daemon.request("PUT", f"/v1/stacks/{healthy}", data=healthy_stack(), headers=YAML)
        assert status == 201, body
        await daemon.poll(f"/v1/stacks/{healthy}/services", lambda s: s[0]["replicas_running"] == 2, timeout=60)
        assert daemon.process is not None
        base_dir = root / "project"
        base_dir.mkdir()
        state = Hostile(daemon, docker, healthy, await running_ids(docker, healthy),
                        rss_kb(daemon.process.pid), canary, base_dir)
        yield state
    finally:
        code = await daemon.stop()
        for stack in {healthy, *(state.created if state else ())}:
            await remove_stack_objects(docker, stack)
        await delete_prefixed(redis, prefix)
        await docker.close()
        await redis.aclose()
    assert code == 0, f"the daemon did not stop cleanly on SIGTERM ({code}):\n{daemon.log_tail()}"


# ----------------------------------------------------------------------------------- the cases

@dataclass(frozen=True)
class Case:
    #: PUT /v1/stacks/<new name> with this stack file (YAML), unless `request` is given.
    stack_file: str | None = None
    #: (method, path with {stack} for the healthy stack, aiohttp keyword arguments)
    request: tuple[str, str, dict[str, Any]] | None = None
    #: JSON deploy files {name: content}, with the module's base_dir.
    files: dict[str, str] | None = None
    status: int = 400
    code: str = "invalid_stack_file"
    path: str | None = None
    says: str = ""


def service(extra: str, name: str = "web") -> str:
    return f"services:\n  {name}:\n    image: {BUSYBOX}\n{extra}"


LIMITS = {
    "2-replicas-1e9": Case(service("    deploy: {replicas: 1e9}\n"), path="services.web.deploy.replicas",
                           says="ORCHESTRATOR_MAX_REPLICAS"),
    "2-replicas-10**30": Case(service("    deploy: {replicas: %d}\n" % 10**30), path="services.web.deploy.replicas"),
    "2-scale-1e12": Case(request=("POST", "/v1/stacks/{stack}/scale", {"json": {"app": 10**12}}),
                         code="limit_exceeded", path="app", says="ORCHESTRATOR_MAX_REPLICAS"),
    "2-scale-10**30": Case(request=("POST", "/v1/stacks/{stack}/scale", {"json": {"app": 10**30}}),
                           code="limit_exceeded", path="app"),
    "2-scale-float": Case(request=("POST", "/v1/stacks/{stack}/scale", {"data": '{"app": 1e400}',
                                                                       "headers": {"Content-Type": "application/json"}}),
                          code="bad_request", path="app"),
    "services-per-stack": Case("services:\n" + "".join(f"  s{i}:\n    image: {BUSYBOX}\n" for i in range(1001)),
                               path="services", says="ORCHESTRATOR_MAX_SERVICES"),
}

PARSER = {
    "3-open-brackets-100k": Case("[" * 100_000, path="", says="ORCHESTRATOR_MAX_YAML_DEPTH"),
    "3-flow-mappings-5000-deep": Case("a: " + "{b: " * 5000 + "1" + "}" * 5000 + "\n",
                                      says="ORCHESTRATOR_MAX_YAML_DEPTH"),
    "13-block-nesting-3000-deep": Case("- " * 3000 + "x\n", says="ORCHESTRATOR_MAX_YAML_DEPTH"),
    "3-alias-bomb": Case("x-a0: &a0 [" + ",".join(["x"] * 10) + "]\n" + "".join(
        f"x-a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]\n" for i in range(1, 8)) + service(""),
        says="ORCHESTRATOR_MAX_YAML_NODES"),
    "3-25000-files": Case(files={f"f{i}.yml": "services: {}\n" for i in range(25_000)},
                          status=413, code="body_too_large"),
}

VALUES = {
    "5-cpus-1e308": Case(service("    deploy: {resources: {limits: {cpus: '1e308'}}}\n"),
                         path="services.web.deploy.resources.limits.cpus"),
    "5-delay-nan": Case(service("    deploy: {restart_policy: {delay: .nan}}\n"),
                        path="services.web.deploy.restart_policy.delay"),
    "10-memory-1b": Case(service("    deploy: {resources: {limits: {memory: 1b}}}\n"),
                         path="services.web.deploy.resources.limits.memory"),
    "10-memory-huge": Case(service("    deploy: {resources: {limits: {memory: 99999999999999999999G}}}\n"),
                           path="services.web.deploy.resources.limits.memory"),
    "10-stop-grace-1e30s": Case(service("    stop_grace_period: 1e30s\n"), path="services.web.stop_grace_period"),
    "10-ulimit-1e20": Case(service("    ulimits: {nofile: 100000000000000000000}\n"), path="services.web.ulimits.nofile"),
    "10-extra-host-newline": Case(service('    extra_hosts: ["a:1.2.3.4\\nb:5.6.7.8"]\n'),
                                  path="services.web.extra_hosts[0]", says="is not an IP address"),
    "10-tmpfs-size-negative": Case(service("    volumes: [{type: tmpfs, target: /t, tmpfs: {size: -1}}]\n"),
                                   path="services.web.volumes[0].tmpfs.size"),
    "10-nul-in-environment": Case(service('    environment: {A: "x\\0y"}\n'), path="services.web.environment.A"),
    "10-nul-in-command": Case(service('    command: ["sh", "-c", "x\\0y"]\n'), path="services.web.command[2]", says="NUL"),
    "10-volume-name-dot-dot": Case(service('    volumes: ["data:/d"]\nvolumes:\n  data: {name: ../../etc}\n'),
                                   path="volumes.data.name"),
}

FILES = {
    "8-env-file-proc-environ": Case(files={"s.yml": service("    env_file: /proc/self/environ\n")},
                                    path="services.web.env_file"),
    "8-env-file-dev-zero": Case(files={"s.yml": service("    env_file: /dev/zero\n")}, path="services.web.env_file"),
    # A regular file the daemon may read (docs/stackfile.md), refused without quoting a line of it.
    "8-env-file-etc-shadow": Case(files={"s.yml": service("    env_file: /etc/shadow\n")},
                                  path="", says="the line is not shown"),
    "8-env-file-link-to-proc": Case(files={"s.yml": service("    env_file: environ-link\n")},
                                    path="services.web.env_file"),
    "8-env-file-over-the-size-limit": Case(files={"s.yml": service("    env_file: big.env\n")},
                                           path="services.web.env_file", says="ORCHESTRATOR_MAX_FILE_SIZE"),
    "8-secret-file-proc": Case(files={"s.yml": service("    secrets: [s]\n") + "secrets:\n  s: {file: /proc/self/environ}\n"},
                               path="secrets.s.file"),
}

NAMES = {
    "12-service-name-300-characters": Case(service("", name="a" * 300), path="services." + "a" * 300),
    "14-stack-name-with-a-newline": Case(request=("PUT", "/v1/stacks/probe%0A", {"data": service(""), "headers": YAML}),
                                         code="invalid_name", path="stack"),
    "14-stack-name-dot-dot": Case(request=("PUT", "/v1/stacks/..%2Fother", {"data": service(""), "headers": YAML}),
                                  code="invalid_name", path="stack"),
}

QUERIES = {
    "13-logs-tail-superscript": Case(request=("GET", "/v1/stacks/{stack}/services/app/logs?tail=²", {}),
                                     code="bad_request", path="tail"),
    "13-events-since-superscript": Case(request=("GET", "/v1/events?since=²", {}), code="bad_request", path="since"),
    "13-last-event-id-superscript": Case(request=("GET", "/v1/events", {"headers": {"Last-Event-ID": "²"}}),
                                         code="bad_request", path="Last-Event-ID"),
    "13-logs-flag-maybe": Case(request=("GET", "/v1/stacks/{stack}/services/app/logs?follow=maybe", {}),
                               code="bad_request", path="follow"),
}

CASES = {**LIMITS, **PARSER, **VALUES, **FILES, **NAMES, **QUERIES}


def prepare_files(base_dir: Path) -> None:
    if not (base_dir / "big.env").exists():
        (base_dir / "big.env").write_text("A=" + "x" * (1 << 20) + "\n")
        (base_dir / "environ-link").symlink_to("/proc/self/environ")


async def send(hostile: Hostile, case: Case) -> tuple[int, Any]:
    daemon = hostile.daemon
    if case.request is not None:
        method, path, kwargs = case.request
        return await daemon.request(method, path.format(stack=hostile.healthy), **kwargs)
    name = hostile.name()
    if case.files is not None:
        body = {"files": [{"name": n, "content": c} for n, c in case.files.items()], "base_dir": str(hostile.base_dir)}
        return await daemon.request("PUT", f"/v1/stacks/{name}", json=body)
    return await daemon.request("PUT", f"/v1/stacks/{name}", data=case.stack_file, headers=YAML)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_refused_with_a_clear_answer_and_nothing_changed(hostile: Hostile, case: Case) -> None:
    prepare_files(hostile.base_dir)
    _, before = await hostile.daemon.request("GET", "/v1/stacks")
    status, body = await send(hostile, case)
    answer = json.dumps(body)
    assert (status, body["error"]["code"]) == (case.status, case.code), answer[:2000]
    if case.path is not None:
        assert body["error"]["path"] == case.path, answer[:2000]
    assert case.says in body["error"]["message"], answer[:2000]
    assert "Traceback" not in answer and hostile.daemon.token not in answer and hostile.canary not in answer
    assert "root:" not in answer, "no line of /etc/shadow"
    assert len(answer) < 20_000, "an answer names the problems, it does not echo the input"
    assert (await hostile.daemon.request("GET", "/v1/stacks"))[1] == before, "nothing half-applied"


async def test_dangerous_options_are_listed_with_their_key_paths(hostile: Hostile) -> None:
    """The default policy (warn) deploys them and says so; `deny` is in unit test_stackfile_dangerous.
    No replica runs: the stack has 0 of them."""
    name = hostile.name()
    text = service("    cap_add: [SYS_ADMIN]\n    volumes: [\"/:/host\", \"/var/run/docker.sock:/var/run/docker.sock\"]\n"
                   "    deploy: {replicas: 0}\n")
    status, body = await hostile.daemon.request("PUT", f"/v1/stacks/{name}", data=text, headers=YAML)
    assert status == 201, body
    warnings = "\n".join(body["warnings"])
    for key_path in ("services.web.cap_add", "services.web.volumes[0]", "services.web.volumes[1]"):
        assert key_path in warnings, warnings
    status, body = await hostile.daemon.request("DELETE", f"/v1/stacks/{name}")
    assert status == 200, body


async def test_every_service_name_the_loader_takes_can_be_scaled_logged_and_rolled_back(hostile: Hostile) -> None:
    name = hostile.name()
    text = ("services:\n" + "".join(f"  {s}:\n    image: {BUSYBOX}\n    deploy: {{replicas: 0}}\n"
                                    for s in ("Web", "api.v2", "a" * 63)))
    status, body = await hostile.daemon.request("PUT", f"/v1/stacks/{name}", data=text, headers=YAML)
    assert status == 201, body
    for svc in ("Web", "api.v2", "a" * 63):
        status, body = await hostile.daemon.request("POST", f"/v1/stacks/{name}/scale", json={svc: 0})
        assert status == 200, (svc, body)
        status, body = await hostile.daemon.request("GET", f"/v1/stacks/{name}/services/{svc}/logs")
        assert status == 200, (svc, body)
        status, body = await hostile.daemon.request("POST", f"/v1/stacks/{name}/services/{svc}/rollback")
        assert (status, body["error"]["code"]) == (409, "conflict"), (svc, body)  # no previous version
    assert (await hostile.daemon.request("DELETE", f"/v1/stacks/{name}"))[0] == 200


async def test_the_openapi_document_states_what_the_server_accepts(hostile: Hostile) -> None:
    daemon, stack = hostile.daemon, hostile.healthy
    status, document = await daemon.request("GET", "/v1/openapi.json")
    assert status == 200
    paths = document["paths"]

    scale = paths["/v1/stacks/{stack}/scale"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    maximum = scale["additionalProperties"]["maximum"]
    status, body = await daemon.request("POST", f"/v1/stacks/{stack}/scale", json={"app": maximum + 1})
    assert (status, body["error"]["code"]) == (400, "limit_exceeded"), body
    status, _ = await daemon.request("POST", f"/v1/stacks/{stack}/scale", json={"app": 2.0})
    assert status == 200, "a whole number written as a float is an integer, as JSON Schema says"

    logs = paths["/v1/stacks/{stack}/services/{service}/logs"]["get"]["parameters"]
    follow = next(p for p in logs if p["name"] == "follow")["schema"]
    assert "" in follow["enum"]
    status = await daemon_text(daemon, f"/v1/stacks/{stack}/services/app/logs?follow=&tail=")
    assert status == 200, "empty flags are documented and accepted (false, all)"

    deploy = paths["/v1/stacks/{stack}"]["put"]["requestBody"]["content"]
    files = deploy["application/json"]["schema"]["properties"]["files"]
    assert files["minItems"] == 1 and files["items"]["properties"]["content"]["minLength"] == 1
    assert deploy["application/yaml"]["schema"]["minLength"] == 1
    for body in ({"files": []}, {"files": [{"name": "s.yml", "content": ""}]}):
        status, answer = await daemon.request("PUT", f"/v1/stacks/{hostile.name()}", json=body)
        assert status == 400, (body, answer)
    status, answer = await daemon.request("PUT", f"/v1/stacks/{hostile.name()}", data="", headers=YAML)
    assert status == 400, answer


async def daemon_text(daemon: DaemonProcess, path: str) -> int:
    """The status of a GET whose answer is not JSON (a log stream)."""
    async with aiohttp.ClientSession(headers=daemon.auth) as session:
        async with session.get(f"{daemon.url}{path}") as response:
            await response.read()
            return response.status


async def test_last_the_healthy_stack_is_untouched_and_the_daemon_holds_nothing(hostile: Hostile) -> None:
    """Runs after every case above (pytest keeps the file's order)."""
    daemon, docker = hostile.daemon, hostile.docker
    assert await running_ids(docker, hostile.healthy) == hostile.healthy_ids, "the same containers"
    _, services = await daemon.request("GET", f"/v1/stacks/{hostile.healthy}/services")
    assert [(s["replicas_running"], s["replicas_desired"]) for s in services] == [(2, 2)]

    victim = await docker.containers.get(sorted(hostile.healthy_ids)[0])
    os.kill((await victim.show())["State"]["Pid"], signal.SIGKILL)
    async with asyncio.timeout(60):
        while len(now := await running_ids(docker, hostile.healthy)) != 2 or victim.id in now:
            await asyncio.sleep(0.2)  # the killed replica is replaced
    await daemon.poll(f"/v1/stacks/{hostile.healthy}/services", lambda s: s[0]["replicas_running"] == 2)

    assert daemon.process is not None
    rss = rss_kb(daemon.process.pid)
    print(f"\ndaemon RSS: idle {hostile.idle_rss_kb // 1024} MB, after the hostile suite {rss // 1024} MB")
    assert rss < hostile.idle_rss_kb + RSS_GROWTH_BOUND_KB, (hostile.idle_rss_kb, rss)

    secrets_ = (daemon.token, hostile.canary)
    log = (daemon.state_dir / "daemon.log").read_text()
    assert not any(s in log for s in secrets_), "no secret in the daemon's log"
    assert '"locals"' not in log and "Traceback" not in log, "no traceback for a caller's mistake"
    assert [line for line in log.splitlines() if not line.startswith("{")] == []
    redis = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    try:
        entries = await redis.xrange(channels.events_stream(daemon.prefix))
    finally:
        await redis.aclose()
    events = json.dumps(entries)
    assert entries and not any(s in events for s in secrets_), "no secret in an event"
