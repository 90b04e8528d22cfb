"""The reconciler against Docker Swarm and against the engine's own floor, measured in one run.

    .venv/bin/python benchmarks/bench_reconciler.py [--replicas 1,10,50,100] [--kills 24]
                                                     [--idle 30] [--no-swarm]
                                                     [--only converge|replacement|scale]

Our daemon runs as users run it (`python -m orchestrator daemon`, its own state dir, port and
Redis prefix); Swarm is a single-node swarm (`docker swarm init --advertise-addr 127.0.0.1` when
the engine is not in one yet: the swarm is left as it was found). Every replica is the test image
`orchestrator-test/busybox:latest` running `sleep 3600` (stop signal SIGKILL, so that a stop does
not wait out a grace period that busybox-as-PID-1 would never cut short).

- converge: from the deploy (PUT / `docker stack deploy`) to the engine's `start` event of the
  N-th replica; floor: N `docker run -d` of the same container, all at once.
- replacement (after every slot of ours has its standby): a replica's main process is SIGKILLed from the host; from its `die` event to the
  `start` event of the replacement in the same slot (engine timeNano). Each kill hits a different
  replica that has never been restarted, so our default backoff restarts at once; Swarm has
  `restart_policy.delay: 0s`; the floor is the engine restarting the same container in place
  (`docker run --restart on-failure`; a `docker kill` would count as a manual stop and not restart).
- scale 10→50→10: from the first scale call to the `die` of the 40th surplus replica, split into
  the scale-up (call → first `create`, → 40th `start`, → the system reports 50 running) and the
  scale-down (call → first `die`, → 40th `die`). Floor: the same 40 containers (on a network,
  with the service alias) started by 40 parallel `docker run -d` beside 10 running ones, then one
  `docker rm -f` of the 40 (the CLI removes them in parallel): the engine's own cost of adding
  and dropping 40 replicas, with nothing deciding, stopping gracefully or reporting.
- idle: the daemon's RSS (VmRSS) and CPU (utime+stime) while 100 replicas run and nothing happens.

Progress goes to stderr, the markdown table to stdout. Everything created is labelled or named with
a random tag and removed at the end. Nothing is installed: a missing image is an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator import labels  # noqa: E402
from tests.integration.daemon_process import DaemonProcess  # noqa: E402

IMAGE = "orchestrator-test/busybox:latest"
OUR_STACK_LABEL = labels.LABEL_STACK
STANDBY_LABEL = labels.LABEL_STANDBY
SWARM_STACK_LABEL = "com.docker.stack.namespace"
SWARM_TASK_LABEL = "com.docker.swarm.task.name"
FLOOR_LABEL = "orchestrator-bench.floor"
#: The scale floor's containers carry their group in FLOOR_LABEL and the run's tag here.
FLOOR_TAG_LABEL = "orchestrator-bench.floor-run"
SERVICE = "b"
WAIT = 180.0  # the longest any single phase may take before the run is declared failed


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- engine events


@dataclass(frozen=True, slots=True)
class Seen:
    action: str
    id: str
    time_ns: int
    attributes: dict[str, str]


class EventLog:
    """`docker events` (container start/die) in a subprocess, kept in order for waits to scan."""

    def __init__(self, actions: Sequence[str] = ("create", "start", "die")) -> None:
        self.actions = tuple(actions)
        self.events: list[Seen] = []
        self._changed = asyncio.Condition()
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        #: Why the stream ended, if it did: a wait then fails at once instead of timing out.
        self._ended: str | None = None

    async def start(self) -> None:
        since = f"{time.time() - 1:.3f}"  # replay covers the moment before the stream connects
        self._process = await asyncio.create_subprocess_exec(
            "docker", "events", "--since", since, "--format", "{{json .}}",
            "--filter", "type=container", *(f"--filter=event={action}" for action in self.actions),
            stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        try:
            async for line in self._process.stdout:
                raw = json.loads(line)
                actor = raw.get("Actor") or {}
                seen = Seen(raw["Action"], actor.get("ID", ""), int(raw["timeNano"]), actor.get("Attributes") or {})
                async with self._changed:
                    self.events.append(seen)
                    self._changed.notify_all()
            self._ended = "`docker events` exited"
        except Exception as exc:
            self._ended = f"reading `docker events` failed: {exc!r}"
        async with self._changed:
            self._changed.notify_all()

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.terminate()
            await self._process.wait()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)

    def mark(self) -> int:
        return len(self.events)

    async def wait(self, match: Callable[[Seen], bool], since: int, count: int = 1) -> list[Seen]:
        """The first `count` events (distinct containers) after index `since` that `match`.
        Each event is looked at once (a wait for 1,000 starts must not rescan the log per event)."""
        found: dict[str, Seen] = {}
        async with asyncio.timeout(WAIT), self._changed:
            while True:
                for seen in self.events[since:]:
                    if match(seen) and seen.id not in found:
                        found[seen.id] = seen
                        if len(found) == count:
                            return list(found.values())
                since = len(self.events)
                if self._ended is not None:
                    raise RuntimeError(f"{self._ended}; {len(found)} of {count} events seen")
                await self._changed.wait()


def started_in(label: str, value: str) -> Callable[[Seen], bool]:
    return lambda e: e.action == "start" and e.attributes.get(label) == value


def died_in(label: str, value: str) -> Callable[[Seen], bool]:
    return lambda e: e.action == "die" and e.attributes.get(label) == value


def created_in(label: str, value: str) -> Callable[[Seen], bool]:
    return lambda e: e.action == "create" and e.attributes.get(label) == value


# --------------------------------------------------------------------------- helpers


async def run(*argv: str, check: bool = True) -> str:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await process.communicate()
    if check and process.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {err.decode().strip()}")
    return out.decode()


async def ids_with(label: str, value: str, *, running_only: bool = True) -> list[str]:
    extra = () if running_only else ("-a",)
    out = await run("docker", "ps", "-q", "--no-trunc", *extra, "--filter", f"label={label}={value}")
    return out.split()


async def kill_main_process(container_id: str) -> None:
    """SIGKILL from the host, as a crash: the engine sees an exit it did not cause."""
    pid = int((await run("docker", "inspect", "-f", "{{.State.Pid}}", container_id)).strip())
    os.kill(pid, 9)


def percentile(samples: Sequence[float], q: int) -> float:
    if len(samples) == 1:
        return samples[0]
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


def seconds_since(start_ns: int, seen: list[Seen]) -> float:
    return (max(e.time_ns for e in seen) - start_ns) / 1e9


# --------------------------------------------------------------------------- the three systems


def stack_yaml(replicas: int, *, swarm: bool) -> str:
    restart = "      restart_policy:\n        delay: 0s\n" if swarm else ""
    return (
        f"version: \"3.8\"\nservices:\n  {SERVICE}:\n    image: {IMAGE}\n"
        f"    command: [\"sleep\", \"3600\"]\n    stop_signal: SIGKILL\n"
        f"    deploy:\n      replicas: {replicas}\n{restart}"
    )


@dataclass
class Ours:
    """The daemon in its own process; stacks are named `<tag>o<n>`."""

    tag: str
    events: EventLog
    name: str = "ours"
    #: Another source tree to run the daemon from (--baseline); None: this one.
    source: Path | None = None
    daemon: DaemonProcess = field(init=False)

    async def start(self, state_dir: Path) -> None:
        # PYTHONSAFEPATH: the working directory's `orchestrator` must not shadow PYTHONPATH's.
        env = {} if self.source is None else {"PYTHONSAFEPATH": "1", "PYTHONPATH": str(self.source)}
        self.daemon = DaemonProcess(state_dir=state_dir, prefix=f"{self.tag}{self.name}", extra_env=env)
        await self.daemon.start()
        say(f"{self.name} daemon started (pid {self.pid}, {self.daemon.url}, source {self.source or 'here'})")

    @property
    def pid(self) -> int:
        assert self.daemon.process is not None
        return self.daemon.process.pid

    async def deploy(self, stack: str, replicas: int) -> float:
        mark, start_ns = self.events.mark(), time.time_ns()
        await self.daemon.deploy(stack, stack_yaml(replicas, swarm=False))
        seen = await self.events.wait(started_in(OUR_STACK_LABEL, stack), mark, replicas)
        return seconds_since(start_ns, seen)

    async def scale(self, stack: str, replicas: int) -> None:
        status, body = await self.daemon.request("POST", f"/v1/stacks/{stack}/scale", json={SERVICE: replicas})
        assert status < 300, body

    async def wait_reported(self, stack: str, replicas: int) -> None:
        """Until `GET /v1/stacks` says `replicas` are running."""
        async with asyncio.timeout(WAIT):
            while True:
                _, stacks = await self.daemon.request("GET", "/v1/stacks")
                if any(s["name"] == stack and s["replicas_running"] == replicas for s in stacks):  # type: ignore[union-attr]
                    return
                await asyncio.sleep(0.1)

    async def remove(self, stack: str) -> None:
        status, body = await self.daemon.request("DELETE", f"/v1/stacks/{stack}")
        if status >= 300 and status != 404:  # e.g. the engine's stale endpoint count on a network
            say(f"warning: removing {stack} failed: {body}")

    def slot(self, seen: Seen) -> str | None:
        return f"{seen.attributes.get(OUR_STACK_LABEL)}/{seen.attributes.get('orchestrator.slot')}"

    async def wait_standbys(self, stack: str, count: int, timeout: float = 15.0) -> None:
        """Until every slot has its standby (docs/standby.md); a daemon that makes none (an
        older one, measured for comparison) is waited for `timeout` seconds."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    out = await run("docker", "ps", "-aq", "--filter", f"label={OUR_STACK_LABEL}={stack}",
                                    "--filter", f"label={STANDBY_LABEL}=1", "--filter", "status=created")
                    if len(out.split()) >= count:
                        say(f"{count} standbys ready")
                        return
                    await asyncio.sleep(0.2)
        say("no standbys (within the timeout)")

    async def stop(self, keep_log: Path | None = None) -> None:
        with contextlib.suppress(Exception):
            await self.daemon.stop()
        if keep_log is not None:
            shutil.copy(self.daemon.state_dir / "daemon.log", keep_log)
        async with aioredis.Redis() as redis:
            keys = [k async for k in redis.scan_iter(f"{self.daemon.prefix}:*")]
            if keys:
                await redis.delete(*keys)


