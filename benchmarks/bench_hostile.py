"""Replica replacement, the ingress and the API while a client feeds the daemon worst-case stack
files, against the same daemon idle, in one run (issue 12: "the loop never waits on a caller").

    .venv/bin/python benchmarks/bench_hostile.py [--rounds 2] [--phase 25] [--interval 0.5]

Starts the real daemon (`python -m orchestrator daemon`, its own state dir, port and Redis
prefix, default settings: parse_timeout 10 s, one loading worker) and deploys one stack of the
busybox test image: `crash`, 5 replicas with `restart_policy: {delay: 0s}`, and `web`, busybox
httpd with a port published through the daemon's ingress. Then alternates idle and hostile
phases (`--rounds` of each, `--phase` seconds each). In both, all the time:

- every `--interval` seconds the main process of a running `crash` replica is SIGKILLed from the
  host; a replacement's latency is from its `die` to the `start` of the next container in the
  same slot (`docker events`, engine timeNano), counted in the phase the `die` fell in;
- one HTTP GET at a time through the ingress's published port (a new connection each): the
  round trip;
- `GET /v1/health`, one at a time: the API's own answer time.

In a hostile phase a client also sends, one after another, the worst-case deploys of issue 12:
`[` x 100k (the YAML parser needed about a minute), flow mappings nested 5000 deep, a 10k-service
file (refused at its end), an alias bomb just under the node cap and a JSON body of 25,000 files;
and the slowest left within the loader's limits: a JSON body of 12 such alias bombs.
Each must be refused (4xx) without the replacement p50 growing: the goal is within 1.5x of idle.
The stack and the daemon are removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import random
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiodocker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_api import delete_redis_keys  # noqa: E402
from bench_reconciler import EventLog, Seen, percentile  # noqa: E402

from orchestrator import labels  # noqa: E402
from tests.hostile import alias_bomb, alias_bombs  # noqa: E402
from tests.integration.daemon_process import DaemonProcess, free_port  # noqa: E402

IMAGE = "orchestrator-test/busybox:latest"
STACK = """\
services:
  crash:
    image: {image}
    command: ["sleep", "3600"]
    stop_signal: SIGKILL
    deploy:
      replicas: 5
      restart_policy: {{condition: any, delay: 0s}}
  web:
    image: {image}
    command: ["httpd", "-f", "-p", "80", "-h", "/www"]
    healthcheck: {{disable: true}}
    ports: ["{port}:80"]
"""
YAML = "application/yaml"


def worst_cases() -> list[tuple[str, str, bytes]]:
    """(name, content type, body) of the deploys that held the loop longest before (issue 12),
    and the slowest one left within the loader's limits (tests/hostile.py)."""
    deep = "services:\n  web:\n    image: x\n    labels: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n"
    many = "services:\n" + "".join(f"  s{i}:\n    image: busybox\n" for i in range(10_000))
    many += "  last:\n    image: busybox\n    deploy: {replicas: -1}\n"  # refused, after all of it
    files = {"files": [{"name": "a", "content": "{}"} for _ in range(25_000)]}
    return [
        ("[ x 100k", YAML, b"[" * 100_000),
        ("nested 5000 deep", YAML, deep.encode()),
        ("10k services", YAML, many.encode()),
        ("alias bomb, 1.1M nodes", YAML, alias_bomb().encode()),
        ("JSON, 25,000 files", "application/json", json.dumps(files).encode()),
        ("JSON, 12 alias bombs", "application/json", alias_bombs(12)),
    ]


@dataclass
class Phase:
    name: str
    windows: list[tuple[float, float]] = field(default_factory=list)  # wall-clock (start, end)
    replacement_ms: list[float] = field(default_factory=list)
    ingress_ms: list[float] = field(default_factory=list)
    health_ms: list[float] = field(default_factory=list)
    #: CPU seconds the daemon's own process used during the phase, and the phase's length.
    daemon_cpu_s: float = 0.0
    seconds: float = 0.0

    def holds(self, at: float) -> bool:
        return any(start <= at < end for start, end in self.windows)

    def summary(self) -> dict[str, Any]:
        figures: dict[str, Any] = {key: stats(getattr(self, key)) for key in ("replacement_ms", "ingress_ms", "health_ms")}
        figures["daemon_cpu_percent"] = 100 * self.daemon_cpu_s / self.seconds if self.seconds else None
        return figures


def stats(samples: list[float]) -> dict[str, float | int | None]:
    if not samples:
        return {"n": 0, "p50": None, "p95": None}
    return {"n": len(samples), "p50": statistics.median(samples), "p95": percentile(samples, 95)}


