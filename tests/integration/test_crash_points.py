"""Crash consistency, proven (issue 12): the real daemon is SIGKILLed at many points of every
operation, started again each time, and must converge with no duplicate, no orphan and no lost
stack.

The daemon reaches the engine through `CrashProxy`, which SIGKILLs it at an engine request that
changes something: before the request reaches the engine, or once the engine has answered it
(the change is made, the daemon never hears of it). One lab (a daemon, its proxy, one stack)
walks through the operations in turn: deploy, scale up, scale down, rolling update, rollback, a
replica's restart from its standby (and the preparation of a new standby), rm, deploy again over
the kept volume, rm --volumes. During each operation the daemon is killed at its first changing
request, started again at once, killed at the second changing request of that life, then the
third…: each life gets one request further through the operation and its own recovery, and dies
at a point no earlier life reached, until the operation finishes. Two labs run side by side, one
killing before the engine sees the request, one after its answer.

After each operation the lab waits until the stack is in the operation's end state and checks:
the operation took effect (replica count, spec version, stack gone after rm: nothing
acknowledged is lost or undone; an update or rollback has ended, `completed` or `rolled_back`:
a crash is no failure of it, and the next operation's own fault, the replica it kills, must not
land in its monitor period, where it would rightly count), one running container per slot and a
standby beside it,
no container, network or volume of the stack that the end state does not explain (no orphan),
the daemon's own view agrees and /v1/health answers. All along, the engine's list is sampled
for a slot held by two running containers (no duplicate, ever), and every exit of the daemon
must be one of the proxy's SIGKILLs (it never fails to start).

By default the two labs share the depths: the one killing before the request dies at the 1st,
3rd, 5th… changing request of its lives, the one killing after the answer at the 2nd, 4th, 6th…,
so together they reach every depth up to 12 with half the daemon restarts (the walk took 6
minutes of a 13-minute suite). ORCHESTRATOR_TEST_CRASH_FULL=1 walks every depth in both modes,
from the first, second and third changing request (six labs), which reach other combinations
of points.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import tempfile
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
import pytest
import redis.asyncio as aioredis

from orchestrator.labels import LABEL_SLOT, LABEL_SPEC_HASH, LABEL_STACK, LABEL_STANDBY, spec_hash
from orchestrator.stackfile import load_stack_text
from tests.integration.conftest import BUSYBOX, delete_prefixed, remove_stack_objects
from tests.integration.crash_proxy import CrashProxy, Kill
from tests.integration.daemon_process import DaemonProcess
from tests.integration.event_log import STARTED, STOPPED, StreamLog, lifecycles

pytestmark = pytest.mark.integration

FULL = os.environ.get("ORCHESTRATOR_TEST_CRASH_FULL") == "1"
#: (kill after the answer?, depth of the first life's kill, how much deeper each next life) per lab.
LABS = ([(after, first, 1) for first in (1, 2, 3) for after in (False, True)] if FULL
        else [(False, 1, 2), (True, 2, 2)])
#: The deepest kill of an operation (then it may finish in peace).
DEEPEST = 12
#: Generous: the machine is shared; a daemon that never converges fails long before it matters.
SETTLE_TIMEOUT = 90.0
#: The whole walk (about 1.5 minutes on a quiet machine, 3 minutes in a parallel suite): past it the labs are
#: stopped and cleaned up in the test's own loop, before pytest-timeout would cut it short.
BUDGET = 1500.0 if FULL else 480.0


def stack_file(version: str) -> str:
    return f"""
services:
  web:
    image: {BUSYBOX}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
    environment: {{VERSION: "{version}"}}
    volumes: ["data:/data"]
    deploy:
      replicas: 2
      restart_policy: {{condition: any, delay: 0s}}
volumes:
  data: {{}}
