"""What open dashboards cost the daemon: its CPU with 5 dashboards against none, in one run.

    .venv/bin/python benchmarks/bench_dashboard.py [--replicas 100] [--pages 5] [--idle 30]
                                                   [--kills 20] [--rounds 2] [--json FILE]

The real daemon (`python -m orchestrator daemon`, its own state dir, port and Redis prefix) runs
one busybox service of --replicas replicas. Each round measures the daemon's CPU time
(utime + stime from /proc) twice without dashboards and twice with --pages real dashboards open
(headless Chromium from Debian, one browser context each, as separate users' tabs): while
nothing happens (--idle seconds), and over a burst of --kills replica kills (50 ms apart) until
every replica runs again and has its standby (docs/standby.md). Rounds alternate the order, so drift in the machine's load hits both
alike. The pages' own requests are counted too: after the first load they should only hold
their event streams (updates come from events, not polling). Goal (issue 17): <= 1.2x of none.

Progress goes to stderr, the markdown table to stdout. The stack is removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiodocker

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_ingress import cpu_seconds  # noqa: E402 - a sibling script
from orchestrator.labels import LABEL_STACK, LABEL_STANDBY  # noqa: E402
from tests.integration.browser import Dashboard, chromium, missing_browser  # noqa: E402
from tests.integration.daemon_process import DaemonProcess  # noqa: E402

IMAGE = "orchestrator-test/busybox:latest"
KILL_GAP_S = 0.05
SETTLE_S = 3.0


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def stack_text(replicas: int) -> str:
    # init: busybox sleep as PID 1 ignores SIGTERM; restart at once (no delay), as by default.
    return (f"services:\n  web:\n    image: {IMAGE}\n    init: true\n"
            f"    command: [\"sleep\", \"3600\"]\n    deploy:\n      replicas: {replicas}\n")


@dataclass
class Phase:
    """CPU seconds of the daemon per run of one phase, and the pages' requests meanwhile."""

    cpu: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)


