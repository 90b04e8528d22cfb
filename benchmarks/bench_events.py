"""From a container's death to our message on Redis, beside the engine's own event delivery.

Run: .venv/bin/python benchmarks/bench_events.py [--replicas 20] [--rounds 10] [--pause 0.1]

A real daemon (`python -m orchestrator daemon`, own state dir, port and Redis prefix) runs a
stack of --replicas long-running busybox replicas (`restart_policy: delay: 0s`, so every death
is replaced at once and no backoff builds up). Each round SIGKILLs every replica, one after the
other, --pause seconds apart. In this process, in the same run:
- a subscriber to the engine's /events (die events of the stack) notes when each `die` arrives;
- a subscriber to the stack's Redis channel notes when our `task.state running→failed` arrives;
- the floor of any relay: a minimal one in another process (engine /events → PUBLISH of the
  container id, nothing else) and a subscriber to its channel. Its "added" is what the two
  extra hops (a process, then Redis) cost on this machine at this moment.
Both are measured from the `die` event's own timeNano (the engine's clock is this machine's), so
"added" = ours − the engine's delivery, per death: what the daemon adds on top of the raw stream.
Needs the engine with orchestrator-test/busybox:latest and Redis (ORCHESTRATOR_REDIS_URL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import multiprocessing.synchronize
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiodocker
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator import labels  # noqa: E402
from orchestrator.publishing import channels  # noqa: E402
from tests.integration.daemon_process import DaemonProcess  # noqa: E402

REDIS_URL = os.environ.get("ORCHESTRATOR_REDIS_URL", "redis://127.0.0.1:6379/0")
IMAGE = "orchestrator-test/busybox:latest"


def stack_text(replicas: int) -> str:
    return (
        f"services:\n  web:\n    image: {IMAGE}\n    command: [\"sleep\", \"3600\"]\n"
        f"    deploy:\n      replicas: {replicas}\n      restart_policy:\n        delay: 0s\n"
    )


def relay(stack: str, channel: str, ready: "multiprocessing.synchronize.Event") -> None:
    """In a child process: every `die` of the stack, published on Redis at once."""

    async def main() -> None:
        docker, client = aiodocker.Docker(), aioredis.Redis.from_url(REDIS_URL)
        subscriber = docker.events.subscribe(filters=die_filter(stack))
        ready.set()
        try:
            while (event := await subscriber.get()) is not None:
                await client.publish(channel, event["Actor"]["ID"])
        finally:
            await docker.close()
            await client.aclose()

    asyncio.run(main())


def die_filter(stack: str) -> str:
    return json.dumps({"type": ["container"], "event": ["die"], "label": [f"{labels.LABEL_STACK}={stack}"]})


class Deaths:
    """Per killed container: the die's timeNano, when the engine's stream and our channel delivered it."""

    def __init__(self) -> None:
        self.died_ns: dict[str, int] = {}
        self.engine_ns: dict[str, int] = {}
        self.ours_ns: dict[str, int] = {}
        self.relay_ns: dict[str, int] = {}
        self.changed = asyncio.Event()

    async def follow_engine(self, docker: aiodocker.Docker, stack: str, ready: asyncio.Event) -> None:
        subscriber = docker.events.subscribe(filters=die_filter(stack))
        ready.set()
        while (event := await subscriber.get()) is not None:
            arrived = time.time_ns()
            container_id = event["Actor"]["ID"]
            self.died_ns[container_id] = int(event["timeNano"])
            self.engine_ns[container_id] = arrived
            self.changed.set()

    async def follow_ours(self, client: aioredis.Redis, channel: str, ready: asyncio.Event) -> None:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(channel)
            while (await pubsub.get_message(timeout=5)) is None:
                pass  # the subscribe confirmation
            ready.set()
            async for reply in pubsub.listen():
                arrived = time.time_ns()
                if reply["type"] != "message":
                    continue
                message = json.loads(reply["data"])
                if message["type"] == "task.state" and (message["from"], message["to"]) == ("running", "failed"):
                    self.ours_ns[message["container_id"]] = arrived
                    self.changed.set()

    async def follow_relay(self, client: aioredis.Redis, channel: str, ready: asyncio.Event) -> None:
        async with client.pubsub() as pubsub:
            await pubsub.subscribe(channel)
            while (await pubsub.get_message(timeout=5)) is None:
                pass
            ready.set()
            async for reply in pubsub.listen():
                arrived = time.time_ns()
                if reply["type"] == "message":
                    self.relay_ns[reply["data"]] = arrived

    async def wait_for(self, container_ids: list[str], timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not all(c in self.ours_ns and c in self.engine_ns and c in self.relay_ns for c in container_ids):
                self.changed.clear()
                await self.changed.wait()


async def running_replicas(docker: aiodocker.Docker, stack: str, count: int, timeout: float = 60.0) -> list[str]:
    filters = {"label": [f"{labels.LABEL_STACK}={stack}"], "status": ["running"]}
    async with asyncio.timeout(timeout):
        while len(found := await docker.containers.list(filters=filters)) != count:
            await asyncio.sleep(0.1)
    return [c["Id"] for c in found]


def percentiles(values: list[float]) -> tuple[float, float, float, float]:
    ordered = sorted(values)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return cut[49], cut[98], ordered[-1], statistics.fmean(ordered)


async def run(replicas: int, rounds: int, pause: float) -> Deaths:
    stack, prefix = f"bench-events-{secrets.token_hex(3)}", f"bench-events-{secrets.token_hex(4)}"
    deaths = Deaths()
    with tempfile.TemporaryDirectory() as state:
        daemon = DaemonProcess(Path(state) / "state", prefix, redis_url=REDIS_URL)
        docker, client = aiodocker.Docker(), aioredis.Redis.from_url(REDIS_URL, decode_responses=True)
        relay_channel = f"{prefix}:relay"
        readiness = [asyncio.Event() for _ in range(3)]
        followers = [
            asyncio.create_task(deaths.follow_engine(docker, stack, readiness[0])),
            asyncio.create_task(deaths.follow_ours(client, channels.events_channel(prefix, stack), readiness[1])),
            asyncio.create_task(deaths.follow_relay(client, relay_channel, readiness[2])),
        ]
        context = multiprocessing.get_context("spawn")
        relay_ready = context.Event()
        relayer = context.Process(target=relay, args=(stack, relay_channel, relay_ready), daemon=True)
        relayer.start()
        await asyncio.to_thread(relay_ready.wait, 30)
        for ready in readiness:
            await ready.wait()
        await daemon.start()
        try:
            await daemon.deploy(stack, stack_text(replicas))
            for number in range(rounds):
                victims = await running_replicas(docker, stack, replicas)
                await asyncio.sleep(0.5)  # the daemon is idle again: each round starts alike
                for container_id in victims:
                    await docker.containers.container(container_id).kill(signal="SIGKILL")
                    await asyncio.sleep(pause)
                await deaths.wait_for(victims)
                print(f"round {number + 1}/{rounds}: {len(victims)} deaths", file=sys.stderr)
        finally:
            await daemon.request("DELETE", f"/v1/stacks/{stack}")
            await daemon.stop()
            relayer.terminate()
            relayer.join()
            for task in followers:
                task.cancel()
            await asyncio.gather(*followers, return_exceptions=True)
            await docker.events.stop()
            keys = [key async for key in client.scan_iter(f"{prefix}:*")]
            if keys:
                await client.delete(*keys)
            await client.aclose()
            await docker.close()
    return deaths


def report(deaths: Deaths, replicas: int, rounds: int, pause: float) -> None:
    ids = [c for c in deaths.died_ns if c in deaths.ours_ns and c in deaths.engine_ns and c in deaths.relay_ns]
    engine = [(deaths.engine_ns[c] - deaths.died_ns[c]) / 1e6 for c in ids]
    ours = [(deaths.ours_ns[c] - deaths.died_ns[c]) / 1e6 for c in ids]
    relayed = [(deaths.relay_ns[c] - deaths.died_ns[c]) / 1e6 for c in ids]
    added = [o - e for o, e in zip(ours, engine, strict=True)]
    relay_added = [r - e for r, e in zip(relayed, engine, strict=True)]
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(f"\n{len(ids)} deaths ({replicas} replicas × {rounds} rounds, {pause * 1000:.0f} ms apart); "
          f"{os.cpu_count()} CPUs, load average {load}; Redis at {REDIS_URL}\n")  # fmt: skip
    print("| from the die event's timeNano to | p50 ms | p99 ms | max ms | mean ms |")
    print("| --- | --- | --- | --- | --- |")
    for name, values in (
        ("the engine's /events subscriber receiving `die` (raw stream)", engine),
        ("a Redis subscriber receiving our `task.state running→failed`", ours),
        ("**added by the daemon** (ours − raw, per death)", added),
        ("a minimal relay's PUBLISH of the die, received (floor)", relayed),
        ("added by the minimal relay (relay − raw, per death)", relay_added),
    ):
        print("| {} | {:.2f} | {:.2f} | {:.2f} | {:.2f} |".format(name, *percentiles(values)))
    p99_added, p99_floor = percentiles(added)[1], percentiles(relay_added)[1]
    print(f"\np99 added: daemon {p99_added:.2f} ms, minimal relay {p99_floor:.2f} ms "
          f"(daemon / relay {p99_added / p99_floor:.1f}x); goal: p99 added < 10 ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--pause", type=float, default=0.1, help="seconds between two kills")
    options = parser.parse_args()
    result = asyncio.run(run(options.replicas, options.rounds, options.pause))
    report(result, options.replicas, options.rounds, options.pause)
