"""Soak: the real daemon under client load while faults are injected at random, then invariants.

    benchmarks/soak [--minutes 5 | --seconds 60] [--no-engine-restart] [--seed N]

Starts `python -m orchestrator daemon` (own state dir, API port, Redis prefix) against a PRIVATE
redis-server on its own port (append-only file, so its restart keeps the stream), deploys three
stacks of the test image and keeps a client loop on the ingress port (127.0.0.1 only):
  <tag>web   web: 3 replicas of busybox httpd behind an ingress port, healthcheck `test ! -f /tmp/sick`
             hog: 2 replicas with limits.memory 20M that allocate 200 MB when /tmp/oom appears
  <tag>work  sleeper: 4 replicas with a named volume
  <tag>crash crash: 1 replica exiting 3 after 1 s, restart on-failure, delay 0s, max_attempts 2
Faults, in random order spread over the run: SIGKILL of a replica, OOM through the memory limit,
a healthcheck turning unhealthy, `docker rm -f` of a replica, one restart of the private
redis-server, one SIGKILL of the daemon (then started again), one restart of the daemon (SIGTERM
then a new start: the path of an upgrade), one SIGKILL during an `rm` of the
work stack (the next start must finish the removal, leaving its volume; then it is deployed
again), one SIGKILL during a rolling update of web (the next start must finish it: every web
replica on the new spec), and one restart of dockerd (unless --no-engine-restart: it stops every
container on the engine). Each recovery is timed from the injection to every service at its
count again (running, not unhealthy, one per slot).

Client requests are counted per fault kind, and the data plane's invariant (issue 16) is checked:
no request fails except one in flight on a web replica that died (the client sends one request
at a time, so at most one per web replica a fault killed: SIGKILL, unhealthy); daemon faults,
Redis, replicas of other services and the rolling update fail none. A dockerd restart is held to
it only when the engine has live-restore (without, it stops every replica).

Checked at the end (exit 1 if any fails): every service at its count, the crash loop given up
after exactly 1 + max_attempts runs; no slot ever held by two running replicas (the engine's list
is sampled all along, and a slot listed twice is confirmed by both processes being alive); after `DELETE /v1/stacks/<s>?volumes=true` nothing of ours is left
(containers, networks, volumes); the Redis stream has gapless seq, a task.state message ending
in failed/shutdown/complete for every replica that ran and died, and one ending in rejected (or
failed, when the engine went away during the start call) for every container the engine never
started (while dockerd shuts down it still accepts creates but refuses starts: those are
rejections, not deaths).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiohttp
import redis.asyncio as aioredis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from orchestrator import labels  # noqa: E402
from orchestrator.publishing import channels  # noqa: E402
from orchestrator.stackfile import load_stack_text  # noqa: E402
from tests.integration.daemon_process import DaemonProcess, free_port  # noqa: E402
from tests.integration.private_redis import PrivateRedis  # noqa: E402
from tests.integration.engine_restart import restart_engine  # noqa: E402

IMAGE = "orchestrator-test/busybox:latest"
MAX_ATTEMPTS = 2
SETTLE_TIMEOUT = 120.0


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at)) + f".{int(at % 1 * 1000):03d}"


def ingress_lines(path: Path, since: float, until: float, limit: int = 30) -> list[str]:
    """The ingress process's log events (JSON lines) between two times, shortened."""
    picked = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                entry = json.loads(line)
                at = datetime.fromisoformat(entry["timestamp"].replace("Z", "+00:00")).timestamp()
                if since <= at <= until:
                    picked.append(f"{clock(at)} {entry['event']} " + " ".join(
                        f"{k}={v}" for k, v in entry.items() if k not in ("event", "timestamp", "level")))
    return [line[:200] for line in picked[-limit:]]