@dataclass
class Bench:
    daemon: DaemonProcess
    docker: aiodocker.Docker
    stack: str
    replicas: int
    #: Requests the open pages made (API calls and event-stream connections).
    page_requests: int = 0
    #: Of those, what their first loads took (the views, the stream's replay).
    first_load_requests: int = 0

    @property
    def pid(self) -> int:
        assert self.daemon.process is not None
        return self.daemon.process.pid

    async def running_ids(self) -> set[str]:
        listed = await self.docker.containers.list(
            filters={"label": [f"{LABEL_STACK}={self.stack}"], "status": ["running"]})
        return {c.id for c in listed}

    async def standbys(self) -> int:
        listed = await self.docker.containers.list(all=True, filters={
            "label": [f"{LABEL_STACK}={self.stack}", f"{LABEL_STANDBY}=1"], "status": ["created"]})
        return len(listed)

    async def wait_settled(self, killed: set[str] = frozenset(), timeout: float = 180) -> None:
        """Every replica runs (none of `killed`) and has its standby again (docs/standby.md)."""
        async with asyncio.timeout(timeout):
            while True:
                ids = await self.running_ids()
                if len(ids) >= self.replicas and not ids & killed and await self.standbys() >= self.replicas:
                    return
                await asyncio.sleep(0.2)

    async def measure(self, phase: Phase, work: Any) -> None:
        requests = self.page_requests
        started, cpu = time.monotonic(), cpu_seconds(self.pid)
        await work()
        phase.cpu.append(cpu_seconds(self.pid) - cpu)
        phase.seconds.append(time.monotonic() - started)
        phase.requests.append(self.page_requests - requests)

    async def idle(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def burst(self, kills: int) -> None:
        """Kill `kills` running replicas, 50 ms apart, then wait until all run again."""
        victims = sorted(await self.running_ids())[:kills]
        for container_id in victims:
            with contextlib.suppress(aiodocker.DockerError):  # gone meanwhile
                await self.docker.containers.container(container_id).kill()
            await asyncio.sleep(KILL_GAP_S)
        await self.wait_settled(set(victims))
        await asyncio.sleep(SETTLE_S)  # the last messages go out, the pages draw them


@contextlib.asynccontextmanager
async def dashboards(bench: Bench, browser: Any, pages: int) -> AsyncIterator[list[Dashboard]]:
    """`pages` dashboards, each in its own browser context, loaded and live with every tile."""
    contexts = [await browser.new_context(viewport={"width": 1280, "height": 900}) for _ in range(pages)]
    opened = []
    before = bench.page_requests
    try:
        for context in contexts:
            page = await context.new_page()
            page.on("request", lambda request: _count(bench, request))
            dashboard = Dashboard(page, bench.daemon.url)
            await dashboard.open(bench.daemon.token)
            await dashboard.wait_live()
            running = dashboard.tiles(bench.stack, "web").and_(page.locator('[data-state="running"]'))
            await running.nth(bench.replicas - 1).wait_for(timeout=60_000)
            opened.append(dashboard)
        await asyncio.sleep(SETTLE_S)  # the first loads' replays are over
        bench.first_load_requests = bench.page_requests - before
        yield opened
    finally:
        for context in contexts:
            await context.close()
        await asyncio.sleep(1)  # the daemon ends their streams (handler cancellation)


def _count(bench: Bench, request: Any) -> None:
    if "/v1/" in request.url:
        bench.page_requests += 1


async def run(args: argparse.Namespace) -> tuple[dict[str, Phase], int]:
    phases = {key: Phase() for key in ("idle none", "idle pages", "burst none", "burst pages")}
    with tempfile.TemporaryDirectory(prefix="orchestrator-bench-dashboard-") as state:
        daemon = DaemonProcess(Path(state) / "state", f"orchestrator-bench-{secrets.token_hex(3)}")
        await daemon.start()
        stack = f"bench-dash-{secrets.token_hex(3)}"
        async with aiodocker.Docker() as docker, chromium() as browser:
            bench = Bench(daemon, docker, stack, args.replicas)
            try:
                say(f"deploying {args.replicas} replicas")
                await daemon.deploy(stack, stack_text(args.replicas))
                await bench.wait_settled(timeout=300)
                await asyncio.sleep(SETTLE_S)
                for round_ in range(args.rounds):
                    for with_pages in ((False, True) if round_ % 2 == 0 else (True, False)):
                        await measure_pair(bench, browser, args, phases, with_pages)
                    say(f"round {round_ + 1}: " + ", ".join(
                        f"{name} {phase.cpu[-1]:.2f} s" for name, phase in phases.items()))
            finally:
                await daemon.request("DELETE", f"/v1/stacks/{stack}")
                await daemon.stop()
    return phases, bench.first_load_requests


async def measure_pair(bench: Bench, browser: Any, args: argparse.Namespace,
                       phases: dict[str, Phase], with_pages: bool) -> None:
    suffix = "pages" if with_pages else "none"
    async with contextlib.AsyncExitStack() as stack:
        if with_pages:
            await stack.enter_async_context(dashboards(bench, browser, args.pages))
        await bench.measure(phases[f"idle {suffix}"], lambda: bench.idle(args.idle))
        await bench.measure(phases[f"burst {suffix}"], lambda: bench.burst(args.kills))


def summary(phases: dict[str, Phase], first_load: int, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"replicas": args.replicas, "pages": args.pages, "kills": args.kills,
                           "idle_seconds": args.idle, "rounds": args.rounds,
                           "first_load_requests": first_load}
    for kind in ("idle", "burst"):
        none, pages = phases[f"{kind} none"], phases[f"{kind} pages"]
        out[kind] = {
            "none_cpu_s": statistics.median(none.cpu),
            "pages_cpu_s": statistics.median(pages.cpu),
            "none_wall_s": statistics.median(none.seconds),
            "pages_wall_s": statistics.median(pages.seconds),
            "ratio": statistics.median(pages.cpu) / statistics.median(none.cpu) if any(none.cpu) else None,
            "page_requests": max(pages.requests),
        }
    return out


def table(result: dict[str, Any]) -> str:
    lines = [
        f"| phase ({result['replicas']} replicas) | daemon CPU, no dashboard (s) | daemon CPU, "
        f"{result['pages']} dashboards (s) | ratio | requests by the {result['pages']} pages |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for kind, label in (("idle", f"idle {result['idle_seconds']:.0f} s"),
                        ("burst", f"{result['kills']} kills until all run again")):
        row = result[kind]
        ratio = "–" if row["ratio"] is None else f"{row['ratio']:.2f}×"
        lines.append(f"| {label} | {row['none_cpu_s']:.2f} | {row['pages_cpu_s']:.2f} | {ratio} | "
                     f"{row['page_requests']} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicas", type=int, default=100)
    parser.add_argument("--pages", type=int, default=5)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of each idle phase")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    args = parser.parse_args()
    if why := missing_browser():
        raise SystemExit(why)
    result = summary(*asyncio.run(run(args)), args)
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    print(f"\n{table(result)}\n\nMedians of {args.rounds} rounds; the {args.pages} pages' first loads "
          f"took {result['first_load_requests']} requests; load average at the end {load}.")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
