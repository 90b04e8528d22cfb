"""The daemon at scale (issue 18): each figure beside the engine's floor, measured in one run.

    .venv/bin/python benchmarks/bench_scale.py [--sizes 10,100,1000] [--kills 10]
        [--fair 500] [--storm 100,500] [--stacks 200x5] [--sweep 100] [--only PART ...]

The daemon runs as users run it (`python -m orchestrator daemon`, own state dir, port and Redis
prefix); every replica is `orchestrator-test/busybox:latest` running `sleep 3600` with
`stop_signal: SIGKILL` (the smallest image: the engine's work per container, not the image's).
Times come from the engine's own events (`docker events`, timeNano). Parts, in this order:

- sizes (per N of --sizes, smallest first; all stacks stay up until `rm`):
  converge: PUT → the N-th `start`. Floor: the same N containers made as `docker run -d` does
  (create, then start, through the engine API: no CLI process per container) with at most
  `concurrency` (the daemon's creation bound: ORCHESTRATOR_CONCURRENCY or its default) in
  flight, on a bridge network of their own.
  Then the daemon's standbys (docs/standby.md) are waited for and counted: they come after the
  N-th start, so they are off the converge's critical path.
- replacement: one replica SIGKILLed from the host in each size's stack in turn (interleaved,
  --kills rounds): `die` → `start` in its slot, p50 per size; and the daemon's CPU (utime+stime)
  from the kill to 1 s after the replacement started (its standby made again included), per
  replacement and size.
- idle at the largest size: daemon CPU over --idle s, RSS, the state files' sizes, the Redis
  stream's length and memory.
- scale N → 0 → N at the largest size: call → the last of the stack's containers destroyed,
  then call → the N-th `start`. Floor: `docker rm -f` of the floor's N running containers plus
  as many created-only ones as we had standbys, then N `docker run -d` again (the same bound).
- rm per size: `DELETE /v1/stacks/…` until it answers and no container of the stack is left.
  Floor: `docker rm -f` of N running and S created-only containers (S: our standbys then).
  `--only rm` measures these rows alone (each size deployed and its standbys made first).
- sweep (at --sweep replicas): the floor converge with 4/8/16/32/64 in flight: the engine's
  own limit, which tells what creation bound is worth having.
- fairness (--fair replicas): on an idle daemon, a 1-replica stack's deploy (PUT → start) and a
  replacement (die → start) in a 5-replica stack; then the same 3 s into the converge of a
  --fair-replica stack, --fair-rounds times (medians). Also: how many of the big stack's creates
  came before the small stack's create (event order).
- storm: a crash-looping service of A replicas (`exit 1` after 1 s, default backoff) deployed
  beside a converged B-replica stack (--storm A,B): replacement of B's replicas before and
  during the storm, daemon CPU, the storm's starts (backoff holds), stream length vs its cap.
- stacks (--stacks SxR): S stacks of R replicas deployed (8 PUTs at a time) until every replica
  started; one replica killed in each at once until all are replaced, and the engine calls that
  cost per replacement (`orchestrator_engine_calls_total`); idle CPU and RSS; `rm`. Floor: S
  networks with R running containers and R created spares each, one killed on each at once and
  answered by `docker start` of a spare, CONCURRENCY in flight.

Progress goes to stderr, the markdown table to stdout (`--json FILE` for benchmarks/run).
`--source DIR` runs the daemon from another source tree (e.g. a `git archive main` checkout): a
before/after on the same machine, one run after the other.
Everything created is labelled with a random tag and removed at the end. Run the big sizes once,
on a calm machine (`uptime`): 1,000 replicas plus their standbys are 2,000 containers.
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
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiodocker
import aiohttp
import redis.asyncio as aioredis
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench_reconciler as br  # noqa: E402
from bench_reconciler import (  # noqa: E402
    IMAGE, OUR_STACK_LABEL, EventLog, Ours, Seen, _cpu_ticks, _rss_kb, ids_with, kill_main_process,
    percentile, run, say, stack_yaml, started_in,
)
from orchestrator import labels  # noqa: E402
from orchestrator.publishing import channels  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402

FLOOR_LABEL = "orchestrator-bench.scale-floor"
#: The names a replica of the bench's service answers to on its stack's network (its aliases).
SERVICE_ALIASES = (br.SERVICE, f"tasks.{br.SERVICE}")
#: The daemon's creation bound (ORCHESTRATOR_CONCURRENCY, else settings' default on this
#: machine): the floor gets the same.
CONCURRENCY = Settings.from_env().concurrency
#: A phase at 1,000 replicas takes minutes on this machine; bench_reconciler's waits use this.
br.WAIT = 1800.0
SLOT_LABEL = labels.LABEL_SLOT


def ms(seen_from: Seen, seen_to: Seen) -> float:
    return (seen_to.time_ns - seen_from.time_ns) / 1e6


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


# --------------------------------------------------------------------------- the floor


@dataclass
class Floor:
    """Containers made as `docker run -d` makes them, through the engine API, on a network."""

    tag: str
    events: EventLog
    docker: aiodocker.Docker = field(init=False)

    @property
    def network(self) -> str:
        return f"{self.tag}_floor"

    async def start(self) -> None:
        self.docker = aiodocker.Docker()
        await run("docker", "network", "create", "--label", f"{FLOOR_LABEL}={self.tag}", self.network)

    async def _make(self, group: str, start: bool, network: str = "", aliases: Sequence[str] = ()) -> str:
        config: dict[str, Any] = {
            "Image": IMAGE, "Cmd": ["sleep", "3600"], "Labels": {FLOOR_LABEL: self.tag, f"{FLOOR_LABEL}.group": group},
            "HostConfig": {"NetworkMode": network or self.network},
        }  # fmt: skip
        if aliases:  # `docker run --network-alias`: the service's names on its network, as ours have
            config["NetworkingConfig"] = {"EndpointsConfig": {network or self.network: {"Aliases": list(aliases)}}}
        container = await self.docker.containers.create(config)
        if start:
            await container.start()
        return str(container.id)

    async def replacements(self, count: int, replicas: int = 1, aliases: Sequence[str] = SERVICE_ALIASES) -> list[float]:
        """`count` networks as `count` stacks have, each with `replicas` running containers and
        as many created spares (the same engine population as the stacks', aliases included),
        one running container on each SIGKILLed at once (as the many-stacks part kills), each
        answered by the start of a created spare on its network, CONCURRENCY in flight: ms from
        each `die` to its spare's `start`. What a replacement by a standby costs the engine, and
        no more."""
        limit = asyncio.Semaphore(CONCURRENCY)
        networks = [f"{self.tag}_r{i}" for i in range(count)]

        async def made(network: str, group: str, start: bool) -> str:
            async with limit:
                return await self._make(group, start, network, aliases)

        for network in networks:
            await self.docker.networks.create({"Name": network, "Labels": {FLOOR_LABEL: self.tag}})
        victims = await asyncio.gather(*(made(n, "victim", True) for n in networks))
        spares = await asyncio.gather(*(made(n, "spare", False) for n in networks))
        others = [(n, group, group == "run") for n in networks for group in ("run", "standby") for _ in range(replicas - 1)]
        await asyncio.gather(*(made(*other) for other in others))

        async def one(victim: str, spare: str) -> float:
            mark = self.events.mark()
            await kill_main_process(victim)
            (died,) = await self.events.wait(lambda e: e.action == "die" and e.id == victim, mark)
            async with limit:
                await self.docker.containers.container(spare).start()
            (started,) = await self.events.wait(lambda e: e.action == "start" and e.id == spare, mark)
            return ms(died, started)

        samples = list(await asyncio.gather(*(one(v, s) for v, s in zip(victims, spares))))
        await self.rm()
        await run("docker", "network", "rm", *networks, check=False)
        return samples

    async def converge(self, replicas: int, parallel: int = CONCURRENCY, group: str = "run") -> float:
        """Seconds from the first create to the `replicas`-th start, `parallel` in flight."""
        limit = asyncio.Semaphore(parallel)

        async def one() -> None:
            async with limit:
                await self._make(group, start=True)

        mark, start_ns = self.events.mark(), time.time_ns()
        await asyncio.gather(*(one() for _ in range(replicas)))
        seen = await self.events.wait(lambda e: e.action == "start" and e.attributes.get(f"{FLOOR_LABEL}.group") == group
                                      and e.attributes.get(FLOOR_LABEL) == self.tag, mark, replicas)
        return br.seconds_since(start_ns, seen)

    async def small_deploy(self, name: str) -> float:
        """What a 1-replica stack's deploy asks of the engine, as the CLI would ask it: a network
        of its own, one container on it created and started. Seconds until the start returned."""
        started = time.monotonic()
        network = await self.docker.networks.create({"Name": f"{self.tag}_{name}", "Labels": {FLOOR_LABEL: self.tag}})
        config: dict[str, Any] = {
            "Image": IMAGE, "Cmd": ["sleep", "3600"], "Labels": {FLOOR_LABEL: self.tag, f"{FLOOR_LABEL}.group": name},
            "HostConfig": {"NetworkMode": f"{self.tag}_{name}"},
        }  # fmt: skip
        container = await self.docker.containers.create(config)
        await container.start()
        seconds = time.monotonic() - started
        await container.delete(force=True)
        await network.delete()
        return seconds

    async def created_only(self, count: int) -> None:
        limit = asyncio.Semaphore(CONCURRENCY)

        async def one() -> None:
            async with limit:
                await self._make("standby", start=False)

        await asyncio.gather(*(one() for _ in range(count)))

    async def rm(self) -> float:
        """`docker rm -f` of every floor container: seconds until the CLI returns."""
        found = await ids_with(FLOOR_LABEL, self.tag, running_only=False)
        started = time.monotonic()
        if found:
            await run("docker", "rm", "-f", *found, check=False)
        return time.monotonic() - started

    async def stop(self) -> None:
        await self.rm()
        found = await run("docker", "network", "ls", "-q", "--filter", f"label={FLOOR_LABEL}={self.tag}", check=False)
        if found.split():
            await run("docker", "network", "rm", *found.split(), check=False)
        await self.docker.close()


# --------------------------------------------------------------------------- our daemon


async def deploy_yaml(ours: Ours, stack: str, text: str) -> None:
    await ours.daemon.deploy(stack, text)


def crash_yaml(replicas: int) -> str:
    return (
        f"version: \"3.8\"\nservices:\n  crash:\n    image: {IMAGE}\n"
        f"    command: [\"sh\", \"-c\", \"sleep 1; exit 1\"]\n    stop_signal: SIGKILL\n"
        f"    deploy:\n      replicas: {replicas}\n"
    )


async def count_standbys(stack: str) -> int:
    out = await run("docker", "ps", "-aq", "--filter", f"label={OUR_STACK_LABEL}={stack}",
                    "--filter", f"label={labels.LABEL_STANDBY}=1", "--filter", "status=created")
    return len(out.split())


async def wait_standbys(stack: str, count: int, timeout: float) -> tuple[int, float]:
    """(standbys ready, seconds waited) once `count` are there or `timeout` passed."""
    started = time.monotonic()
    have = 0
    while time.monotonic() - started < timeout:
        have = await count_standbys(stack)
        if have >= count:
            break
        await asyncio.sleep(1.0)
    return have, time.monotonic() - started


async def rm_ours(ours: Ours, stack: str) -> float:
    """DELETE until it answers and nothing of the stack is left (seconds)."""
    return max(await rm_ours_timed(ours, stack))


async def rm_ours_timed(ours: Ours, stack: str) -> tuple[float, float]:
    """(seconds until no container of the stack is left, seconds until the DELETE answered).
    The answer also waits for the stack's network, which the engine sometimes refuses to remove
    for good ("has active endpoints" with none attached: its stale endpoint count) and then
    answers 202 three seconds later; the containers are what `docker rm -f` is compared with."""
    started = time.monotonic()
    request = asyncio.create_task(ours.daemon.request("DELETE", f"/v1/stacks/{stack}"))
    while await ids_with(OUR_STACK_LABEL, stack, running_only=False):
        await asyncio.sleep(0.2)
    gone = time.monotonic() - started
    status, body = await request
    answered = time.monotonic() - started
    if status >= 300:
        say(f"warning: rm {stack}: {status} {body}")
    while await ids_with(OUR_STACK_LABEL, stack, running_only=False):  # a create that was in flight
        await asyncio.sleep(0.2)
    return gone, answered


class Cpu:
    """The daemon's CPU seconds (utime+stime) since the last call."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._ticks = os.sysconf("SC_CLK_TCK")
        self._last = _cpu_ticks(pid)

    def take(self) -> float:
        now = _cpu_ticks(self.pid)
        used, self._last = (now - self._last) / self._ticks, now
        return used


async def replace_one(events: EventLog, container_id: str) -> tuple[float, Seen]:
    """SIGKILL one replica: ms from its `die` to the `start` in its slot, and that start."""
    mark = events.mark()
    await kill_main_process(container_id)
    (died,) = await events.wait(lambda e: e.action == "die" and e.id == container_id, mark)
    stack, slot = died.attributes.get(OUR_STACK_LABEL), died.attributes.get(SLOT_LABEL)
    service = died.attributes.get(labels.LABEL_SERVICE)
    (started,) = await events.wait(
        lambda e: e.action == "start" and e.time_ns >= died.time_ns and e.attributes.get(OUR_STACK_LABEL) == stack
        and e.attributes.get(labels.LABEL_SERVICE) == service and e.attributes.get(SLOT_LABEL) == slot, mark)
    return ms(died, started), started


async def engine_calls(ours: Ours) -> dict[str, float]:
    """The daemon's container requests to the engine so far, by kind (`GET /metrics`)."""
    daemon = ours.daemon
    async with aiohttp.ClientSession(headers=daemon.auth) as session:
        async with session.get(f"{daemon.url}/metrics") as response:
            text = await response.text()
    return {sample.labels["call"]: sample.value
            for family in text_string_to_metric_families(text) if family.name == "orchestrator_engine_calls"
            for sample in family.samples if sample.name == "orchestrator_engine_calls_total"}


def calls_since(before: dict[str, float], after: dict[str, float], per: int) -> dict[str, float]:
    return {kind: (after[kind] - before.get(kind, 0.0)) / per for kind in sorted(after)
            if after[kind] > before.get(kind, 0.0)}


async def running_ids(stack: str) -> list[str]:
    """Running task containers of a stack (standbys are never running)."""
    return await ids_with(OUR_STACK_LABEL, stack)


# --------------------------------------------------------------------------- results


@dataclass
class Results:
    converge: dict[int, dict[str, float]] = field(default_factory=dict)
    standbys: dict[int, tuple[int, float]] = field(default_factory=dict)
    replacement_ms: dict[int, list[float]] = field(default_factory=dict)
    replacement_cpu_ms: dict[int, list[float]] = field(default_factory=dict)
    rm: dict[int, dict[str, float]] = field(default_factory=dict)
    scale: dict[str, dict[str, float]] = field(default_factory=dict)
    scale_n: int = 0
    sweep: dict[int, float] = field(default_factory=dict)
    sweep_n: int = 0
    idle: dict[str, Any] = field(default_factory=dict)
    fairness: dict[str, Any] = field(default_factory=dict)
    fairness_floor: dict[str, Any] = field(default_factory=dict)
    storm: dict[str, Any] = field(default_factory=dict)
    stacks: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- the parts


async def part_sizes(ours: Ours, floor: Floor, sizes: list[int], kills: int, idle: float, r: Results) -> None:
    stacks: dict[int, str] = {}
    for n in sizes:
        stack = stacks[n] = f"{ours.tag}n{n}"
        say(f"converge {n}: floor")
        floor_s = await floor.converge(n)
        await floor.rm()
        say(f"converge {n}: ours")
        ours_s = await ours.deploy(stack, n)
        r.converge[n] = {"ours": ours_s, "floor": floor_s}
        say(f"converge {n}: ours {ours_s:.2f} s, floor {floor_s:.2f} s ({ours_s / floor_s:.2f}×)")
        r.standbys[n] = await wait_standbys(stack, n, timeout=max(60.0, n * 0.5))
        say(f"standbys {n}: {r.standbys[n][0]} in {r.standbys[n][1]:.1f} s")
    if kills:
        await part_replacement(ours, stacks, kills, r)
    big = max(sizes)
    if idle:
        await part_idle(ours, big, idle, r)
    await part_scale(ours, floor, stacks[big], big, r)
    for n in sorted(sizes, reverse=True):
        await measure_rm(ours, floor, stacks[n], n, r)


async def measure_rm(ours: Ours, floor: Floor, stack: str, n: int, r: Results) -> None:
    """`rm` of the stack (n replicas and their standbys) against `docker rm -f` of as many."""
    standbys = await count_standbys(stack)
    say(f"rm {n}: ours ({n} replicas, {standbys} standbys)")
    ours_s, answered_s = await rm_ours_timed(ours, stack)
    await floor.converge(n, group=f"rm{n}")
    await floor.created_only(standbys)
    floor_s = await floor.rm()
    r.rm[n] = {"ours": ours_s, "answered": answered_s, "floor": floor_s, "standbys": standbys}
    say(f"rm {n}: ours {ours_s:.2f} s (answered {answered_s:.2f} s), floor {floor_s:.2f} s ({ours_s / floor_s:.2f}×)")


async def part_rm(ours: Ours, floor: Floor, sizes: list[int], r: Results) -> None:
    """Only the rm rows of `sizes`: each size deployed, its standbys made, then removed."""
    for n in sizes:
        stack = f"{ours.tag}r{n}"
        await ours.deploy(stack, n)
        await wait_standbys(stack, n, timeout=max(60.0, n * 0.5))
        await measure_rm(ours, floor, stack, n, r)


async def part_replacement(ours: Ours, stacks: dict[int, str], kills: int, r: Results) -> None:
    targets = {n: await running_ids(stack) for n, stack in stacks.items()}
    cpu = Cpu(ours.pid)
    say(f"replacement: {kills} kills per size, interleaved over {sorted(stacks)}")
    for index in range(kills):
        for n in sorted(stacks):
            if index >= len(targets[n]):
                continue
            await asyncio.sleep(1.0)  # the previous replacement's standby is made again
            cpu.take()
            sample, _ = await replace_one(ours.events, targets[n][index])
            await asyncio.sleep(1.0)
            r.replacement_ms.setdefault(n, []).append(sample)
            r.replacement_cpu_ms.setdefault(n, []).append(cpu.take() * 1000)
    for n in sorted(stacks):
        say(f"replacement at {n}: p50 {percentile(r.replacement_ms[n], 50):.0f} ms, "
            f"cpu {median(r.replacement_cpu_ms[n]):.0f} ms")


async def part_idle(ours: Ours, n: int, seconds: float, r: Results) -> None:
    await asyncio.sleep(3)
    cpu = Cpu(ours.pid)
    await asyncio.sleep(seconds)
    state = ours.daemon.state_dir
    files = {p.name: p.stat().st_size for p in state.rglob("*.json*") if p.is_file()}  # with journals
    async with aioredis.Redis() as redis:
        stream = channels.events_stream(ours.daemon.prefix)
        length = await redis.xlen(stream)
        memory = await redis.memory_usage(stream) or 0
    r.idle = {
        "replicas": n, "seconds": seconds, "cpu_percent": 100 * cpu.take() / seconds,
        "rss_mb": _rss_kb(ours.pid) / 1024, "state_bytes": sum(files.values()),
        "largest_file": max(files.items(), key=lambda kv: kv[1], default=("", 0)),
        "stream_len": length, "stream_mb": memory / 2**20,
    }
    say(f"idle at {n}: {r.idle}")


async def part_scale(ours: Ours, floor: Floor, stack: str, n: int, r: Results) -> None:
    events = ours.events
    standbys = await count_standbys(stack)
    total = len(await ids_with(OUR_STACK_LABEL, stack, running_only=False))
    say(f"scale {n}→0→{n}: ours ({total} containers)")
    mark, start_ns = events.mark(), time.time_ns()
    await ours.scale(stack, 0)
    gone = await events.wait(lambda e: e.action == "destroy" and e.attributes.get(OUR_STACK_LABEL) == stack,
                             mark, total)
    down = br.seconds_since(start_ns, gone)
    mark, start_ns = events.mark(), time.time_ns()
    await ours.scale(stack, n)
    up = br.seconds_since(start_ns, await events.wait(started_in(OUR_STACK_LABEL, stack), mark, n))
    r.scale["ours"] = {"down": down, "up": up}
    say(f"scale ours: down {down:.2f} s, up {up:.2f} s")
    await floor.converge(n, group="scale")
    await floor.created_only(standbys)
    down = await floor.rm()
    up = await floor.converge(n, group="scale-up")
    r.scale["floor"] = {"down": down, "up": up}
    r.scale_n = n
    await floor.rm()
    say(f"scale floor: down {down:.2f} s, up {up:.2f} s")
    await wait_standbys(stack, n, timeout=max(60.0, n * 0.5))


async def part_sweep(floor: Floor, n: int, r: Results) -> None:
    r.sweep_n = n
    for parallel in (4, 8, 16, 32, 64):
        r.sweep[parallel] = await floor.converge(n, parallel, group=f"sweep{parallel}")
        await floor.rm()
        say(f"sweep: {n} with {parallel} in flight: {r.sweep[parallel]:.2f} s")


async def timed_deploy(ours: Ours, stack: str, replicas: int) -> tuple[float, int]:
    """(seconds PUT → the replicas' starts, index of its first create in the event log)."""
    mark = ours.events.mark()
    seconds = await ours.deploy(stack, replicas)
    first = next(i for i, e in enumerate(ours.events.events[mark:], mark)
                 if e.action == "create" and e.attributes.get(OUR_STACK_LABEL) == stack)
    return seconds, first


async def part_fairness(ours: Ours, big_n: int, rounds: int, r: Results, keep: bool) -> str | None:
    """`rounds` big converges, each with a small deploy and a replacement during it (medians:
    one sample swings 2-3x with the machine's load). Returns the last big stack's name when
    `keep` (the storm reuses it), else removes it."""
    tag = ours.tag
    other = f"{tag}fc"
    await ours.deploy(other, 5)
    await wait_standbys(other, 5, 60)
    idle_deploy, idle_replace = [], []
    for round_ in range(3):
        seconds, _ = await timed_deploy(ours, f"{tag}fi{round_}", 1)
        idle_deploy.append(seconds)
        await rm_ours(ours, f"{tag}fi{round_}")
        ids = await running_ids(other)
        sample, _ = await replace_one(ours.events, ids[0])
        idle_replace.append(sample)
        await wait_standbys(other, 5, 30)
    say(f"fairness idle: deploy {median(idle_deploy):.2f} s, replacement {median(idle_replace):.0f} ms")
    busy_deploy, busy_replace, before, converges = [], [], [], []
    big = ""
    for round_ in range(rounds):
        big = f"{tag}fb{round_}"
        mark = ours.events.mark()
        converging = asyncio.create_task(ours.deploy(big, big_n))
        await asyncio.sleep(3.0)
        small_task = asyncio.create_task(timed_deploy(ours, f"{tag}fs{round_}", 1))
        await asyncio.sleep(0.5)
        replace_ms, _ = await replace_one(ours.events, (await running_ids(other))[1])
        small_s, first_create = await small_task
        converges.append(await converging)
        busy_deploy.append(small_s)
        busy_replace.append(replace_ms)
        before.append(sum(1 for e in ours.events.events[mark:first_create]
                          if e.action == "create" and e.attributes.get(OUR_STACK_LABEL) == big))
        say(f"fairness round {round_ + 1}: deploy {small_s:.2f} s, replacement {replace_ms:.0f} ms, "
            f"{before[-1]} of big's creates first, converge {converges[-1]:.1f} s")
        await rm_ours(ours, f"{tag}fs{round_}")
        if round_ < rounds - 1 or not keep:
            await rm_ours(ours, big)
        await wait_standbys(other, 5, 30)
    r.fairness = {
        "big": big_n, "rounds": rounds, "big_converge_s": median(converges),
        "deploy_idle_s": median(idle_deploy), "deploy_busy_s": median(busy_deploy),
        "replace_idle_ms": median(idle_replace), "replace_busy_ms": median(busy_replace),
        "big_creates_before_small": median(before),
        "deploy_busy_all_s": busy_deploy, "replace_busy_all_ms": busy_replace,
    }
    say(f"fairness: {r.fairness}")
    await rm_ours(ours, other)
    if keep:
        return big
    return None


async def part_fairness_floor(floor: Floor, big_n: int, rounds: int, r: Results) -> None:
    """The same small deploy made straight on the engine, idle and 3 s into a converge of
    `big_n` `docker run -d` with CONCURRENCY in flight: how much of the slowdown the engine's
    own queue forces (its network and container locks, its CPU), whoever schedules the work."""
    idle = [await floor.small_deploy(f"si{i}") for i in range(3)]
    busy = []
    for round_ in range(rounds):
        converging = asyncio.create_task(floor.converge(big_n, group=f"fb{round_}"))
        await asyncio.sleep(3.0)
        busy.append(await floor.small_deploy(f"sb{round_}"))
        await converging
        await floor.rm()
    r.fairness_floor = {"deploy_idle_s": median(idle), "deploy_busy_s": median(busy), "deploy_busy_all_s": busy}
    say(f"fairness, the engine alone: {r.fairness_floor}")


async def part_storm(ours: Ours, crashing: int, healthy: int, kills: int, seconds: float, r: Results,
                     healthy_stack: str | None) -> None:
    tag = ours.tag
    if healthy_stack is None:
        healthy_stack = f"{tag}sh"
        await ours.deploy(healthy_stack, healthy)
    await wait_standbys(healthy_stack, healthy, max(60.0, healthy * 0.5))
    ids = await running_ids(healthy_stack)
    before = [(await replace_one(ours.events, ids[i]))[0] for i in range(kills)]
    await asyncio.sleep(1.0)
    storm = f"{tag}sc"
    mark = ours.events.mark()
    cpu = Cpu(ours.pid)
    began = time.monotonic()
    await deploy_yaml(ours, storm, crash_yaml(crashing))
    during = []
    for i in range(kills):
        await asyncio.sleep(seconds / (kills + 1))
        during.append((await replace_one(ours.events, ids[kills + i]))[0])
    await asyncio.sleep(max(0.0, seconds - (time.monotonic() - began)))
    elapsed = time.monotonic() - began
    used = cpu.take()
    starts = sum(1 for e in ours.events.events[mark:]
                 if e.action == "start" and e.attributes.get(OUR_STACK_LABEL) == storm)
    async with aioredis.Redis() as redis:
        length = await redis.xlen(channels.events_stream(ours.daemon.prefix))
    r.storm = {
        "crashing": crashing, "healthy": healthy, "seconds": elapsed,
        "replace_before_ms": median(before), "replace_during_ms": median(during),
        "cpu_percent": 100 * used / elapsed, "storm_starts": starts,
        "stream_len": length, "stream_cap": 10_000,
    }
    say(f"storm: {r.storm}")
    await rm_ours(ours, storm)
    await rm_ours(ours, healthy_stack)


async def part_stacks(ours: Ours, floor: Floor, count: int, replicas: int, r: Results) -> None:
    tag, events = ours.tag, ours.events
    names = [f"{tag}m{i}" for i in range(count)]
    cpu = Cpu(ours.pid)
    limit = asyncio.Semaphore(8)

    async def put(name: str) -> None:
        async with limit:
            await ours.daemon.deploy(name, stack_yaml(replicas, swarm=False))

    mark, start_ns = events.mark(), time.time_ns()
    await asyncio.gather(*(put(n) for n in names))
    prefix = f"{tag}m"
    seen = await events.wait(lambda e: e.action == "start" and e.attributes.get(OUR_STACK_LABEL, "").startswith(prefix),
                             mark, count * replicas)
    deploy_s, deploy_cpu = br.seconds_since(start_ns, seen), cpu.take()
    # how long each stack waited for its first replica: no stack should wait on the others
    first: dict[str, int] = {}
    for e in events.events[mark:]:
        stack = e.attributes.get(OUR_STACK_LABEL, "")
        if e.action == "start" and stack.startswith(prefix):
            first.setdefault(stack, e.time_ns)
    first_s = sorted((at - start_ns) / 1e9 for at in first.values())
    say(f"stacks: {count}×{replicas} started in {deploy_s:.1f} s; waiting for standbys")
    await wait_standbys_all(names, replicas, timeout=max(120.0, count * replicas * 0.5))
    cpu.take()
    victims = [(await running_ids(n))[0] for n in names]
    calls_before = await engine_calls(ours)
    started = time.monotonic()
    samples = await asyncio.gather(*(replace_one(events, v) for v in victims))
    kill_s, kill_cpu = time.monotonic() - started, cpu.take()
    # idle means idle: the killed replicas' standbys are made again first
    await wait_standbys_all(names, replicas, timeout=max(120.0, count * 2.0))
    await asyncio.sleep(5)
    calls_idle = await engine_calls(ours)
    per_replacement = calls_since(calls_before, calls_idle, count)
    say(f"stacks: engine calls per replacement (its standby made again included): {per_replacement}")
    cpu.take()
    await asyncio.sleep(20)
    idle_cpu = cpu.take() / 20 * 100
    idle_calls = calls_since(calls_idle, await engine_calls(ours), 1)
    rss = _rss_kb(ours.pid) / 1024
    started = time.monotonic()
    limit = asyncio.Semaphore(8)

    async def rm(name: str) -> None:
        async with limit:
            await rm_ours(ours, name)

    calls_before_rm = await engine_calls(ours)
    await asyncio.gather(*(rm(n) for n in names))
    rm_calls = calls_since(calls_before_rm, await engine_calls(ours), count * replicas * 2)
    r.stacks = {
        "stacks": count, "replicas": replicas, "deploy_s": deploy_s, "deploy_cpu_s": deploy_cpu,
        "first_start_p50_s": percentile(first_s, 50), "first_start_max_s": first_s[-1],
        "kill_all_s": kill_s, "kill_cpu_s": kill_cpu,
        "replace_p50_ms": percentile([s for s, _ in samples], 50),
        "replace_max_ms": max(s for s, _ in samples),
        "idle_cpu_percent": idle_cpu, "rss_mb": rss, "rm_s": time.monotonic() - started,
        "calls_per_replacement": per_replacement, "idle_calls": idle_calls, "rm_calls": rm_calls,
    }
    say(f"stacks: {r.stacks}; the engine alone: {count} kills answered by starts")
    floor_samples = await floor.replacements(count, replicas)
    r.stacks |= {"floor_replace_p50_ms": percentile(floor_samples, 50), "floor_replace_max_ms": max(floor_samples)}
    say(f"stacks: {r.stacks}")


async def wait_standbys_all(names: list[str], each: int, timeout: float) -> None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        out = await run("docker", "ps", "-a", "--filter", f"label={labels.LABEL_STANDBY}=1",
                        "--filter", "status=created", "--format", f"{{{{.Label \"{OUR_STACK_LABEL}\"}}}}")
        if sum(1 for line in out.split() if line in set(names)) >= len(names) * each:
            return
        await asyncio.sleep(2.0)
    say("stacks: not every standby was made within the timeout")


# --------------------------------------------------------------------------- the table


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a is not None and b else "–"


def rows(r: Results) -> list[tuple[str, float | None, float | None, int, str]]:
    """(measure, ours, floor or baseline, digits, goal)."""
    out: list[tuple[str, float | None, float | None, int, str]] = []
    for n, row in sorted(r.converge.items()):
        out.append((f"converge {n} (s; floor: {CONCURRENCY} `docker run -d` in flight)", row["ours"], row["floor"], 2,
                    "≤ 1.0×"))
    for n, (have, seconds) in sorted(r.standbys.items()):
        out.append((f"↳ then {have} standbys of {n} made (s)", seconds, None, 1, "after the converge"))
    smallest = min(r.replacement_ms, default=None)
    for n, samples in sorted(r.replacement_ms.items()):
        base = percentile(r.replacement_ms[smallest], 50) if smallest is not None else None
        out.append((f"replacement p50 at {n} (ms; vs at {smallest})", percentile(samples, 50), base, 0, "≤ 1.1×"))
    for n, samples in sorted(r.replacement_cpu_ms.items()):
        base = median(r.replacement_cpu_ms[smallest]) if smallest is not None else None
        out.append((f"daemon CPU per replacement at {n} (ms; vs at {smallest})", median(samples), base, 0, "flat"))
    if r.scale:
        o, f = r.scale.get("ours", {}), r.scale.get("floor", {})
        n = r.scale_n
        out.append((f"scale {n}→0 (s; floor: `docker rm -f`)", o.get("down"), f.get("down"), 2, "≤ 1.0×"))
        out.append((f"scale 0→{n} (s; floor: {CONCURRENCY} in flight)", o.get("up"), f.get("up"), 2, "≤ 1.0×"))
    for n, row in sorted(r.rm.items()):
        out.append((f"rm of {n} (+{row['standbys']:.0f} standbys): containers gone (s; floor: `docker rm -f`)",
                    row["ours"], row["floor"], 2, "≤ 1.0×"))
        if "answered" in row:
            out.append((f"↳ DELETE answered (s; networks too)", row["answered"], row["floor"], 2, ""))
    if r.sweep:
        base = r.sweep.get(CONCURRENCY)
        for parallel, seconds in sorted(r.sweep.items()):
            out.append((f"engine floor: converge {r.sweep_n} with {parallel} in flight (s; vs {CONCURRENCY})",
                        seconds, base, 2, ""))
    if r.idle:
        i = r.idle
        out.append((f"daemon CPU, {i['replicas']} replicas idle {i['seconds']:.0f} s (% of a core)",
                    i["cpu_percent"], None, 2, "near 0"))
        out.append((f"daemon RSS, {i['replicas']} replicas idle (MB)", i["rss_mb"], None, 1, "< 150"))
        out.append((f"state files at {i['replicas']} (KB; largest {i['largest_file'][0]})", i["state_bytes"] / 1024,
                    None, 1, "bounded"))
        out.append(("Redis stream (entries; MB)", i["stream_len"], i["stream_mb"], 0, "≤ stream_maxlen"))
    if r.fairness:
        f = r.fairness
        out.append((f"1-replica deploy during a {f['big']}-replica converge (s, median of {f['rounds']}; vs idle)", f["deploy_busy_s"],
                    f["deploy_idle_s"], 2, "≤ 2×"))
        out.append((f"replacement in another stack during it (ms; vs idle)", f["replace_busy_ms"],
                    f["replace_idle_ms"], 0, "≤ 2×"))
        if r.fairness_floor:
            e = r.fairness_floor
            out.append((f"↳ the engine alone: network + 1 container during {f['big']} `docker run -d` (s; vs idle)",
                        e["deploy_busy_s"], e["deploy_idle_s"], 2, "the floor"))
            ours_x, engine_x = f["deploy_busy_s"] / f["deploy_idle_s"], e["deploy_busy_s"] / e["deploy_idle_s"]
            out.append(("↳ slowdown: ours (×idle; vs the engine's own)", ours_x, engine_x, 2, "≤ 1.0×"))
        out.append((f"↳ big stack's creates before the small one's", f["big_creates_before_small"], None, 0, ""))
        out.append((f"↳ the {f['big']}-replica converge itself (s)", f["big_converge_s"], None, 1, ""))
    if r.storm:
        s = r.storm
        out.append((f"replacement beside {s['crashing']} crash-looping (ms; vs before the storm)",
                    s["replace_during_ms"], s["replace_before_ms"], 0, "bounded"))
        out.append((f"daemon CPU during the storm, {s['seconds']:.0f} s (% of a core)", s["cpu_percent"], None, 1, ""))
        out.append((f"↳ starts of the crash-looping service in {s['seconds']:.0f} s", s["storm_starts"], None, 0,
                    "backoff holds"))
        out.append(("↳ Redis stream entries (vs its cap)", s["stream_len"], s["stream_cap"], 0, "≤ cap"))
    if r.stacks:
        s = r.stacks
        label = f"{s['stacks']}×{s['replicas']}"
        out.append((f"{label}: deploy all until every replica started (s)", s["deploy_s"], None, 1, ""))
        out.append((f"{label}: daemon CPU for that deploy (s)", s["deploy_cpu_s"], None, 1, ""))
        out.append((f"{label}: ↳ each stack's first replica started, p50 / max (s)", s["first_start_p50_s"],
                    s["first_start_max_s"], 1, ""))
        out.append((f"{label}: one replica killed in each, all replaced (s)", s["kill_all_s"], None, 2, ""))
        out.append((f"{label}: ↳ replacement p50 (ms; floor: {s['stacks']} kills answered by `docker start`, "
                    f"{CONCURRENCY} in flight, among as many containers)", s["replace_p50_ms"], s.get("floor_replace_p50_ms"), 0, "≤ 1.0×"))
        out.append((f"{label}: ↳ replacement max (ms; floor likewise)", s["replace_max_ms"],
                    s.get("floor_replace_max_ms"), 0, "≤ 1.0×"))
        for kind, per in s["calls_per_replacement"].items():
            whole = " (the minute's resync, whole stacks)" if kind == "list" else ""
            out.append((f"{label}: ↳ engine {kind} calls per replacement{whole} (floor: 1 start)", per,
                        1.0 if kind == "start" else None, 2, ""))
        out.append((f"{label}: daemon CPU idle (% of a core)", s["idle_cpu_percent"], None, 2, ""))
        out.append((f"{label}: ↳ engine calls in 20 s idle", sum(s["idle_calls"].values()), None, 0,
                    "the resync: each stack once a minute"))
        out.append((f"{label}: daemon RSS (MB)", s["rss_mb"], None, 1, ""))
        out.append((f"{label}: rm all, 8 at a time (s)", s["rm_s"], None, 1, ""))
        for kind, per in s["rm_calls"].items():
            out.append((f"{label}: ↳ engine {kind} calls per container removed (replicas and standbys)", per,
                        None, 2, ""))
    return out


def table(r: Results) -> str:
    lines = ["| measure | ours | floor / baseline | ours/floor | goal |", "| --- | ---: | ---: | ---: | --- |"]
    for name, ours, base, digits, goal in rows(r):
        lines.append(f"| {name} | {fmt(ours, digits)} | {fmt(base, digits)} | {ratio(ours, base)} | {goal} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


PARTS = ("sizes", "rm", "sweep", "fairness", "storm", "stacks")


async def main(args: argparse.Namespace) -> Results:
    await br.preflight()
    r = Results()
    tag = f"sc{secrets.token_hex(3)}"
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    events = EventLog(actions=("create", "start", "die", "destroy"))
    await events.start()
    ours, floor = Ours(tag, events, source=args.source), Floor(tag, events)
    started = time.monotonic()
    try:
        await floor.start()
        await ours.start(work / "state")
        if "sizes" in args.only:
            await part_sizes(ours, floor, args.sizes, args.kills, args.idle, r)
        if "rm" in args.only and "sizes" not in args.only:
            await part_rm(ours, floor, args.sizes, r)
        if "sweep" in args.only and args.sweep:
            await part_sweep(floor, args.sweep, r)
        keep = None
        if "fairness" in args.only and args.fair:
            keep = await part_fairness(ours, args.fair, args.fair_rounds, r, keep="storm" in args.only and args.storm[1] == args.fair)
            await part_fairness_floor(floor, args.fair, args.fair_rounds, r)
        if "storm" in args.only and args.storm[0]:
            await part_storm(ours, args.storm[0], args.storm[1], args.storm_kills, args.storm_seconds, r, keep)
        if "stacks" in args.only and args.stacks[0]:
            stacks, replicas = args.stacks
            await part_stacks(ours, floor, stacks, replicas, r)
    finally:
        say(f"cleaning up ({time.monotonic() - started:.0f} s so far)")
        for stack in await br._our_stacks(tag):
            with contextlib.suppress(Exception):
                await ours.remove(stack)
        await ours.stop(args.keep_log)
        await br._remove_tagged(tag)
        await floor.stop()
        await events.stop()
        shutil.rmtree(work, ignore_errors=True)
    say(f"done in {time.monotonic() - started:.0f} s")
    return r


def figures(r: Results) -> dict[str, Any]:
    return {"rows": [{"measure": m, "ours": o, "floor": f, "goal": g} for m, o, f, _, g in rows(r)]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=lambda s: sorted(int(n) for n in s.split(",") if n), default=[10, 100, 1000])
    parser.add_argument("--kills", type=int, default=10, help="replacement rounds (one kill per size each)")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle measurement at the largest size")
    parser.add_argument("--sweep", type=int, default=100, help="replicas of the floor's parallelism sweep (0: skip)")
    parser.add_argument("--fair", type=int, default=500, help="replicas of the big stack of the fairness part")
    parser.add_argument("--fair-rounds", type=int, default=3, help="big converges of the fairness part (medians)")
    parser.add_argument("--storm", type=lambda s: tuple(int(n) for n in s.split(",")), default=(100, 500),
                        help="crash-looping,healthy replicas")
    parser.add_argument("--storm-kills", type=int, default=5)
    parser.add_argument("--storm-seconds", type=float, default=40.0)
    parser.add_argument("--stacks", type=lambda s: tuple(int(n) for n in s.split("x")), default=(200, 5),
                        help="STACKSxREPLICAS")
    parser.add_argument("--only", nargs="+", choices=PARTS, default=[p for p in PARTS if p != "rm"],
                        help="parts to run (rm: only the rm rows of --sizes; sizes includes them)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    parser.add_argument("--source", type=Path, help="run the daemon from this source tree (a before/after)")
    parser.add_argument("--keep-log", type=Path, help="copy the daemon's log here at the end")
    parsed = parser.parse_args()
    results = asyncio.run(main(parsed))
    print(table(results))
    if parsed.json:
        parsed.json.write_text(json.dumps(figures(results)))