def docker(*args: str, check: bool = True) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def stacks(tag: str, port: int, web_version: int = 0) -> dict[str, tuple[str, dict[str, int]]]:
    """Stack name -> (stack file, the running count each service must come back to).
    Another `web_version` changes web's spec: deploying it is a rolling update of web."""
    restart_any = "      restart_policy: {condition: any, delay: 0s}\n"
    web = f"""
services:
  web:
    image: {IMAGE}
    environment: {{VERSION: "{web_version}"}}
    command: ["sh", "-c", "mkdir -p /www && echo ok > /www/index.html && exec httpd -f -p 8080 -h /www"]
    ports: ["{port}:8080"]
    stop_signal: SIGKILL
    healthcheck:
      test: ["CMD-SHELL", "test ! -f /tmp/sick"]
      interval: 1s
      timeout: 2s
      retries: 2
    deploy:
      replicas: 3
{restart_any}
  hog:
    image: {IMAGE}
    command: ["sh", "-c", "while [ ! -f /tmp/oom ]; do sleep 0.2; done; head -c 200m /dev/zero | tail"]
    stop_signal: SIGKILL
    deploy:
      replicas: 2
      resources: {{limits: {{memory: 20M}}}}
{restart_any}
"""
    work = f"""
services:
  sleeper:
    image: {IMAGE}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
    volumes: ["data:/data"]
    deploy:
      replicas: 4
{restart_any}
volumes:
  data: {{}}
"""
    crash = f"""
services:
  crash:
    image: {IMAGE}
    command: ["sh", "-c", "sleep 1; exit 3"]
    deploy:
      replicas: 1
      restart_policy: {{condition: on-failure, delay: 0s, max_attempts: {MAX_ATTEMPTS}}}
"""
    return {
        f"{tag}web": (web, {"web": 3, "hog": 2}),
        f"{tag}work": (work, {"sleeper": 4}),
        f"{tag}crash": (crash, {"crash": 0}),
    }


@dataclass(frozen=True)
class Replica:
    id: str
    stack: str
    service: str
    slot: str
    status: str  # docker ps's Status column: "Up 3 seconds (healthy)"…


def running(tag: str) -> list[Replica]:
    fmt = ("{{.ID}}\t{{.Label \"orchestrator.stack\"}}\t{{.Label \"orchestrator.service\"}}"
           "\t{{.Label \"orchestrator.slot\"}}\t{{.Status}}")
    out = docker("ps", "--no-trunc", "--filter", f"label={labels.LABEL_STACK}", "--format", fmt, check=False)
    found = [Replica(*line.split("\t")) for line in out.splitlines() if line.count("\t") == 4]
    return [r for r in found if r.stack.startswith(tag)]


def spec_hashes(stack: str, service: str) -> list[str]:
    """The spec hash of each running replica of a service."""
    out = docker("ps", "--filter", f"label={labels.LABEL_STACK}={stack}",
                 "--filter", f"label={labels.LABEL_SERVICE}={service}",
                 "--format", f"{{{{.Label \"{labels.LABEL_SPEC_HASH}\"}}}}", check=False)
    return out.split()


def service_hash(text: str, service: str) -> str:
    spec = load_stack_text([("stack.yml", text)], ROOT, env={}, name="soak")
    return labels.spec_hash(spec.services[service])


def task_ids(tag: str) -> set[str]:
    """Every container of the soak's stacks but the standbys still waiting (docs/standby.md):
    those are no tasks, so neither deaths nor rejections."""
    out = docker("ps", "-a", "--no-trunc", "--filter", f"label={labels.LABEL_STACK}", "--format",
                 f"{{{{.ID}}}} {{{{.State}}}} {{{{.Label \"{labels.LABEL_STANDBY}\"}}}} "
                 f"{{{{.Label \"{labels.LABEL_STACK}\"}}}}", check=False)
    rows = (line.split(" ", 3) for line in out.splitlines())
    return {cid for cid, state, standby, stack in rows
            if stack.startswith(tag) and not (standby == "1" and state == "created")}


def never_started(ids: set[str]) -> set[str]:
    """The containers among `ids` the engine never started (a create whose start it refused)."""
    if not ids:
        return set()
    out = docker("inspect", "-f", "{{.Id}} {{.State.StartedAt}}", *sorted(ids), check=False)
    return {cid for cid, _, started in (line.partition(" ") for line in out.splitlines())
            if started.startswith("0001-01-01")}