@dataclass
class Swarm:
    tag: str
    events: EventLog
    files: Path
    initialised_here: bool = False

    async def start(self) -> None:
        state = (await run("docker", "info", "--format", "{{.Swarm.LocalNodeState}}")).strip()
        if state == "inactive":
            await run("docker", "swarm", "init", "--advertise-addr", "127.0.0.1")
            self.initialised_here = True
            say("swarm initialised (single node); it is left again at the end")
        elif state != "active":
            raise RuntimeError(f"the engine's swarm is {state!r}: neither inactive nor active")

    async def deploy(self, stack: str, replicas: int) -> float:
        path = self.files / f"{stack}.yml"
        path.write_text(stack_yaml(replicas, swarm=True))
        mark, start_ns = self.events.mark(), time.time_ns()
        await run("docker", "stack", "deploy", "-c", str(path), stack)
        seen = await self.events.wait(started_in(SWARM_STACK_LABEL, stack), mark, replicas)
        return seconds_since(start_ns, seen)

    async def scale(self, stack: str, replicas: int) -> None:
        await run("docker", "service", "scale", "-d", f"{stack}_{SERVICE}={replicas}")

    async def wait_reported(self, stack: str, replicas: int) -> None:
        """Until `docker service ls` says `replicas/replicas`."""
        async with asyncio.timeout(WAIT):
            while True:
                out = await run("docker", "service", "ls", "--format", "{{.Replicas}}",
                                "--filter", f"name={stack}_{SERVICE}")
                if out.strip() == f"{replicas}/{replicas}":
                    return
                await asyncio.sleep(0.2)

    async def remove(self, stack: str) -> None:
        await run("docker", "stack", "rm", stack, check=False)
        async with asyncio.timeout(WAIT):  # the swarm removes asynchronously
            while await ids_with(SWARM_STACK_LABEL, stack, running_only=False):
                await asyncio.sleep(0.5)

    def slot(self, seen: Seen) -> str | None:
        name = seen.attributes.get(SWARM_TASK_LABEL, "")  # <stack>_<service>.<slot>.<task id>
        return name.rsplit(".", 1)[0] if name.count(".") >= 2 else None

    async def stop(self) -> None:
        if self.initialised_here:
            await run("docker", "swarm", "leave", "--force", check=False)
            say("swarm left")


