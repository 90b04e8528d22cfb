"""Publisher throughput, latency to a subscriber, and what `publish()` costs the caller.

Run: .venv/bin/python benchmarks/bench_publisher.py [--rates 500,10000] [--seconds 2] [--burst 20000]

Beside our Publisher, the same run measures the obvious alternative: awaiting a plain
`redis.publish()` per message from the loop (the baseline). A subscriber in another process
records when each message arrives; latency is arrival minus the `publish()` call, both on this
machine's wall clock. "loop lag" is how late a 1 ms timer fires on the publishing loop while the
messages go out: it is what a reconcile loop sharing that loop would feel.
Needs a Redis (ORCHESTRATOR_REDIS_URL, default redis://127.0.0.1:6379/0); uses its own prefix.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import redis
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator import labels  # noqa: E402
from orchestrator.publishing import events  # noqa: E402
from orchestrator.model.observed import SlotKey, TaskState
from orchestrator.publishing.publisher import Publisher  # noqa: E402
from orchestrator.publishing.seq_store import SeqStore  # noqa: E402

REDIS_URL = os.environ.get("ORCHESTRATOR_REDIS_URL", "redis://127.0.0.1:6379/0")
EVENT = events.task_state(SlotKey("bench", "web", 1), None, "t1", TaskState.STARTING, TaskState.RUNNING)


def subscribe_and_record(url: str, channel: str, count: int, ready: "multiprocessing.synchronize.Event",
                         out: "multiprocessing.queues.Queue[list[tuple[int, int]]]") -> None:  # fmt: skip
    """In a child process: arrival time (ns) of each of `count` messages, by seq."""
    pubsub = redis.Redis.from_url(url).pubsub()
    pubsub.subscribe(channel)
    while (reply := pubsub.get_message(timeout=5)) is None or reply["type"] != "subscribe":
        pass
    ready.set()
    raw: list[tuple[int, bytes]] = []
    while len(raw) < count:
        reply = pubsub.get_message(timeout=30)
        if reply is None:
            break  # lost messages: reported as such
        if reply["type"] == "message":
            raw.append((time.time_ns(), reply["data"]))
    out.put([(json.loads(data)["seq"], arrived) for arrived, data in raw])


@dataclass
class Result:
    name: str
    sent: int
    received: int
    seconds: float  # first publish() call to the last arrival
    latencies_ms: list[float]
    loop_lag_ms: list[float]

    def row(self) -> str:
        lat = sorted(self.latencies_ms) or [float("nan")]
        lag = sorted(self.loop_lag_ms) or [0.0]
        return (
            f"| {self.name} | {self.sent} | {self.received} | {self.received / self.seconds:,.0f} | "
            f"{_pct(lat, 50):.2f} | {_pct(lat, 99):.2f} | {lat[-1]:.2f} | {_pct(lag, 99):.2f} | {lag[-1]:.2f} |"
        )


def _pct(values: list[float], pct: float) -> float:
    return values[min(len(values) - 1, int(len(values) * pct / 100))]


async def _loop_lag(stop: asyncio.Event, lags: list[float]) -> None:
    while not stop.is_set():
        before = time.perf_counter()
        await asyncio.sleep(0.001)
        lags.append((time.perf_counter() - before - 0.001) * 1000)


async def measure(name: str, channel: str, count: int, rate: float | None,
                  send: Callable[[int], Awaitable[None] | None]) -> Result:  # fmt: skip
    """Sends seq 1..count (at `rate`/s, or all at once), while a child process listens."""
    context = multiprocessing.get_context("spawn")
    ready, out = context.Event(), context.Queue()
    child = context.Process(target=subscribe_and_record, args=(REDIS_URL, channel, count, ready, out))
    child.start()
    await asyncio.to_thread(ready.wait, 30)
    stop, lags = asyncio.Event(), []
    ticker = asyncio.create_task(_loop_lag(stop, lags))
    sent_at: dict[int, int] = {}
    start = time.perf_counter()
    for seq in range(1, count + 1):
        if rate is not None and (ahead := start + seq / rate - time.perf_counter()) > 0:
            await asyncio.sleep(ahead)
        sent_at[seq] = time.time_ns()
        pending = send(seq)
        if pending is not None:
            await pending
    arrivals: list[tuple[int, int]] = await asyncio.to_thread(out.get, True, 60)
    stop.set()
    await ticker
    child.join()
    last = max((arrived for _, arrived in arrivals), default=time.time_ns())
    seconds = (last - sent_at[1]) / 1e9
    latencies = [(arrived - sent_at[seq]) / 1e6 for seq, arrived in arrivals]
    return Result(name, count, len(arrivals), seconds, latencies, lags)


def publish_cost(calls: int) -> list[str]:
    """ns per call of publish() (no sender running) beside the bare work it is made of."""
    publisher = Publisher(REDIS_URL, "unused", SeqStore(Path(tempfile.mkdtemp()) / "seq"), queue_limit=calls)
    plain: deque[object] = deque()

    def per_call(fn: Callable[[], object]) -> tuple[float, float]:
        samples = []
        for _ in range(calls):
            t0 = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - t0)
        samples.sort()
        return statistics.fmean(samples), samples[int(len(samples) * 0.99)]

    rows = []
    for name, fn in (
        ("Publisher.publish(event)", lambda: publisher.publish(EVENT)),
        ("deque.append (floor)", lambda: plain.append(EVENT)),
        ("event.to_json (done by the sender, not the caller)", lambda: EVENT.to_json(1, time.time())),
    ):
        mean, p99 = per_call(fn)
        rows.append(f"| {name} | {mean / 1000:.2f} | {p99 / 1000:.2f} |")
    return rows


async def main(rates: list[float], seconds: float, burst: int, json_path: Path | None = None) -> None:
    prefix = f"bench-{secrets.token_hex(4)}"
    channel = labels.events_channel(prefix)
    client = aioredis.Redis.from_url(REDIS_URL)
    results: list[Result] = []
    try:
        for paced in (*rates, None):
            n = int(paced * seconds) if paced else burst
            label = f"{paced:,.0f}/s paced" if paced else "burst (all at once)"
            with tempfile.TemporaryDirectory() as state:
                publisher = Publisher(REDIS_URL, prefix, SeqStore(Path(state) / "seq"), queue_limit=max(n, 10_000))
                sender = asyncio.create_task(publisher.run())
                results.append(await measure(f"Publisher, {label}", channel, n, paced, lambda _: publisher.publish(EVENT)))
                await publisher.close(timeout=10)
                await sender
            await client.delete(labels.events_stream(prefix))  # the next Publisher starts at seq 1
            results.append(await measure(
                f"await redis.publish() each, {label}", channel, n, paced,
                lambda seq: client.publish(channel, EVENT.to_json(seq, time.time())),
            ))  # fmt: skip
    finally:
        await client.delete(labels.events_stream(prefix))
        await client.aclose()

    print(f"\nRedis at {REDIS_URL}; subscriber in another process; {os.cpu_count()} CPUs\n")
    print("| scenario | sent | received | msgs/s delivered | latency p50 ms | p99 ms | max ms | loop lag p99 ms | max ms |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for result in results:
        print(result.row())
    ours, theirs = results[-2], results[-1]
    ratio = (ours.received / ours.seconds) / (theirs.received / theirs.seconds)
    print(f"\nburst throughput, Publisher / awaited publish per message: {ratio:.1f}x")
    print("\n| call | mean µs | p99 µs |\n| --- | --- | --- |")
    print("\n".join(publish_cost(100_000)))
    if json_path:  # for benchmarks/run: every scenario's latency to a subscriber
        json_path.write_text(json.dumps({r.name: {"p50_ms": _pct(sorted(r.latencies_ms), 50),
                                                  "p99_ms": _pct(sorted(r.latencies_ms), 99),
                                                  "received": r.received} for r in results if r.latencies_ms}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates", default="500,10000", help="paced publishing rates to measure, messages/s, comma-separated"
    )
    parser.add_argument("--seconds", type=float, default=2.0, help="how long to publish at that rate")
    parser.add_argument("--burst", type=int, default=20_000, help="messages published at once")
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    options = parser.parse_args()
    asyncio.run(main([float(rate) for rate in options.rates.split(",")], options.seconds, options.burst, options.json))