@dataclass
class Observer:
    """Samples the engine's list: every replica seen running, and any slot held twice."""

    tag: str
    seen: set[str] = field(default_factory=set)
    duplicates: list[str] = field(default_factory=list)
    last: list[Replica] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self.last = await asyncio.to_thread(running, self.tag)
            self.seen.update(r.id for r in self.last)
            by_slot: dict[tuple[str, str, str], list[str]] = defaultdict(list)
            for r in self.last:
                by_slot[(r.stack, r.service, r.slot)].append(r.id[:12])
            for slot, ids in by_slot.items():
                if len(ids) > 1 and len(alive := await asyncio.to_thread(really_running, ids)) > 1:
                    self.duplicates.append(f"{slot}: {alive}")
            await asyncio.sleep(0.5)


def really_running(ids: list[str]) -> list[str]:
    """Of containers the engine's list shows running, those whose process is alive. Under load
    the list lags a death by seconds (dockerd records the exit in the list's view after its
    cleanup), so a dead replica and its replacement can both be listed as running."""
    alive = []
    for container in ids:
        pid = docker("inspect", "-f", "{{.State.Pid}}", container, check=False).strip()
        try:
            if int(pid) <= 0:  # 0: the engine knows it stopped
                continue
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            continue
        alive.append(container)
    return alive


def at_count(replicas: list[Replica], wanted: dict[str, dict[str, int]]) -> bool:
    counts: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in replicas:
        if "unhealthy" not in r.status:
            counts[(r.stack, r.service)].add(r.slot)
    return all(len(counts[(s, svc)]) == n for s, services in wanted.items() for svc, n in services.items())


async def client_loop(url: str, stop: asyncio.Event, tally: dict[str, int], failures: list[tuple[float, str]]) -> None:
    """One request after another, a new connection each, to the ingress port. Each failure is
    kept with its time and reason, for the report of a fault that lost requests."""
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), timeout=timeout) as session:
        while not stop.is_set():
            sent = time.time()
            try:
                async with session.get(url) as response:
                    await response.read()
                    tally["ok" if response.status == 200 else "failed"] += 1
                    if response.status != 200:
                        failures.append((sent, f"HTTP {response.status}"))
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                tally["failed"] += 1
                failures.append((sent, f"{type(exc).__name__}: {exc}"[:160]))
            await asyncio.sleep(0.02)


