"""The Swarm backend beside `docker stack deploy`, on a 3-node test Swarm (a manager, two workers).

Run: .venv/bin/python benchmarks/bench_swarm.py [--replicas 30] [--update 10] [--rounds 2]
                                                [--idle-tasks 100] [--idle-seconds 30] [--json]

Both drive the same Swarm, so the question is what the daemon adds. In one run, interleaved
(docker first in odd rounds, ours first in even ones), each on a stack of its own:
- converge: deploy --replicas busybox replicas; time from the request until every task runs;
- rolling update: a stack of --update replicas (parallelism 2, no delay or monitor), an env
  change deployed; time until Swarm says the update completed and all run the new spec;
- the delay of our `task.state` messages: each message's `time` minus Swarm's own timestamp of
  that task state (Status.Timestamp; the nodes share this machine's clock), for every task that
  ran in the converge rounds: p50 and p99 (the goal: p99 at most 1 s);
- the watcher idle with --idle-tasks tasks running: its CPU seconds per minute and the engine API
  calls it makes per minute (the watcher runs in this process for that, alone, so both are its own).
Needs the swarm-node image (scripts/setup), orchestrator-test/busybox:latest and Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiodocker
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.publishing.channels import STREAM_FIELD_EVENT, swarm_observed_key  # noqa: E402
from orchestrator.engine.swarm import SwarmManager  # noqa: E402
from orchestrator.swarm.observed import parse_time  # noqa: E402
from orchestrator.swarm.observed_store import ObservedStore  # noqa: E402
from orchestrator.swarm.watcher import SwarmWatcher  # noqa: E402
from tests.integration.daemon_process import DaemonProcess  # noqa: E402
from tests.swarm.cluster import Cluster  # noqa: E402
from tests.swarm.stack_objects import remove_stack  # noqa: E402

IMAGE = "orchestrator-test/busybox:latest"
REDIS_URL = os.environ.get("ORCHESTRATOR_REDIS_URL", "redis://127.0.0.1:6379/0")
LIMIT = 300.0


def stack_text(replicas: int, version: str = "1") -> str:
    return f"""services:
  web:
    image: {IMAGE}
    command: [sleep, "3600"]
    init: true
    stop_grace_period: 1s
    environment: {{VERSION: "{version}"}}
    deploy:
      replicas: {replicas}
      update_config: {{parallelism: 2, delay: 0s, monitor: 0s}}