@dataclass
class Floor:
    """Plain `docker run -d` containers on a bridge network of their own."""

    tag: str
    events: EventLog

    @property
    def network(self) -> str:
        return f"{self.tag}_floor"

    async def start(self) -> None:
        await run("docker", "network", "create", "--label", f"{FLOOR_LABEL}={self.tag}", self.network)

    async def converge(self, replicas: int, *restart: str) -> float:
        mark, start_ns = self.events.mark(), time.time_ns()
        await asyncio.gather(*(
            run("docker", "run", "-d", *restart, "--network", self.network,
                "--label", f"{FLOOR_LABEL}={self.tag}", IMAGE, "sleep", "3600")
            for _ in range(replicas)
        ))  # fmt: skip
        seen = await self.events.wait(started_in(FLOOR_LABEL, self.tag), mark, replicas)
        return seconds_since(start_ns, seen)

    async def scale(self) -> ScaleTimes:
        """10 running, then 40 more `docker run -d` at once, then one `docker rm -f` of the 40."""
        base, surplus = f"{self.tag}-base", f"{self.tag}-surplus"
        await self._run_many(10, base)
        mark, start_ns = self.events.mark(), time.time_ns()
        await self._run_many(40, surplus)
        created = await self.events.wait(created_in(FLOOR_LABEL, surplus), mark, 1)
        started = await self.events.wait(started_in(FLOOR_LABEL, surplus), mark, 40)
        reported_ns = time.time_ns()  # every `docker run -d` has returned and every start is seen
        mark, down_ns = self.events.mark(), time.time_ns()
        await run("docker", "rm", "-f", *await ids_with(FLOOR_LABEL, surplus))
        died = await self.events.wait(died_in(FLOOR_LABEL, surplus), mark, 40)
        await self.remove()
        return ScaleTimes.of(start_ns, created, started, reported_ns, down_ns, died)

    async def _run_many(self, count: int, value: str) -> None:
        await asyncio.gather(*(
            run("docker", "run", "-d", "--network", self.network, "--network-alias", SERVICE,
                "--label", f"{FLOOR_LABEL}={value}", "--label", f"{FLOOR_TAG_LABEL}={self.tag}",
                IMAGE, "sleep", "3600")
            for _ in range(count)
        ))  # fmt: skip

    async def remove(self) -> None:
        found = await ids_with(FLOOR_LABEL, self.tag, running_only=False)
        found += await ids_with(FLOOR_TAG_LABEL, self.tag, running_only=False)
        if found:
            await run("docker", "rm", "-f", *found, check=False)

    async def stop(self) -> None:
        await self.remove()
        await run("docker", "network", "rm", self.network, check=False)