async def api(daemon: DaemonProcess, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """Every call to the daemon's API goes through here (and DaemonProcess, which tests share)."""
    return await daemon.request(method, path, **kwargs)


async def every(interval: float, action: Callable[[], Awaitable[None]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        await action()
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass


class Run:
    def __init__(self, daemon: DaemonProcess, docker: aiodocker.Docker, stack: str, port: int) -> None:
        self.daemon, self.docker, self.stack, self.port = daemon, docker, stack, port
        self.idle, self.busy, self.hostile = Phase("idle"), Phase("cpu"), Phase("hostile")
        self.current: Phase | None = None
        self.answers: collections.Counter[str] = collections.Counter()
        self.answer_s: dict[str, list[float]] = collections.defaultdict(list)
        self.cases = itertools.cycle(worst_cases())  # built once; each phase goes on with the next

    async def kill_one(self) -> None:
        """SIGKILL a running crash replica's main process from the host, as a crash."""
        running = await self.docker.containers.list(filters={"status": ["running"], "label": [
            f"{labels.LABEL_STACK}={self.stack}", f"{labels.LABEL_SERVICE}=crash"]})
        if running:
            try:
                state = (await random.choice(running).show())["State"]
            except aiodocker.DockerError:
                return  # removed meanwhile
            if state.get("Running") and state.get("Pid", 0) > 1:  # Pid 0 would be our own group
                with contextlib.suppress(ProcessLookupError):  # it died meanwhile
                    os.kill(state["Pid"], signal.SIGKILL)

    async def probe_ingress(self) -> None:
        if self.current is None:
            return
        phase, start = self.current, time.perf_counter()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            writer.write(b"GET / HTTP/1.0\r\nHost: bench\r\n\r\n")
            answer = await reader.read()
            writer.close()
        except OSError:
            return
        if answer.startswith(b"HTTP/1.") and b" 200 " in answer.split(b"\r\n", 1)[0]:
            phase.ingress_ms.append((time.perf_counter() - start) * 1000)

    async def probe_health(self) -> None:
        if self.current is None:
            return
        phase, start = self.current, time.perf_counter()
        status, _ = await api(self.daemon, "GET", "/v1/health")
        if status == 200:
            phase.health_ms.append((time.perf_counter() - start) * 1000)

    async def feed_worst_cases(self, until: float) -> None:
        name = f"hostile-{secrets.token_hex(3)}"
        while time.time() < until:
            case, content_type, body = next(self.cases)
            start = time.perf_counter()
            status, answer = await api(self.daemon, "PUT", f"/v1/stacks/{name}", data=body,
                                       headers={"Content-Type": content_type})
            code = answer.get("error", {}).get("code", "") if isinstance(answer, dict) else ""
            self.answers[f"{case}: {status} {code}".strip()] += 1
            self.answer_s[case].append(time.perf_counter() - start)
            if status < 400:
                await api(self.daemon, "DELETE", f"/v1/stacks/{name}")

    async def phases(self, rounds: int, seconds: float) -> None:
        for round_number in range(rounds):
            for phase in (self.idle, self.busy, self.hostile):
                say(f"round {round_number + 1}/{rounds}: {phase.name} for {seconds:.0f} s")
                self.current, start, cpu = phase, time.time(), self.daemon_cpu()
                if phase is self.hostile:
                    await self.feed_worst_cases(start + seconds)  # ends with its last answer
                elif phase is self.busy:
                    await burn_a_core(seconds)
                else:
                    await asyncio.sleep(seconds)
                phase.windows.append((start, time.time()))
                phase.daemon_cpu_s += self.daemon_cpu() - cpu
                phase.seconds += time.time() - start
        self.current = None

    def daemon_cpu(self) -> float:
        """utime + stime of the daemon's process, in seconds."""
        assert self.daemon.process is not None
        fields = Path(f"/proc/{self.daemon.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def attribute(self, events: list[Seen]) -> None:
        """Each `die` of a crash replica, to the next `start` in its slot."""
        mine = [e for e in events if e.attributes.get(labels.LABEL_STACK) == self.stack
                and e.attributes.get(labels.LABEL_SERVICE) == "crash"]
        for i, died in enumerate(mine):
            if died.action != "die":
                continue
            slot = died.attributes.get(labels.LABEL_SLOT)
            started = next((e for e in mine[i + 1:] if e.action == "start"
                            and e.attributes.get(labels.LABEL_SLOT) == slot), None)
            phase = next((p for p in (self.idle, self.busy, self.hostile) if p.holds(died.time_ns / 1e9)), None)
            if started is not None and phase is not None:
                phase.replacement_ms.append((started.time_ns - died.time_ns) / 1e6)


async def burn_a_core(seconds: float) -> None:
    """What a loading worker costs the machine by itself: a process spinning at its priority."""
    spin = (f"import time\nfrom orchestrator.workers import lower_priority\nlower_priority()\n"
            f"end = time.time() + {seconds}\nwhile time.time() < end: pass")
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", spin, cwd=Path(__file__).parents[1])
    await process.wait()


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


async def wait_running(daemon: DaemonProcess, stack: str, timeout: float = 60) -> None:
    await daemon.poll(f"/v1/stacks/{stack}/services",
                      lambda body: all(s["replicas_running"] == s["replicas_desired"] for s in body),
                      timeout=timeout)


async def measure(args: argparse.Namespace) -> Run:
    port, stack = free_port(), f"bench-hostile-{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as state:
        daemon = DaemonProcess(Path(state), f"bench-hostile-{secrets.token_hex(4)}")
        await daemon.start()
        events = EventLog()
        await events.start()
        docker = aiodocker.Docker()
        stop = asyncio.Event()
        try:
            status, body = await api(daemon, "PUT", f"/v1/stacks/{stack}",
                                     data=STACK.format(image=IMAGE, port=port), headers={"Content-Type": YAML})
            if status >= 300:
                raise SystemExit(f"deploy failed: {status} {body}")
            await wait_running(daemon, stack)
            await asyncio.sleep(3)  # every slot prepares its standby first
            run = Run(daemon, docker, stack, port)
            loops = [asyncio.create_task(every(args.interval, run.kill_one, stop)),
                     asyncio.create_task(every(0.05, run.probe_ingress, stop)),
                     asyncio.create_task(every(0.1, run.probe_health, stop))]
            await run.phases(args.rounds, args.phase)
            stop.set()
            await asyncio.gather(*loops)
            await asyncio.sleep(2)  # the last replacements' events
            run.attribute(events.events)
            return run
        except BaseException:
            print(daemon.log_tail(), file=sys.stderr)
            raise
        finally:
            stop.set()
            await events.stop()
            await docker.close()
            await api(daemon, "DELETE", f"/v1/stacks/{stack}?volumes=true")
            await daemon.stop()
            await delete_redis_keys(daemon.prefix)


def fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}" if value >= 100 else f"{value:.1f}"


def table(run: Run) -> str:
    idle, busy, hostile = run.idle.summary(), run.busy.summary(), run.hostile.summary()
    lines = ["| measure (ms; samples idle/cpu/hostile) | idle | a spinning process | during worst-case "
             "deploys | hostile / idle | hostile / spinning |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for key, name in (("replacement_ms", "replacement die → start"), ("ingress_ms", "ingress round trip"),
                      ("health_ms", "GET /v1/health")):
        for q in ("p50", "p95"):
            a, c, b = idle[key][q], busy[key][q], hostile[key][q]
            counts = f"{idle[key]['n']}/{busy[key]['n']}/{hostile[key]['n']}"
            lines.append(f"| {name} {q} ({counts}) | {fmt(a)} | {fmt(c)} | {fmt(b)} | {ratio(b, a)} | {ratio(b, c)} |")
    cpu = [summary["daemon_cpu_percent"] for summary in (idle, busy, hostile)]
    lines.append(f"| daemon process CPU (% of a core) | {fmt(cpu[0])} | {fmt(cpu[1])} | {fmt(cpu[2])} "
                 f"| {ratio(cpu[2], cpu[0])} | {ratio(cpu[2], cpu[1])} |")
    lines += ["", "| worst-case deploy: answer | count | median s |", "| --- | ---: | ---: |"]
    for answer, count in sorted(run.answers.items()):
        case = answer.split(":")[0]
        lines.append(f"| {answer} | {count} | {statistics.median(run.answer_s[case]):.2f} |")
    return "\n".join(lines)


def ratio(ours: float | None, base: float | None) -> str:
    return f"{ours / base:.2f}×" if ours and base else "–"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="idle + hostile phase pairs")
    parser.add_argument("--phase", type=float, default=12, help="seconds per phase")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between replica kills")
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    args = parser.parse_args()
    run = asyncio.run(measure(args))
    print(table(run))
    if args.json:  # for benchmarks/run
        args.json.write_text(json.dumps({"idle": run.idle.summary(), "cpu": run.busy.summary(),
                                         "hostile": run.hostile.summary(), "answers": dict(run.answers)}))


if __name__ == "__main__":
    main()