"""


async def running(docker: aiodocker.Docker, stack: str, replicas: int, version: str | None = None) -> bool:
    services = await docker.services.list(filters={"name": [f"{stack}_web"]})
    if not services:
        return False
    service = services[0]
    if version is not None:
        state = (service.get("UpdateStatus") or {}).get("State")
        if state not in ("completed", None):
            return False
    tasks = await docker.tasks.list(filters={"service": [service["ID"]], "desired-state": ["running"]})
    wanted = [t for t in tasks if t["Status"]["State"] == "running"
              and (version is None or f"VERSION={version}" in t["Spec"]["ContainerSpec"].get("Env", []))]
    return len(wanted) == replicas and len(tasks) == replicas


async def wait_running(docker: aiodocker.Docker, stack: str, replicas: int, version: str | None = None) -> None:
    deadline = time.monotonic() + LIMIT
    while not await running(docker, stack, replicas, version):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{stack}: {replicas} replicas not running after {LIMIT:.0f} s")
        await asyncio.sleep(0.1)


class Deployer:
    def __init__(self, cluster: Cluster, daemon: DaemonProcess, work: Path) -> None:
        self.cluster, self.daemon, self.work = cluster, daemon, work

    async def docker(self, stack: str, text: str) -> None:
        path = self.work / f"{stack}.yml"
        path.write_text(text)
        await asyncio.to_thread(self.cluster.docker, "stack", "deploy", "--quiet", "-c", str(path), stack)

    async def ours(self, stack: str, text: str) -> None:
        await self.daemon.deploy(stack, text)

    async def remove(self, docker: aiodocker.Docker, stack: str) -> None:
        """Through the daemon, also a stack `docker stack deploy` made (it finds it by its labels)."""
        status, answer = await self.daemon.request("DELETE", f"/v1/stacks/{stack}")
        if status != 200:
            raise RuntimeError(f"rm {stack}: {status} {answer}")


async def timed(how: Any, docker: aiodocker.Docker, stack: str, text: str, replicas: int,
                version: str | None = None) -> float:
    started = time.monotonic()
    await how(stack, text)
    await wait_running(docker, stack, replicas, version)
    return time.monotonic() - started


async def message_delays(client: aioredis.Redis, prefix: str, docker: aiodocker.Docker) -> list[float]:
    """Our message's time − Swarm's timestamp of the same task state, for the states the tasks
    still have (each task's current Status is the only timestamp Swarm keeps)."""
    entries = await client.xrange(f"{prefix}:stream")
    told = {}
    for _, fields in entries:
        message = json.loads(fields[STREAM_FIELD_EVENT])
        if message["type"] == "task.state":
            told[(message["task_id"], message["swarm_state"])] = parse_time(message["time"])
    delays = []
    for task in await docker.tasks.list():
        key = (task["ID"], task["Status"]["State"])
        if key in told:
            delays.append(told[key] - parse_time(task["Status"]["Timestamp"]))
    return delays


async def idle_watcher(cluster: Cluster, docker: aiodocker.Docker, deployer: Deployer, tasks: int,
                       seconds: float, interval: float, client: aioredis.Redis, prefix: str) -> dict[str, float]:
    stack = f"idle{secrets.token_hex(2)}"
    await deployer.docker(stack, stack_text(tasks))
    await wait_running(docker, stack, tasks)
    manager = SwarmManager.connect(cluster.manager.docker_host)
    # A prefix of its own: the daemon's state (stopped before) would tell it these tasks already.
    watcher = SwarmWatcher(manager, lambda event: None, ObservedStore(client, f"{prefix}-idle"), interval)
    runner = asyncio.create_task(watcher.run())
    try:
        await asyncio.sleep(3)  # the first relists tell every task once: not idle yet
        calls, cpu, wall = manager.calls, time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        minutes = (time.monotonic() - wall) / 60
        return {"cpu_s_per_min": (time.process_time() - cpu) / minutes,
                "calls_per_min": (manager.calls - calls) / minutes, "relists": watcher.relists}
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await manager.close()
        await remove_stack(docker, stack)


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def main(args: argparse.Namespace) -> dict[str, Any]:
    cluster = await asyncio.to_thread(Cluster.start, 2)
    prefix = f"bench-swarm-{secrets.token_hex(3)}"
    client = aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
    work = Path(tempfile.mkdtemp(prefix="bench-swarm-"))
    daemon = DaemonProcess(work / "state", prefix, extra_env={
        "ORCHESTRATOR_BACKEND": "swarm", "DOCKER_HOST": cluster.manager.docker_host})
    results: dict[str, Any] = {"converge": {"docker": [], "ours": []}, "update": {"docker": [], "ours": []}}
    try:
        await asyncio.to_thread(cluster.load_images, [IMAGE])
        await daemon.start()
        deployer = Deployer(cluster, daemon, work)
        async with aiodocker.Docker(url=cluster.manager.docker_host) as docker:
            for how in (deployer.docker, deployer.ours):  # warm-up, not measured: the daemon's
                stack = f"warm{secrets.token_hex(2)}"        # loader process, the CLI's first run
                await timed(how, docker, stack, stack_text(1), 1)
                await deployer.remove(docker, stack)
            for round_ in range(args.rounds):
                order = [("docker", deployer.docker), ("ours", deployer.ours)]
                if round_ % 2:
                    order.reverse()
                for who, how in order:
                    stack = f"c{who[0]}{round_}{secrets.token_hex(2)}"
                    results["converge"][who].append(
                        await timed(how, docker, stack, stack_text(args.replicas), args.replicas))
                    await deployer.remove(docker, stack)
                for who, how in order:
                    stack = f"u{who[0]}{round_}{secrets.token_hex(2)}"
                    await how(stack, stack_text(args.update))
                    await wait_running(docker, stack, args.update)
                    results["update"][who].append(
                        await timed(how, docker, stack, stack_text(args.update, "2"), args.update, "2"))
                    if who == "ours":
                        results.setdefault("delays", []).extend(await message_delays(client, prefix, docker))
                    await deployer.remove(docker, stack)
            await daemon.stop()
            results["idle"] = await idle_watcher(cluster, docker, deployer, args.idle_tasks, args.idle_seconds,
                                                 args.interval, client, prefix)
    finally:
        if daemon.process is not None and daemon.process.returncode is None:
            await daemon.stop()
        await client.delete(f"{prefix}:stream", swarm_observed_key(prefix), swarm_observed_key(f"{prefix}-idle"))
        await client.aclose()
        await asyncio.to_thread(cluster.remove)
    return results


def table(results: dict[str, Any], args: argparse.Namespace) -> str:
    rows = ["| measure | docker stack deploy | orchestrator (swarm backend) | ratio |", "|---|---|---|---|"]
    for key, label in (("converge", f"converge {args.replicas} replicas on 3 nodes (s, median)"),
                       ("update", f"rolling update of {args.update} (s, median)")):
        docker, ours = statistics.median(results[key]["docker"]), statistics.median(results[key]["ours"])
        rows.append(f"| {label} | {docker:.2f} | {ours:.2f} | {ours / docker:.2f}x |")
    delays = results.get("delays") or [0.0]
    rows.append(f"| task state → Redis message (s), p50 / p99 of {len(delays)} | — | "
                f"{p(delays, 0.5):.3f} / {p(delays, 0.99):.3f} | — |")
    idle = results["idle"]
    rows.append(f"| watcher idle, {args.idle_tasks} tasks: CPU s/min, API calls/min | — | "
                f"{idle['cpu_s_per_min']:.2f}, {idle['calls_per_min']:.0f} | — |")
    return "\n".join(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", type=int, default=30)
    parser.add_argument("--update", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--idle-tasks", type=int, default=100)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--interval", type=float, default=0.5, help="the watcher's poll interval (setting)")
    parser.add_argument("--json", action="store_true")
    arguments = parser.parse_args()
    outcome = asyncio.run(main(arguments))
    print(json.dumps(outcome) if arguments.json else table(outcome, arguments))