# --------------------------------------------------------------------------- the measurements


@dataclass(frozen=True, slots=True)
class ScaleTimes:
    """Seconds of one 10→50→10: `up_*` from the call to 50, `down_*` from the call to 10."""

    up_first_create: float
    up_started: float  # the 40th new replica's `start`
    up_reported: float  # the system itself says 50 are running
    down_first_die: float
    down: float  # the 40th surplus replica's `die`
    total: float  # from the call to 50 to the 40th `die`

    @classmethod
    def of(
        cls, up_ns: int, created: list[Seen], started: list[Seen], reported_ns: int, down_ns: int, died: list[Seen]
    ) -> ScaleTimes:
        return cls(
            up_first_create=(min(e.time_ns for e in created) - up_ns) / 1e9,
            up_started=seconds_since(up_ns, started),
            up_reported=(reported_ns - up_ns) / 1e9,
            down_first_die=(min(e.time_ns for e in died) - down_ns) / 1e9,
            down=seconds_since(down_ns, died),
            total=seconds_since(up_ns, died),
        )


@dataclass
class Results:
    converge: dict[int, dict[str, list[float]]] = field(default_factory=dict)
    replacement: dict[str, list[float]] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    #: Every run of each system (the table shows the median of each figure).
    scale_parts: dict[str, list[ScaleTimes]] = field(default_factory=dict)
    idle_cpu_percent: float | None = None
    idle_rss_mb: float | None = None
    idle_seconds: float = 0.0