@dataclass
class Soak:
    tag: str
    daemon: DaemonProcess
    redis: PrivateRedis
    wanted: dict[str, dict[str, int]]
    observer: Observer
    rng: random.Random
    #: The stack files as deployed now (the rolling update changes web's).
    files: dict[str, str]
    port: int
    web_version: int = 0
    live_restore: bool = False
    #: Web replicas killed by faults so far (each may cost the request in flight on it).
    web_deaths: int = 0
    #: Per fault kind: (client requests failed, web replicas it killed) of each injection.
    by_kind: dict[str, list[tuple[int, int]]] = field(default_factory=lambda: defaultdict(list))
    tally: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: (time sent, reason) of every client request that failed.
    failures: list[tuple[float, str]] = field(default_factory=list)
    #: (what was injected, seconds to recover, client requests failed meanwhile)
    recoveries: list[tuple[str, float, int]] = field(default_factory=list)

    def pick(self, service: str) -> Replica | None:
        candidates = [r for r in self.observer.last if r.service == service and "unhealthy" not in r.status]
        return self.rng.choice(candidates) if candidates else None

    async def settle(self, since: float, timeout: float = SETTLE_TIMEOUT) -> float:
        """Seconds from `since` until every service is at its count (in two samples in a row)."""
        deadline = time.monotonic() + timeout
        streak = 0
        while time.monotonic() < deadline:
            if at_count(await asyncio.to_thread(running, self.tag), self.wanted):
                streak += 1
                if streak == 2:
                    return time.monotonic() - since
            else:
                streak = 0
            await asyncio.sleep(0.25)
        raise TimeoutError(f"not back at count after {timeout:.0f} s")

    async def gone(self, container: str, timeout: float = 60) -> None:
        """Waits until `container` no longer runs: the fault has taken effect."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if container not in {r.id for r in await asyncio.to_thread(running, self.tag)}:
                return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"{container[:12]} still runs {timeout:.0f} s after the fault")

    # ------------------------------------------------------------------ faults

    async def kill_replica(self) -> str:
        victim = self.pick(self.rng.choice(["sleeper", "web"])) or self.pick("sleeper") or self.pick("web")
        assert victim, "no replica to kill"
        pid = docker("inspect", "-f", "{{.State.Pid}}", victim.id).strip()
        os.kill(int(pid), signal.SIGKILL)
        await self.gone(victim.id)
        self.web_deaths += victim.service == "web"
        return f"SIGKILL {victim.service}.{victim.slot}"

    async def flagged(self, service: str, flag: str) -> Replica:
        """Creates `flag` inside a replica of `service` (its command or healthcheck watches for
        it) and waits until that replica is gone."""
        victim = self.pick(service)
        assert victim, f"no {service} replica"
        docker("exec", victim.id, "touch", flag)
        await self.gone(victim.id)
        return victim

    async def oom(self) -> str:
        victim = await self.flagged("hog", "/tmp/oom")
        oom = docker("inspect", "-f", "{{.State.OOMKilled}} {{.State.ExitCode}}", victim.id, check=False).strip()
        return f"OOM hog.{victim.slot} (OOMKilled, exit: {oom or 'removed'})"

    async def unhealthy(self) -> str:
        victim = await self.flagged("web", "/tmp/sick")
        self.web_deaths += 1
        return f"unhealthy web.{victim.slot}"

    async def remove(self) -> str:
        victim = self.pick("sleeper")
        assert victim, "no sleeper replica"
        docker("rm", "-f", victim.id)
        return f"docker rm -f sleeper.{victim.slot}"

    async def redis_restart(self) -> str:
        self.redis.stop()
        await asyncio.sleep(2)
        await self.redis.start()
        return "restart of redis-server"

    async def daemon_kill(self) -> str:
        await self.daemon.kill()
        victim = self.pick("sleeper")
        if victim:  # a death while nobody watches: the restarted daemon must see and report it
            docker("kill", victim.id, check=False)
        await asyncio.sleep(1)
        await self.daemon.start()
        return "SIGKILL of the daemon (a replica killed while it was down)"

    async def daemon_restart(self) -> str:
        """SIGTERM, then a new start: how an upgrade replaces the daemon. The ingress stays."""
        await self.daemon.stop_daemon()
        await self.daemon.start()
        return "restart of the daemon (SIGTERM, then started: the upgrade path)"

    async def until(self, what: str, check: Callable[[], bool], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(check):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: not after {timeout:.0f} s")
            await asyncio.sleep(0.2)

    async def rm_kill(self) -> str:
        """SIGKILL once `rm` of the work stack has begun: the next start must finish the removal
        (its named volume kept), then the stack is deployed again."""
        name = f"{self.tag}work"
        before = {r.id for r in running(self.tag) if r.stack == name}
        removal = asyncio.create_task(self.daemon.request("DELETE", f"/v1/stacks/{name}"))
        await self.until("rm under way", lambda: not before <= {r.id for r in running(self.tag)}, 30)
        await self.daemon.kill()
        with contextlib.suppress(aiohttp.ClientError, json.JSONDecodeError):
            await removal
        await self.daemon.start()
        await self.until(f"{name} removed by the restarted daemon",  # its named volume stays
                         lambda: not [o for o in leftovers(name) if not o.startswith("volume")])
        # The record is forgotten last, after the engine objects: give it a moment, not forever.
        deadline = time.monotonic() + 10
        while (status := (await self.daemon.request("GET", f"/v1/stacks/{name}"))[0]) != 404:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: everything is removed, but the daemon still knows it ({status})")
            await asyncio.sleep(0.2)
        await self.daemon.deploy(name, self.files[name])
        return "SIGKILL during rm of the work stack (then deployed again)"

    async def update_kill(self) -> str:
        """SIGKILL in the middle of a rolling update of web: the next start must finish it."""
        name = f"{self.tag}web"
        self.web_version += 1
        self.files[name] = stacks(self.tag, self.port, self.web_version)[name][0]
        want = service_hash(self.files[name], "web")
        await self.daemon.deploy(name, self.files[name])
        await self.until("update under way", lambda: want in spec_hashes(name, "web"), 30)
        await self.daemon.kill()
        await self.daemon.start()
        await self.until("update finished by the restarted daemon",
                         lambda: spec_hashes(name, "web") == [want] * 3, SETTLE_TIMEOUT)
        return "SIGKILL during a rolling update of web"

    async def engine_restart(self) -> str:
        await asyncio.to_thread(restart_engine)
        return "restart of dockerd"

    async def inject(self, name: str, fault: Callable[[], Awaitable[str]]) -> None:
        started, failed, deaths = time.monotonic(), self.tally["failed"], self.web_deaths
        since = time.time()
        what = await fault()
        took = await self.settle(started)
        await asyncio.sleep(0.5)  # a request in flight at the end of the recovery counts here
        lost = self.tally["failed"] - failed
        self.recoveries.append((what, took, lost))
        self.by_kind[name].append((lost, self.web_deaths - deaths))
        say(f"{what}: recovered in {took:.1f} s, {lost} client requests failed")
        if lost > self.web_deaths - deaths and name != "engine":  # what the report needs to explain it
            for at, reason in [f for f in self.failures if f[0] >= since][:10]:
                say(f"  request sent at {clock(at)} failed: {reason}")
            for line in ingress_lines(self.daemon.state_dir / "ingress.log", since - 1, time.time()):
                say(f"  ingress: {line}")

    def data_plane_problems(self) -> list[str]:
        """Failed requests beyond one in flight on each web replica that died."""
        problems = []
        for kind, runs in self.by_kind.items():
            if kind == "engine" and not self.live_restore:
                continue  # every replica stops: nothing to hold it to
            excess = sum(max(0, lost - deaths) for lost, deaths in runs)
            if excess:
                problems.append(f"{kind}: {excess} client requests failed that were not in flight "
                                f"on a replica that died ({[lost for lost, _ in runs]} per fault)")
        return problems


async def stream_problems(redis_url: str, prefix: str, deaths: set[str], unstarted: set[str]) -> list[str]:
    """`deaths` ran and are gone: each needs a failed/shutdown/complete message. `unstarted` never
    ran: each needs `rejected` (the engine refused the start, as it does while dockerd shuts
    down) or `failed` (the engine went away during the start call)."""
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries = await client.xrange(channels.events_stream(prefix))
    finally:
        await client.aclose()
    problems = []
    seqs = [int(fields[channels.STREAM_FIELD_SEQ]) for _, fields in entries]
    if seqs != list(range(seqs[0], seqs[0] + len(seqs))) if seqs else True:
        missing = sorted(set(range(min(seqs, default=1), max(seqs, default=0) + 1)) - set(seqs))
        problems.append(f"stream seq not gapless ({len(seqs)} messages; missing {missing[:10]})")
    ended: dict[str, set[str]] = defaultdict(set)  # container -> the states its task was reported in
    for _, fields in entries:
        event = json.loads(fields[channels.STREAM_FIELD_EVENT])
        if event["type"] == "task.state":
            ended[event.get("container_id")].add(event.get("to"))
    unreported = {d for d in deaths if not ended[d] & {"failed", "shutdown", "complete"}}
    if unreported:
        problems.append(f"{len(unreported)} of {len(deaths)} replica deaths have no task.state message: "
                        f"{sorted(c[:12] for c in unreported)[:10]}")
    unended = {c for c in unstarted if not ended[c] & {"rejected", "failed"}}
    if unended:
        problems.append(f"{len(unended)} of {len(unstarted)} never-started containers have no rejected or "
                        f"failed message: {sorted(c[:12] for c in unended)[:10]}")
    return problems


def leftovers(stack: str) -> list[str]:
    found = []
    for kind in ("container", "network", "volume"):
        listing = ["ps", "-a"] if kind == "container" else [kind, "ls"]
        out = docker(*listing, "-q", "--filter", f"label={labels.LABEL_STACK}={stack}", check=False)
        found += [f"{kind} {name[:12]}" for name in out.split()]
    return found


def crash_runs(stack: str) -> int:
    return len(docker("ps", "-a", "-q", "--filter", f"label={labels.LABEL_STACK}={stack}", check=False).split())


def summary(soak: Soak, problems: list[str]) -> str:
    tally = soak.tally
    lines = ["| fault | recovery s | client requests failed |", "| --- | ---: | ---: |"]
    lines += [f"| {what} | {took:.1f} | {failed} |" for what, took, failed in soak.recoveries]
    times = sorted(took for _, took, _ in soak.recoveries)
    if times:
        p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
        lines.append(f"\nrecovery: max {times[-1]:.1f} s, p95 {p95:.1f} s, median {statistics.median(times):.1f} s "
                     f"over {len(times)} faults")
    lines.append("\n| fault kind | injected | client requests failed | web replicas killed |")
    lines.append("| --- | ---: | ---: | ---: |")
    for kind, runs in sorted(soak.by_kind.items()):
        lines.append(f"| {kind} | {len(runs)} | {sum(lost for lost, _ in runs)} | {sum(d for _, d in runs)} |")
    total = tally["ok"] + tally["failed"]
    lines.append(f"client requests: {total}, failed {tally['failed']} ({100 * tally['failed'] / max(total, 1):.2f} %)")
    lines.append("invariants: " + ("all held" if not problems else "BROKEN\n  - " + "\n  - ".join(problems)))
    return "\n".join(lines)


async def soak(args: argparse.Namespace) -> int:
    tag = f"soak{secrets.token_hex(3)}"
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="orchestrator-soak-"))
    redis = PrivateRedis(free_port(), data_dir=work / "redis")
    port = free_port()
    wanted_files = stacks(tag, port)
    wanted = {name: counts for name, (_, counts) in wanted_files.items()}
    daemon = DaemonProcess(work / "state", tag, extra_env={"ORCHESTRATOR_REDIS_URL": redis.url})
    observer = Observer(tag)
    files = {name: text for name, (text, _) in wanted_files.items()}
    state = Soak(tag, daemon, redis, wanted, observer, rng, files, port)
    stop = asyncio.Event()
    tally = state.tally
    problems: list[str] = []
    background: list[asyncio.Task[None]] = []
    say(f"soak {tag}: {args.seconds:.0f} s, work dir {work}")
    await redis.start()
    try:
        await daemon.start()
        for name, (text, _) in wanted_files.items():
            await daemon.deploy(name, text)
        background.append(asyncio.create_task(observer.run(stop)))
        say(f"deployed; settled in {await state.settle(time.monotonic()):.1f} s")
        background.append(asyncio.create_task(client_loop(f"http://127.0.0.1:{port}/", stop, tally, state.failures)))
        faults: list[tuple[str, Callable[[], Awaitable[str]]]] = [
            ("redis", state.redis_restart), ("daemon", state.daemon_kill), ("unhealthy", state.unhealthy),
            ("daemon-restart", state.daemon_restart),
            ("oom", state.oom), ("rm", state.remove), ("rm-kill", state.rm_kill),
            ("update-kill", state.update_kill),
        ]
        if args.engine_restart:
            faults.append(("engine", state.engine_restart))
            state.live_restore = docker("info", "--format", "{{.LiveRestoreEnabled}}").strip() == "true"
        extra = max(0, int(args.seconds // 15) - len(faults))  # then more of the cheap faults
        faults += [rng.choice([("kill", state.kill_replica), ("kill", state.kill_replica), ("oom", state.oom),
                               ("unhealthy", state.unhealthy), ("rm", state.remove)]) for _ in range(extra)]
        faults.append(("kill", state.kill_replica))
        rng.shuffle(faults)
        begun = time.monotonic()
        deadline = begun + args.seconds
        gap = args.seconds / (len(faults) + 1)
        for n, (name, fault) in enumerate(faults, 1):  # spread over the run, each at a jittered time
            at = begun + n * gap + rng.uniform(-gap / 3, gap / 3)
            await asyncio.sleep(max(0.0, min(at, deadline) - time.monotonic()))
            try:
                await state.inject(name, fault)
            except (TimeoutError, AssertionError, RuntimeError) as exc:
                problems.append(f"{name}: {exc}")
                say(f"{name}: {exc}")
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        say("settling")
        try:
            await state.settle(time.monotonic())
        except TimeoutError as exc:
            problems.append(f"final: {exc}; running: {sorted((r.stack, r.service, r.slot) for r in observer.last)}")
        stop.set()
        await asyncio.gather(*background)
        crash_stack = f"{tag}crash"
        if (runs := crash_runs(crash_stack)) != 1 + MAX_ATTEMPTS:
            problems.append(f"crash loop ran {runs} times; max_attempts {MAX_ATTEMPTS} means {1 + MAX_ATTEMPTS}")
        if observer.duplicates:
            problems.append(f"slots held twice: {observer.duplicates[:5]}")
        left = task_ids(tag) - {r.id for r in running(tag)}
        unstarted = never_started(left)
        deaths = (observer.seen | left) - unstarted - {r.id for r in running(tag)}
        say(f"checking the stream: {len(deaths)} replica deaths, {len(unstarted)} containers never started")
        await asyncio.sleep(2)  # the publisher's last batch
        problems += await stream_problems(redis.url, tag, deaths, unstarted)
        problems += state.data_plane_problems()
        for name in wanted:  # 202: the engine refuses for now, and the daemon goes on
            status, body = await daemon.request("DELETE", f"/v1/stacks/{name}?volumes=true")
            if status not in (200, 202):
                problems.append(f"DELETE {name}: {status} {body}")
        for name in wanted:
            try:
                await state.until(f"{name} removed", lambda name=name: not leftovers(name))
            except TimeoutError:
                problems.append(f"{name} leaked after removal: {leftovers(name)}")
    finally:
        stop.set()
        for task in background:
            task.cancel()
        with contextlib.suppress(Exception):
            await daemon.stop()
        cleanup(tag)
        redis.stop()
    print(summary(state, problems))
    if problems:
        print(f"\n(daemon log: {work / 'state' / 'daemon.log'})")
    else:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return 1 if problems else 0


def cleanup(tag: str) -> None:
    """Whatever of ours is left when the run failed half-way."""
    for kind in ("container", "network", "volume"):
        listing = ["ps", "-a"] if kind == "container" else [kind, "ls"]
        out = docker(*listing, "--filter", f"label={labels.LABEL_STACK}", "--format",
                     "{{.ID}} {{.Label \"orchestrator.stack\"}}" if kind != "volume" else
                     "{{.Name}} {{.Label \"orchestrator.stack\"}}", check=False)
        ours = [obj for obj, _, stack in (line.partition(" ") for line in out.splitlines()) if stack.startswith(tag)]
        if ours:
            docker(*(["rm", "-f"] if kind == "container" else [kind, "rm"]), *ours, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, default=5.0)
    length.add_argument("--seconds", type=float)
    parser.add_argument("--no-engine-restart", dest="engine_restart", action="store_false",
                        help="leave dockerd alone (its restart stops every container on the engine)")
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    args.seconds = args.seconds if args.seconds is not None else args.minutes * 60
    if subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True, check=False).returncode:
        raise SystemExit(f"{IMAGE} is missing: build it with scripts/setup (this script installs nothing)")
    # SIGTERM (a timeout, a CI cancel) unwinds like Ctrl-C, so the daemon it started is stopped
    # and its containers removed rather than left running as orphans
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    sys.exit(asyncio.run(soak(args)))


if __name__ == "__main__":
    main()
