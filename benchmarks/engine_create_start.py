"""Create+start latency through `Engine.create_task` + `Engine.start`, beside the floor: the same
container created and started with bare aiodocker calls, in the same run.

    .venv/bin/python benchmarks/engine_create_start.py [--rounds 5] [--parallel 20]

Prints one table: median single-container latency, and wall time for N containers created and
started concurrently, for each path, and the ratio to the minimal-config floor (a container on
the stack network with no aliases, labels or limits). "same config" sends our create request
through bare aiodocker: the gap to it is the gateway's own overhead. Everything is labelled with a throwaway
stack name and removed afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiodocker

from orchestrator.engine import Engine
from orchestrator.engine.containers import create_request
from orchestrator.labels import LABEL_STACK, spec_hash
from orchestrator.model.observed import SlotKey
from orchestrator.model.spec import NetworkSpec, ServiceSpec, StackSpec

IMAGE = "orchestrator-test/busybox:latest"


async def main(rounds: int, parallel: int) -> None:
    stack_name = f"bench{secrets.token_hex(3)}"
    stack = StackSpec(name=stack_name, services={}, networks={"default": NetworkSpec("default", f"{stack_name}_default")})
    service = ServiceSpec(name="b", image=IMAGE, command=("sleep", "600"))
    engine = await Engine.connect()
    docker = aiodocker.Docker()
    files_dir = Path(tempfile.mkdtemp())
    slots = iter(range(1, 10**6))

    async def ours() -> None:
        created = await engine.create_task(stack, service, SlotKey(stack_name, "b", next(slots)), spec_hash(service), files_dir)
        await engine.start(created.id)

    async def same_config() -> None:
        request = create_request(
            stack, service, SlotKey(stack_name, "b", next(slots)),
            spec_hash="x", task_id=secrets.token_hex(5), created_ns=time.time_ns(), files_dir=files_dir,
        )  # fmt: skip
        container = await docker.containers.create(request.config, name=request.name)
        await container.start()

    async def floor() -> None:
        config = {
            "Image": IMAGE, "Cmd": ["sleep", "600"], "Labels": {LABEL_STACK: stack_name},
            "HostConfig": {"NetworkMode": f"{stack_name}_default"},
        }  # fmt: skip
        container = await docker.containers.create(config, name=f"{stack_name}_floor{next(slots)}")
        await container.start()

    try:
        await engine.ensure_network(stack_name, stack.networks["default"])
        rows = []
        paths = {
            "engine.create_task+start": ours,
            "aiodocker, same config": same_config,
            "aiodocker, minimal config": floor,
        }
        singles: dict[str, list[float]] = {name: [] for name in paths}
        bursts: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(rounds):  # interleaved, so that drift in machine load hits every path alike
            for name, run in paths.items():
                singles[name].append(await _timed(run))
                bursts[name].append(await _timed(lambda: _burst(run, parallel)))
                await _remove_all(docker, stack_name)
        rows = [(name, statistics.median(singles[name]), statistics.median(bursts[name])) for name in paths]
        _print(rows, parallel)
    finally:
        await _remove_all(docker, stack_name)
        await engine.remove_stack_networks(stack_name)
        await docker.close()
        await engine.close()


async def _burst(run: Callable[[], Awaitable[None]], n: int) -> None:
    await asyncio.gather(*(run() for _ in range(n)))


async def _timed(run: Callable[[], Awaitable[None]]) -> float:
    start = time.perf_counter()
    await run()
    return time.perf_counter() - start


async def _remove_all(docker: aiodocker.Docker, stack: str) -> None:
    found = await docker.containers.list(all=True, filters={"label": [f"{LABEL_STACK}={stack}"]})
    await asyncio.gather(*(c.delete(force=True) for c in found))


def _print(rows: list[tuple[str, float, float]], parallel: int) -> None:
    floor_single, floor_burst = rows[-1][1], rows[-1][2]
    print(f"{'path':<28}{'1 container (ms)':>18}{'ratio':>8}{f'{parallel} parallel (ms)':>20}{'ratio':>8}")
    for label, single, burst in rows:
        print(f"{label:<28}{single * 1000:>18.0f}{single / floor_single:>8.2f}{burst * 1000:>20.0f}{burst / floor_burst:>8.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.parallel))