async def measure_converge(
    ours: Ours, swarm: Swarm | None, floor: Floor, replicas: int, rounds: int, results: Results, idle: float
) -> None:
    """`rounds` times each system, in a rotating order: drift in the machine's load hits all alike."""
    row = results.converge.setdefault(replicas, {})

    async def run_floor() -> None:
        row.setdefault("floor", []).append(await floor.converge(replicas))
        await floor.remove()

    async def run_ours(round_: int) -> None:
        stack = f"{ours.tag}o{replicas}r{round_}"
        row.setdefault("ours", []).append(await ours.deploy(stack, replicas))
        if replicas >= 100 and idle > 0 and results.idle_cpu_percent is None:
            await ours.wait_standbys(stack, replicas, timeout=60)  # their creates are not idle
            await measure_idle(ours, idle, results)
        await ours.remove(stack)

    async def run_swarm(round_: int) -> None:
        assert swarm is not None
        stack = f"{swarm.tag}s{replicas}r{round_}"
        row.setdefault("swarm", []).append(await swarm.deploy(stack, replicas))
        await swarm.remove(stack)

    for round_ in range(rounds):
        order = [run_floor, lambda: run_ours(round_)] + ([lambda: run_swarm(round_)] if swarm else [])
        shift = round_ % len(order)
        for step in order[shift:] + order[:shift]:
            await step()
        say(f"converge {replicas} round {round_ + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in row.items()))


async def measure_idle(ours: Ours, seconds: float, results: Results) -> None:
    """CPU and RSS of the daemon while its replicas run and nothing happens."""
    await asyncio.sleep(3)  # let the last passes and publishes settle
    ticks = os.sysconf("SC_CLK_TCK")
    before = _cpu_ticks(ours.pid)
    await asyncio.sleep(seconds)
    used = (_cpu_ticks(ours.pid) - before) / ticks
    results.idle_cpu_percent = 100 * used / seconds
    results.idle_rss_mb = _rss_kb(ours.pid) / 1024
    results.idle_seconds = seconds
    say(f"idle {seconds:.0f} s: cpu {results.idle_cpu_percent:.2f} %, rss {results.idle_rss_mb:.1f} MB")


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@dataclass
class Target:
    """A system whose replicas are killed: where its replicas are and how a slot is named."""

    name: str
    ids: list[str]
    #: The slot an event's container fills, unique across systems (the floor's: the container).
    slot: Callable[[Seen], str | None]


async def measure_replacement(
    ours: Ours, swarm: Swarm | None, floor: Floor, kills: int, results: Results
) -> None:
    stack = f"{ours.tag}or"
    await ours.deploy(stack, kills)
    await ours.wait_standbys(stack, kills)
    targets = [Target("ours", await ids_with(OUR_STACK_LABEL, stack), ours.slot)]
    await floor.converge(kills, "--restart", "on-failure")
    targets.append(Target("floor", await ids_with(FLOOR_LABEL, floor.tag), lambda e: e.id))
    if swarm is not None:
        swarm_stack = f"{swarm.tag}sr"
        await swarm.deploy(swarm_stack, kills)
        targets.append(Target("swarm", await ids_with(SWARM_STACK_LABEL, swarm_stack), swarm.slot))
    say(f"replacement: {kills} kills each, interleaved over {[t.name for t in targets]}")
    for index in range(kills):  # interleaved, so that drift in machine load hits every system alike
        for target in targets:
            sample = await _kill_one(ours.events, target, target.ids[index])
            results.replacement.setdefault(target.name, []).append(sample)
        await asyncio.sleep(0.3)
    for name, samples in results.replacement.items():
        say(f"replacement {name}: p50 {percentile(samples, 50):.0f} ms, p95 {percentile(samples, 95):.0f} ms")
    await ours.remove(stack)
    await floor.remove()
    if swarm is not None:
        await swarm.remove(swarm_stack)


async def _kill_one(events: EventLog, target: Target, container_id: str) -> float:
    """Milliseconds from the replica's `die` to the `start` of whatever replaces it in its slot."""
    mark = events.mark()
    await kill_main_process(container_id)
    (died,) = await events.wait(lambda e: e.action == "die" and e.id == container_id, mark)
    slot = target.slot(died)
    (started,) = await events.wait(
        lambda e: e.action == "start" and e.time_ns >= died.time_ns and target.slot(e) == slot, mark
    )
    return (started.time_ns - died.time_ns) / 1e6


async def measure_scale(
    ours: Sequence[Ours], swarm: Swarm | None, floor: Floor, rounds: int, results: Results
) -> None:
    """10 → 50 (until the system itself reports 50 running, as a user would wait) → 10,
    `rounds` times each system in a rotating order; the table shows medians."""
    steps: list[tuple[str, Callable[[int], Awaitable[ScaleTimes | None]]]] = [
        (o.name, lambda r, o=o: _scale_system(o, f"{o.tag}{o.name[0]}s{r}", OUR_STACK_LABEL)) for o in ours
    ]
    if swarm is not None:
        steps.append(("swarm", lambda r: _scale_system(swarm, f"{swarm.tag}ss{r}", SWARM_STACK_LABEL)))
    steps.append(("floor", lambda _r: floor.scale()))
    for round_ in range(rounds):
        shift = round_ % len(steps)
        for name, step in steps[shift:] + steps[:shift]:
            parts = await step(round_)
            if parts is None:
                say(f"scale 10→50→10: {name} did not finish within {WAIT:.0f} s")
                continue
            results.scale_parts.setdefault(name, []).append(parts)
            say(f"scale 10→50→10 round {round_ + 1}: {name} {parts.total:.2f} s ({_split(parts)})")
    for name, runs in results.scale_parts.items():
        results.scale[name] = statistics.median(t.total for t in runs)


async def _scale_system(system: Ours | Swarm, stack: str, label: str) -> ScaleTimes | None:
    events = system.events
    await system.deploy(stack, 10)
    await system.wait_reported(stack, 10)
    mark, start_ns = events.mark(), time.time_ns()
    try:
        await system.scale(stack, 50)
        created = await events.wait(created_in(label, stack), mark, 1)
        started = await events.wait(started_in(label, stack), mark, 40)
        await system.wait_reported(stack, 50)
        reported_ns = time.time_ns()
        mark, down_ns = events.mark(), time.time_ns()
        await system.scale(stack, 10)
        died = await events.wait(died_in(label, stack), mark, 40)
        return ScaleTimes.of(start_ns, created, started, reported_ns, down_ns, died)
    except TimeoutError:
        return None
    finally:
        await system.remove(stack)


def _split(t: ScaleTimes) -> str:
    return (f"up: first create {t.up_first_create:.2f}, 40 started {t.up_started:.2f}, reported {t.up_reported:.2f}; "
            f"down: first die {t.down_first_die:.2f}, 40 died {t.down:.2f}")


# --------------------------------------------------------------------------- the table


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a is not None and b else "–"


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("yes" if ok else "**no**")


#: The split rows of the scale measure: (label, ScaleTimes field).
_SCALE_SPLIT = (
    ("↳ up: call → first create", "up_first_create"),
    ("↳ up: call → 40th start", "up_started"),
    ("↳ up: call → reports 50 running", "up_reported"),
    ("↳ down: call → first die", "down_first_die"),
    ("↳ down: call → 40th die", "down"),
)


def _scale_split_rows(parts: dict[str, list[ScaleTimes]]) -> list[str]:
    lines = []
    for label, name in _SCALE_SPLIT:
        o, s, f = (statistics.median(getattr(t, name) for t in parts[k]) if k in parts else None
                   for k in ("ours", "swarm", "floor"))
        lines.append(f"| {label} (s) | {fmt(o)} | {fmt(s)} | {fmt(f)} | {ratio(o, s)} | {ratio(o, f)} |  | – |")
    return lines


def table(results: Results, rounds: int) -> str:
    lines = [
        "| measure | ours | Swarm | floor | ours/Swarm | ours/floor | goal | met |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for n, samples in sorted(results.converge.items()):
        o, s, f = (statistics.median(samples[k]) if samples.get(k) else None for k in ("ours", "swarm", "floor"))
        goal, met = "", "–"
        if n == max(results.converge):
            goal = "≤ 0.33× Swarm, ≤ 1.2× floor"
            met = verdict((s is None or o <= s / 3) and o <= 1.2 * f if o and f else None)
        lines.append(f"| converge {n} replica{'s' if n > 1 else ''} (s) | {fmt(o)} | {fmt(s)} | {fmt(f)} "
                     f"| {ratio(o, s)} | {ratio(o, f)} | {goal} | {met} |")
    rep = results.replacement
    for q in (50, 95):
        o, s, f = (percentile(rep[k], q) if rep.get(k) else None for k in ("ours", "swarm", "floor"))
        goal, met = "", "–"
        if q == 50 and o is not None and f is not None:
            goal = "≤ 1× in place, ≤ 0.5× Swarm"
            met = verdict(o <= f and (s is None or o <= s / 2))
        lines.append(f"| replacement p{q}, die → start (ms) | {fmt(o, 0)} | {fmt(s, 0)} | {fmt(f, 0)} "
                     f"| {ratio(o, s)} | {ratio(o, f)} | {goal} | {met} |")
    o, s, f = (results.scale.get(k) for k in ("ours", "swarm", "floor"))
    if o is not None or s is not None:
        met = verdict(o <= 0.4 * s if o is not None and s is not None else None)
        lines.append(f"| scale 10→50→10 (s) | {fmt(o)} | {fmt(s)} | {fmt(f)} | {ratio(o, s)} | {ratio(o, f)} "
                     f"| ≤ 0.4× Swarm | {met} |")
        lines += _scale_split_rows(results.scale_parts)
    b = results.scale.get("baseline")
    if b is not None:
        lines.append(f"| scale 10→50→10, --baseline daemon (s) | {fmt(b)} | {fmt(s)} | {fmt(f)} | {ratio(b, s)} "
                     f"| {ratio(b, f)} | ours/baseline {ratio(o, b)} | – |")
    cpu, rss = results.idle_cpu_percent, results.idle_rss_mb
    lines.append(f"| daemon CPU, 100 replicas idle {results.idle_seconds:.0f} s (% of a core) | {fmt(cpu)} "
                 f"| – | – | – | – | near 0 (< 0.5 %) | {verdict(cpu < 0.5 if cpu is not None else None)} |")
    lines.append(f"| daemon RSS, same moment (MB) | {fmt(rss, 1)} | – | – | – | – | < 100 MB "
                 f"| {verdict(rss < 100 if rss is not None else None)} |")
    footnote = (f"\nConverge: median of {rounds} rounds. floor: converge = N parallel `docker run -d`; replacement = the engine restarting the "
                f"same container in place (`--restart on-failure`); scale = 40 parallel `docker run -d` "
                f"beside 10 running, then one `docker rm -f` of the 40. Replacement samples: "
                f"{', '.join(f'{k} {len(v)}' for k, v in sorted(rep.items()))}.")
    return "\n".join(lines) + "\n" + footnote


# --------------------------------------------------------------------------- main


async def preflight() -> None:
    if shutil.which("docker") is None:
        raise SystemExit("the docker CLI is needed")
    try:
        await run("docker", "image", "inspect", IMAGE)
    except RuntimeError:
        raise SystemExit(f"{IMAGE} is missing: build it with scripts/setup (this script installs nothing)") from None


@contextlib.asynccontextmanager
async def systems(args: argparse.Namespace) -> AsyncIterator[tuple[Ours, Swarm | None, Floor, list[Ours]]]:
    tag = f"rb{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix="bench-reconciler-"))
    events = EventLog()
    await events.start()
    ours, floor = Ours(tag, events), Floor(tag, events)
    others = [Ours(tag, events, "baseline", args.baseline.resolve())] if args.baseline else []
    swarm = None if args.no_swarm else Swarm(tag, events, work)
    try:
        await floor.start()
        if swarm is not None:
            await swarm.start()
        await ours.start(work / "state")
        for other in others:
            await other.start(work / f"state-{other.name}")
        yield ours, swarm, floor, others
    finally:
        say("cleaning up")
        for stack in await _our_stacks(tag):
            with contextlib.suppress(Exception):
                await ours.remove(stack)
        await ours.stop(args.keep_log)
        for other in others:
            await other.stop()
        await _remove_tagged(tag)
        if swarm is not None:
            for stack in (await run("docker", "stack", "ls", "--format", "{{.Name}}", check=False)).split():
                if stack.startswith(tag):
                    await swarm.remove(stack)
            await swarm.stop()
        await floor.stop()
        await events.stop()
        shutil.rmtree(work, ignore_errors=True)


async def _our_stacks(tag: str) -> list[str]:
    out = await run("docker", "ps", "-a", "--format", f"{{{{.Label \"{OUR_STACK_LABEL}\"}}}}",
                    "--filter", f"label={OUR_STACK_LABEL}", check=False)
    return sorted({name for name in out.split() if name.startswith(tag)})


async def _remove_tagged(tag: str) -> None:
    """Whatever of ours the daemon left (a failed run): containers and networks of our stacks."""
    for stack in await _our_stacks(tag):
        found = await ids_with(OUR_STACK_LABEL, stack, running_only=False)
        if found:
            await run("docker", "rm", "-f", *found, check=False)
    out = await run("docker", "network", "ls", "-q", "--filter", f"name={tag}", check=False)
    for network in out.split():
        await run("docker", "network", "rm", network, check=False)


async def main(args: argparse.Namespace) -> None:
    await preflight()
    results = Results()
    started = time.monotonic()
    async with systems(args) as (ours, swarm, floor, others):
        for replicas in args.replicas:
            await measure_converge(ours, swarm, floor, replicas, args.rounds, results, args.idle)
        if args.kills:
            await measure_replacement(ours, swarm, floor, args.kills, results)
        if args.scale:
            await measure_scale([ours, *others], swarm, floor, args.scale_rounds, results)
    say(f"done in {time.monotonic() - started:.0f} s")
    print(table(results, args.rounds))
    if args.json:
        args.json.write_text(json.dumps(figures(results)))


def figures(results: Results) -> dict[str, object]:
    """The table's figures, machine-readable (benchmarks/run collects them)."""
    def median(samples: list[float] | None) -> float | None:
        return statistics.median(samples) if samples else None

    return {
        "converge": {str(n): {k: median(row.get(k)) for k in ("ours", "swarm", "floor")}
                     for n, row in results.converge.items()},
        "replacement_ms": {k: {"p50": percentile(v, 50), "p95": percentile(v, 95)}
                           for k, v in results.replacement.items() if v},
        "scale": dict(results.scale),
        "scale_split": {k: {f: statistics.median(getattr(t, f) for t in v) for _, f in _SCALE_SPLIT}
                        for k, v in results.scale_parts.items()},
        "idle": {"cpu_percent": results.idle_cpu_percent, "rss_mb": results.idle_rss_mb,
                 "seconds": results.idle_seconds},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=lambda s: [int(n) for n in s.split(",") if n], default=[1, 10, 50, 100])
    parser.add_argument("--kills", type=int, default=24, help="replicas killed per system (0: skip)")
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle measurement at 100 replicas")
    parser.add_argument("--no-scale", dest="scale", action="store_false")
    parser.add_argument("--scale-rounds", type=int, default=1, help="scale rounds (median), systems interleaved")
    parser.add_argument("--baseline", type=Path, metavar="DIR",
                        help="also scale with a daemon run from this source tree (e.g. a worktree of main), "
                             "interleaved with ours: a before/after in the same run")
    parser.add_argument("--rounds", type=int, default=2, help="converge rounds (median), systems interleaved")
    parser.add_argument("--no-swarm", action="store_true", help="skip Swarm (quick runs)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    parser.add_argument("--keep-log", type=Path, help="copy the daemon's log here at the end")
    parser.add_argument("--only", choices=["converge", "replacement", "scale"],
                        help="run only this part (converge includes idle at 100 replicas)")
    parsed = parser.parse_args()
    if parsed.only is not None:
        parsed.replicas = parsed.replicas if parsed.only == "converge" else []
        parsed.kills = parsed.kills if parsed.only == "replacement" else 0
        parsed.scale = parsed.only == "scale"
    asyncio.run(main(parsed))