"""


def web_hash(version: str) -> str:
    spec = load_stack_text([("stack.yml", stack_file(version))], Path("/"), env={}, name="x")
    return spec_hash(spec.services["web"])


@dataclass(frozen=True)
class EndState:
    """What an operation leaves: `replicas` running web replicas of `version`, web's update in
    state `update`; None: the stack is gone (its named volume kept unless `volumes_removed`)."""

    replicas: int | None
    version: str = "1"
    volumes_removed: bool = False
    update: str = "none"


@dataclass
class Lab:
    """One daemon behind one CrashProxy, and the one stack it works on."""

    docker: aiodocker.Docker
    work: Path
    prefix: str
    after_answer: bool
    first: int
    step: int = 1
    stack: str = field(default_factory=lambda: f"t{secrets.token_hex(4)}")
    daemon: DaemonProcess = field(init=False)
    proxy: CrashProxy = field(init=False)
    #: Exit codes of the daemon other than the proxy's SIGKILL: must stay empty.
    bad_exits: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    #: Per operation: the kills, and the changing requests it took (recovery included).
    kills: dict[str, list[Kill]] = field(default_factory=dict)
    requests: dict[str, int] = field(default_factory=dict)
    restarts: int = 0

    def __post_init__(self) -> None:
        self.proxy = CrashProxy(str(self.work / "engine.sock"), victim=self._pid)
        self.daemon = DaemonProcess(self.work / "state", self.prefix,
                                    extra_env={"DOCKER_HOST": self.proxy.url})

    def _pid(self) -> int | None:
        process = self.daemon.process
        return process.pid if process is not None and process.returncode is None else None

    # the daemon ---------------------------------------------------------------------------
    async def revive(self) -> None:
        """Start the daemon again if it is dead (it may be killed again while it starts)."""
        while self.daemon.process is None or self.daemon.process.returncode is not None:
            if self.daemon.process is not None:
                self._judge_exit(self.daemon.process.returncode)
            self.restarts += 1
            try:
                await self.daemon.start()
            except AssertionError:  # it exited while starting: judged on the next round
                if self.daemon.process is None or self.daemon.process.returncode is None:
                    raise

    def _judge_exit(self, code: int | None) -> None:
        if code != -signal.SIGKILL:
            self.bad_exits.append(f"exit {code}: {self.daemon.log_tail(15)}")
        self.daemon.process = None

    async def request(self, method: str, path: str, **kwargs: Any) -> int | None:
        """The status, or None when the daemon died before it answered."""
        try:
            status, body = await self.daemon.request(method, path, **kwargs)
        except (aiohttp.ClientError, json.JSONDecodeError):
            return None
        assert status < 300, f"{method} {path}: {status} {body}"
        return status

    # one operation ------------------------------------------------------------------------
    async def operate(self, name: str, act: Callable[[Lab], Awaitable[None]], end: EndState) -> None:
        self.proxy.arm(after_answer=self.after_answer, first=self.first, step=self.step,
                       limit=(DEEPEST - self.first) // self.step + 1)
        before = len(self.proxy.kills)
        await self.revive()
        await act(self)
        await self.settle(end)
        self.proxy.disarm()
        self.kills[name] = self.proxy.kills[before:]
        self.requests[name] = self.proxy.count

    async def settle(self, end: EndState) -> None:
        problems: list[str] = []
        answered: list[str] = []  # the last differences the daemon was alive for
        try:
            async with asyncio.timeout(SETTLE_TIMEOUT):
                while True:
                    await self.revive()
                    problems = await self.differences(end)
                    if not problems:
                        return
                    if not problems[0].startswith("the daemon does not answer"):
                        answered = problems
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise AssertionError(
                f"{self.stack} never reached {end} (killing {'after' if self.after_answer else 'before'} "
                f"the request); still: {problems}; last seen: {answered}\n{self.daemon.log_tail(40)}"
            ) from None

    async def differences(self, end: EndState) -> list[str]:
        """What keeps the stack from `end` (empty: it is there), from the engine and the daemon."""
        label = {"label": [f"{LABEL_STACK}={self.stack}"]}
        containers = await self.docker.containers.list(all=True, filters=label)
        networks = sorted(n["Name"] for n in await self.docker.networks.list(filters=label))
        volumes = sorted(v["Name"] for v in (await self.docker.volumes.list(filters=label)).get("Volumes") or [])
        try:
            status, body = await self.daemon.request("GET", f"/v1/stacks/{self.stack}/services")
            health, _ = await self.daemon.request("GET", "/v1/health")
        except (aiohttp.ClientError, json.JSONDecodeError) as exc:
            return [f"the daemon does not answer: {exc!r}"]
        problems = [] if health == 200 else [f"health {health}"]
        kept_volume = [] if end.volumes_removed else [f"{self.stack}_data"]
        if end.replicas is None:
            if status != 404:
                problems.append(f"the daemon still knows the stack ({status})")
            if containers or networks or volumes != kept_volume:
                problems.append(f"left behind: {len(containers)} containers, {networks}, {volumes}")
            return problems
        if status != 200:
            # every kill comes at an engine change, and the record is saved before the first
            return [*problems, f"the stack is unknown to the daemon ({status}): a lost deploy"]
        (web,) = body
        if (web["replicas_desired"], web["replicas_running"]) != (end.replicas, end.replicas):
            problems.append(f"daemon says {web['replicas_running']}/{web['replicas_desired']}")
        if web["update_state"] != end.update:  # e.g. paused: a crash is no failure of the update
            problems.append(f"update {web['update_state']}: {web['update_message']}")
        if networks != [f"{self.stack}_default"] or volumes != [f"{self.stack}_data"]:
            problems.append(f"networks {networks}, volumes {volumes}")
        return problems + slot_problems(containers, end.replicas, web_hash(end.version))

    # the duplicate sampler ------------------------------------------------------------------
    async def sample_duplicates(self, stop: asyncio.Event) -> None:
        label = {"label": [f"{LABEL_STACK}={self.stack}"], "status": ["running"]}
        while not stop.is_set():
            by_slot: dict[str, list[str]] = defaultdict(list)
            for c in await self.docker.containers.list(filters=label):
                by_slot[c["Labels"][LABEL_SLOT]].append(c["Id"][:12])
            self.duplicates += [f"slot {s}: {ids}" for s, ids in by_slot.items() if len(ids) > 1]
            await asyncio.sleep(0.2)


def slot_problems(containers: list[dict[str, Any]], replicas: int, want: str) -> list[str]:
    """`replicas` slots, each with one running replica and one standby of spec `want`, and
    nothing else but exited history in those slots."""
    slots: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in containers:
        slots[c["Labels"][LABEL_SLOT]].append(c)
    running = {s for s, cs in slots.items() if any(c["State"] == "running" for c in cs)}
    problems = []
    if len(running) != replicas:
        problems.append(f"{len(running)} slots run, {replicas} wanted")
    for slot, members in sorted(slots.items()):
        if slot not in running:
            problems.append(f"slot {slot} holds {len(members)} containers but no replica (orphans)")
            continue
        live = [c for c in members if c["State"] == "running"]
        standbys = [c for c in members if c["State"] == "created" and LABEL_STANDBY in c["Labels"]]
        stuck = [c for c in members if c["State"] == "created" and LABEL_STANDBY not in c["Labels"]]
        if [c["Labels"][LABEL_SPEC_HASH] for c in live] != [want]:
            problems.append(f"slot {slot} runs {[c['Labels'][LABEL_SPEC_HASH] for c in live]}, not [{want}]")
        if [c["Labels"][LABEL_SPEC_HASH] for c in standbys] != [want]:
            problems.append(f"slot {slot} has standbys {[c['Labels'][LABEL_SPEC_HASH] for c in standbys]}")
        if stuck:
            problems.append(f"slot {slot} holds {len(stuck)} never-started containers")
    return problems


# --------------------------------------------------------------------------- the operations


def deploy(version: str) -> Callable[[Lab], Awaitable[None]]:
    async def act(lab: Lab) -> None:
        await lab.request("PUT", f"/v1/stacks/{lab.stack}", data=stack_file(version),
                          headers={"Content-Type": "application/yaml"})
    return act


def scale(replicas: int) -> Callable[[Lab], Awaitable[None]]:
    async def act(lab: Lab) -> None:
        await lab.request("POST", f"/v1/stacks/{lab.stack}/scale", json={"web": replicas})
    return act


async def rollback(lab: Lab) -> None:
    await lab.request("POST", f"/v1/stacks/{lab.stack}/services/web/rollback")


async def kill_a_replica(lab: Lab) -> None:
    """From outside (the engine's own socket): the daemon starts slot 1's standby and then
    prepares a new one."""
    label = {"label": [f"{LABEL_STACK}={lab.stack}", f"{LABEL_SLOT}=1"], "status": ["running"]}
    (replica,) = await lab.docker.containers.list(filters=label)
    await replica.kill(signal="SIGKILL")
    while (await replica.show())["State"]["Running"]:  # or the end state would hold at once
        await asyncio.sleep(0.05)


def remove(volumes: bool) -> Callable[[Lab], Awaitable[None]]:
    async def act(lab: Lab) -> None:
        await lab.request("DELETE", f"/v1/stacks/{lab.stack}", params={"volumes": str(volumes).lower()})
    return act


OPERATIONS: list[tuple[str, Callable[[Lab], Awaitable[None]], EndState]] = [
    ("deploy", deploy("1"), EndState(2)),
    ("scale up", scale(3), EndState(3)),
    ("scale down", scale(1), EndState(1)),
    ("rolling update", deploy("2"), EndState(2, "2", update="completed")),
    ("rollback", rollback, EndState(2, "1", update="rolled_back")),
    ("restart from standby", kill_a_replica, EndState(2, "1", update="rolled_back")),
    ("rm", remove(False), EndState(None)),
    ("deploy again", deploy("1"), EndState(2)),
    ("rm --volumes", remove(True), EndState(None, volumes_removed=True)),
]


async def walk(lab: Lab) -> None:
    stop = asyncio.Event()
    sampler = asyncio.create_task(lab.sample_duplicates(stop))
    await lab.proxy.start()
    try:
        for name, act, end in OPERATIONS:
            await lab.operate(name, act, end)
    finally:
        stop.set()
        await sampler
        await lab.daemon.stop()
        await lab.proxy.close()


async def run_walks(docker: aiodocker.Docker, redis_client: aioredis.Redis,
                    configs: list[tuple[bool, int, int]]) -> list[Lab]:
    """One lab per (kill after the answer?, depth of the first kill (0: never kill), step), each
    walking through OPERATIONS, two at a time; everything they made is removed after."""
    work = Path(tempfile.mkdtemp(prefix="orchestrator-crash-"))  # short: a unix socket path
    labs = [Lab(docker, work / f"{n}", f"orchestrator-test-{secrets.token_hex(4)}", after, first, step)
            for n, (after, first, step) in enumerate(configs)]
    for lab in labs:
        (lab.work / "state").mkdir(parents=True)
    try:
        async with asyncio.timeout(BUDGET):
            for pair in range(0, len(labs), 2):  # two at a time: the machine has two cores
                async with asyncio.TaskGroup() as group:  # one failing stops the other
                    for lab in labs[pair:pair + 2]:
                        group.create_task(walk(lab))
    finally:
        for lab in labs:
            await remove_stack_objects(docker, lab.stack)
            await delete_prefixed(redis_client, lab.prefix)
    for lab in labs:
        assert not lab.bad_exits, f"the daemon exited by itself: {lab.bad_exits}"
        assert not lab.duplicates, f"slots held by two running replicas: {lab.duplicates[:5]}"
    return labs


@pytest.mark.timeout(BUDGET + 120)
async def test_sigkill_at_engine_calls_of_every_operation(
    docker: aiodocker.Docker, redis_client: aioredis.Redis
) -> None:
    labs = await run_walks(docker, redis_client, LABS)
    print(report(labs))
    for after in (False, True):  # (a lab that starts deep may find a short operation too short)
        silent = [name for name, _, _ in OPERATIONS
                  if not any(lab.kills.get(name) for lab in labs if lab.after_answer == after)]
        assert not silent, f"no kill landed in {silent}: the test proves nothing there"


async def test_the_walk_without_kills_reaches_every_end_state(
    docker: aiodocker.Docker, redis_client: aioredis.Redis
) -> None:
    """The control: with no crash at all, every operation reaches its end state, so a failure
    of the test above is a crash's doing. (It once was not: the rollback's end state did not
    wait for its monitor period, and `restart from standby` killed a replica of the rollback
    2 s after it started, which paused it, rightly; crashes only made it rarer.)"""
    (lab,) = await run_walks(docker, redis_client, [(False, 0, 1)])
    assert not lab.proxy.kills
def report(labs: list[Lab]) -> str:
    """The kill points per operation, for the record (pytest -s prints it)."""
    def mode(lab: Lab) -> str:
        return f"{'after the answer' if lab.after_answer else 'before the request'} (from {lab.first}, step {lab.step})"

    lines = ["| operation | " + " | ".join(f"kills {mode(lab)}" for lab in labs) + " | changing requests |",
             "| --- |" + " ---: |" * (len(labs) + 1)]
    for name, _, _ in OPERATIONS:
        kills = " | ".join(str(len(lab.kills.get(name, []))) for lab in labs)
        requests = " / ".join(str(lab.requests.get(name)) for lab in labs)
        lines.append(f"| {name} | {kills} | {requests} |")
    if os.environ.get("ORCHESTRATOR_TEST_CRASH_VERBOSE"):
        for lab in labs:
            for name, kills in lab.kills.items():
                points = ", ".join(f"{k.count}:{k.request.split('?')[0][:60]}" for k in kills)
                lines.append(f"{mode(lab)} {name}: {points}")
    total = sum(len(k) for lab in labs for k in lab.kills.values())
    lines.append(f"\n{total} kills, {sum(lab.restarts for lab in labs)} starts of the daemon")
    return "\n".join(lines)


# --------------------------------------------------------------------------- the reported cases


async def test_sigkill_during_rm_then_the_next_start_finishes_it(
    daemon: DaemonProcess, docker: aiodocker.Docker, stack_name: str
) -> None:
    """Issue 12, point 1: killed while `rm` waits for slow stops, the daemon used to exit at
    every later start (UnknownStack for the `removing` record). It must start, and finish."""
    slow_stop = stack_file("1").replace(
        'command: ["sleep", "3600"]\n    stop_signal: SIGKILL',
        "command: [\"sh\", \"-c\", \"trap '' TERM; sleep 3600\"]\n    stop_grace_period: 5s",
    ).replace("replicas: 2", "replicas: 4")
    await daemon.deploy(stack_name, slow_stop)
    label = {"label": [f"{LABEL_STACK}={stack_name}"], "status": ["running"]}
    async with asyncio.timeout(60):
        while len(await docker.containers.list(filters=label)) < 4:
            await asyncio.sleep(0.2)
    removing = asyncio.create_task(daemon.request("DELETE", f"/v1/stacks/{stack_name}"))
    await asyncio.sleep(1.0)  # the stops are under way
    await daemon.kill()
    with contextlib.suppress(aiohttp.ClientError):
        await removing
    await daemon.start()
    status, listed = await daemon.request("GET", "/v1/stacks")
    assert status == 200, "the daemon is up"
    assert [s["state"] for s in listed if s["name"] == stack_name] in ([], ["removing"])
    async with asyncio.timeout(60):
        while (await daemon.request("GET", f"/v1/stacks/{stack_name}"))[0] != 404:
            await asyncio.sleep(0.2)
    everything = {"label": [f"{LABEL_STACK}={stack_name}"]}
    assert not await docker.containers.list(all=True, filters=everything)
    assert not await docker.networks.list(filters=everything)


async def test_replicas_stopped_on_purpose_end_shutdown_though_the_daemon_dies_after_a_stop(
    docker: aiodocker.Docker, redis_client: aioredis.Redis
) -> None:
    """A replica the daemon stops on purpose (here: `rm`) ends `shutdown`, not `failed`, even
    when the daemon is killed as soon as the engine has stopped one: the mark "stopped on
    purpose" must be on disk before the stop is sent. (Kept in memory until the end of a pass,
    it was lost, and the next daemon published `running → failed` with exit 137; a task of an
    update stopped so, say a duplicate, was a failed task of the update, which paused it.)"""
    work = Path(tempfile.mkdtemp(prefix="orchestrator-crash-"))  # short: a unix socket path
    (work / "state").mkdir()
    lab = Lab(docker, work, f"orchestrator-test-{secrets.token_hex(4)}", after_answer=True, first=1)
    stream = StreamLog(redis_client, lab.prefix)
    await lab.proxy.start()
    try:
        await lab.revive()
        await deploy("1")(lab)
        await lab.settle(EndState(2))
        lab.proxy.arm(after_answer=True, limit=1, only=b"/stop")
        await remove(False)(lab)
        await lab.settle(EndState(None))
        assert [k.request.split("?")[0].rsplit("/", 1)[-1] for k in lab.proxy.kills] == ["stop"]
        await stream.poll()
    finally:
        await lab.daemon.stop()
        await lab.proxy.close()
        await remove_stack_objects(docker, lab.stack)
        await delete_prefixed(redis_client, lab.prefix)
    assert not lab.bad_exits, lab.bad_exits
    tasks = lifecycles(stream.messages)
    assert sorted(life.slot for life in tasks.values()) == [1, 2]
    for life in tasks.values():
        # the next daemon may publish again what the killed one published last (docs/events.md)
        told = [t for n, t in enumerate(life.transitions) if n == 0 or t != life.transitions[n - 1]]
        assert told == STARTED + STOPPED, f"slot {life.slot}: {life.transitions}"


async def test_unreadable_state_files_are_set_aside_and_the_daemon_starts(
    tmp_path: Path, redis_prefix: str, redis_client: aioredis.Redis
) -> None:
    state = tmp_path / "state"
    (state / "stacks").mkdir(parents=True)
    (state / "stacks" / "shop.json").write_text('{"spec": ')
    (state / "restarts.json").write_text("[1, 2")
    (state / "tasks.json").write_text('{"tasks": {"t1": {"slot": 1}}}')
    daemon = DaemonProcess(state, redis_prefix)
    try:
        await daemon.start()
        status, body = await daemon.request("GET", "/v1/stacks")
        assert (status, body) == (200, [])
    finally:
        assert await daemon.stop() == 0
        await delete_prefixed(redis_client, redis_prefix)
    lines = [json.loads(line) for line in (state / "daemon.log").read_text().splitlines() if line.startswith("{")]
    set_aside = sorted(Path(e["path"]).name for e in lines if e["event"] == "state_file_set_aside")
    assert set_aside == ["restarts.json", "shop.json", "tasks.json"]
    assert all(e["level"] == "error" for e in lines if e["event"] == "state_file_set_aside")
    assert len(list(state.rglob("*.corrupt-*"))) == 3


async def test_a_network_the_engine_refuses_undoes_the_deploy(
    daemon: DaemonProcess, docker: aiodocker.Docker, stack_name: str
) -> None:
    """The record is saved before the networks are made: when the engine refuses one (its
    subnet is taken), a new stack is removed again and an update goes back to the old record."""
    blocker, subnet = None, ""
    for _ in range(20):  # a /24 nobody on this shared engine uses yet
        subnet = f"10.{secrets.randbelow(50) + 200}.{secrets.randbelow(250)}.0/24"
        try:
            blocker = await docker.networks.create({
                "Name": f"{stack_name}-blocker", "Labels": {LABEL_STACK: stack_name},
                "IPAM": {"Config": [{"Subnet": subnet}]}})
            break
        except aiodocker.DockerError:
            continue
    assert blocker is not None, "no free subnet found"
    refused = stack_file("1").replace(  # front is made, then back is refused
        "    volumes: [\"data:/data\"]\n", "    volumes: [\"data:/data\"]\n    networks: [front, back]\n"
    ) + f"networks:\n  front: {{}}\n  back:\n    ipam:\n      config:\n        - subnet: {subnet}\n"

    async def ours() -> list[str]:
        return sorted(n["Name"] for n in await docker.networks.list(filters={"label": [f"{LABEL_STACK}={stack_name}"]})
                      if n["Name"] != f"{stack_name}-blocker")

    status, body = await daemon.request("PUT", f"/v1/stacks/{stack_name}", data=refused)
    assert (status, body["error"]["code"]) == (502, "engine_error"), body
    async with asyncio.timeout(30):
        while (await daemon.request("GET", f"/v1/stacks/{stack_name}"))[0] != 404 or await ours():
            await asyncio.sleep(0.2)

    await daemon.deploy(stack_name, stack_file("1"))
    status, body = await daemon.request("PUT", f"/v1/stacks/{stack_name}", data=refused)
    assert status == 502, body
    status, body = await daemon.request("GET", f"/v1/stacks/{stack_name}")
    assert status == 200 and list(body["spec"]["networks"]) == ["default"], "back to the record it had"
    assert body["summary"]["state"] == "deployed"
