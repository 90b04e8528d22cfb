"""Latency of the HTTP API: `GET /v1/stacks/{s}/tasks` (the `ps` view) on a stack of N
replicas and a no-op redeploy (`PUT` of the same stack file), against `GET /v1/health` as the
baseline measured in the same run (timings on a shared machine only mean something as ratios).

    python benchmarks/bench_api.py --spawn                             # starts the real daemon
    python benchmarks/bench_api.py --host http://127.0.0.1:7420        # a running daemon (its token:
                                                                       # ORCHESTRATOR_TOKEN, else its token file)
    python benchmarks/bench_api.py --fake                              # the app over a fake Control

The stack `bench-api-<random>` (one busybox service of --replicas replicas) is deployed first and
removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import statistics
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from orchestrator.access import client_token  # noqa: E402
from orchestrator.cli.client import Client  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402

STACK = f"bench-api-{secrets.token_hex(3)}"
IMAGE = "orchestrator-test/busybox:latest"


def stack_text(replicas: int) -> str:
    # init: busybox sleep as PID 1 ignores SIGTERM; without it `rm` waits out the grace period.
    return (f"services:\n  web:\n    image: {IMAGE}\n    init: true\n"
            f"    command: [\"sleep\", \"3600\"]\n    deploy:\n      replicas: {replicas}\n")


async def timed(call: Callable[[], Awaitable[object]], count: int) -> list[float]:
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1] if len(samples) > 1 else samples[0]


@contextlib.asynccontextmanager
async def fake_daemon() -> AsyncIterator[tuple[str, str]]:
    from aiohttp import web  # noqa: PLC0415 - only for --fake

    from orchestrator.api import make_app  # noqa: PLC0415
    from tests.unit.fake_control import FakeControl  # noqa: PLC0415

    token = secrets.token_urlsafe(16)
    runner = web.AppRunner(make_app(FakeControl(), Settings(token=token)), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", token
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def spawned_daemon() -> AsyncIterator[tuple[str, str]]:
    """`python -m orchestrator daemon` with its own state dir, port and Redis prefix."""
    import tempfile  # noqa: PLC0415

    from tests.integration.daemon_process import DaemonProcess  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="bench-api-") as state:
        daemon = DaemonProcess(Path(state), f"bench-api-{secrets.token_hex(4)}")
        await daemon.start()
        try:
            yield daemon.url, daemon.token
        except BaseException:
            print(daemon.log_tail(), file=sys.stderr)
            raise
        finally:
            await daemon.stop()
            await delete_redis_keys(daemon.prefix)


async def delete_redis_keys(prefix: str) -> None:
    import redis.asyncio as aioredis  # noqa: PLC0415

    from tests.integration.conftest import REDIS_URL, delete_prefixed  # noqa: PLC0415

    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        await delete_prefixed(client, prefix)
    finally:
        await client.aclose()


async def wait_running(client: Client, replicas: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        [service] = await client.services(STACK)
        if service["replicas_running"] == replicas:
            return
        await asyncio.sleep(0.5)
    raise SystemExit(f"stack {STACK} did not reach {replicas} running replicas in {timeout} s")


async def measure(host: str, token: str, replicas: int, count: int, json_path: Path | None = None) -> None:
    files = [("stack.yml", stack_text(replicas))]
    async with Client(host, token) as client:
        await client.deploy(STACK, files, {}, "/")
        try:
            await wait_running(client, replicas, timeout=300)
            rows = [
                ("GET /v1/health (baseline)", await timed(lambda: client.request("GET", "/v1/health"), count)),
                (f"GET tasks, {replicas} replicas", await timed(lambda: client.tasks(STACK), count)),
                ("PUT no-op redeploy", await timed(lambda: client.deploy(STACK, files, {}, "/"), count)),
            ]
        finally:
            await client.remove(STACK)
    base = statistics.median(rows[0][1])
    print(f"{'request':32} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'p50/baseline':>13}")
    for name, samples in rows:
        p50 = statistics.median(samples)
        print(f"{name:32} {len(samples):5d} {p50:8.2f} {percentile(samples, 99):8.2f} {p50 / base:13.1f}")
    if json_path:  # for benchmarks/run
        json_path.write_text(json.dumps({name: {"p50_ms": statistics.median(samples), "p99_ms": percentile(samples, 99)}
                                         for name, samples in rows}))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=os.environ.get("ORCHESTRATOR_HOST", "http://127.0.0.1:7420"))
    parser.add_argument("--fake", action="store_true", help="serve the app over a fake Control")
    parser.add_argument("--spawn", action="store_true", help="start the real daemon for the run")
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--count", type=int, default=300, help="requests per measurement")
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    args = parser.parse_args()
    if args.fake or args.spawn:
        async with (fake_daemon() if args.fake else spawned_daemon()) as (host, token):
            await measure(host, token, args.replicas, args.count, args.json)
    else:
        settings = Settings.from_env(host=args.host)
        await measure(args.host, client_token(settings, args.host), args.replicas, args.count, args.json)


if __name__ == "__main__":
    asyncio.run(main())
