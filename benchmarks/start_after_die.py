"""How soon after a replica's `die` can the engine start its replacement? The engine alone, no daemon.

    .venv/bin/python benchmarks/start_after_die.py [--rounds 10]

A replica on a bridge network is SIGKILLed; a created (never started) container on the same
network with the same alias is started when the `die` event arrives, or 50 / 100 ms later
(the engine's own in-place restart waits 100 ms). Prints, per delay, the median from the `die`
event to the replacement's `start` event and how long the start call itself took. If starting
at once saves nothing over waiting 100 ms, what a replacement costs after the die is the
engine's clean-up of the dead container, not the daemon's reaction. Everything made here is
labelled orchestrator-bench.floor=<tag> and removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import statistics
import sys
import time
from typing import Any

import aiodocker

IMAGE = "orchestrator-test/busybox:latest"
LABEL = "orchestrator-bench.floor"
DELAYS_S = (0.0, 0.05, 0.1)


def container_config(network: str, tag: str) -> dict[str, Any]:
    return {
        "Image": IMAGE, "Cmd": ["sleep", "3600"], "Labels": {LABEL: tag},
        "HostConfig": {"NetworkMode": network},
        "NetworkingConfig": {"EndpointsConfig": {network: {"Aliases": ["web"]}}},
    }  # fmt: skip


async def next_event(events: Any, action: str, container_id: str) -> int:
    while True:
        event = await events.get()
        if event["Action"] == action and event["id"] == container_id:
            return int(event["timeNano"])


async def one_round(docker: aiodocker.Docker, events: Any, config: dict[str, Any], delay: float) -> tuple[float, float]:
    """(die event → start event, the start call) in ms."""
    dying = await docker.containers.create(config)
    await dying.start()
    replacement = await docker.containers.create(config)
    try:
        pid = (await dying.show())["State"]["Pid"]
        await asyncio.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        died_ns = await next_event(events, "die", dying.id)
        await asyncio.sleep(delay)
        called = time.perf_counter()
        await replacement.start()
        call_ms = (time.perf_counter() - called) * 1000
        started_ns = await next_event(events, "start", replacement.id)
        return (started_ns - died_ns) / 1e6, call_ms
    finally:
        await dying.delete(force=True)
        await replacement.delete(force=True)


async def measure(rounds: int) -> dict[float, list[tuple[float, float]]]:
    tag = f"sad{secrets.token_hex(3)}"
    docker = aiodocker.Docker()
    network = await docker.networks.create({"Name": f"{tag}_net", "Labels": {LABEL: tag}})
    events = docker.events.subscribe(filters={"label": [f"{LABEL}={tag}"], "type": ["container"]})
    results: dict[float, list[tuple[float, float]]] = {delay: [] for delay in DELAYS_S}
    try:
        config = container_config(f"{tag}_net", tag)
        for number in range(rounds):
            for delay in DELAYS_S:  # interleaved, so the machine's load moves all alike
                results[delay].append(await one_round(docker, events, config, delay))
            print(f"round {number + 1}/{rounds}", flush=True, file=sys.stderr)
    finally:
        await network.delete()
        await docker.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    results = asyncio.run(measure(args.rounds))
    print("| start requested after the die event | die → start event p50 (ms) | start call p50 (ms) |")
    print("| ---: | ---: | ---: |")
    for delay, samples in results.items():
        print(f"| {delay * 1000:.0f} ms | {statistics.median(s for s, _ in samples):.0f} "
              f"| {statistics.median(c for _, c in samples):.0f} |")


if __name__ == "__main__":
    main()
