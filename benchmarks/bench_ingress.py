"""Requests/s and p99 latency through our ingress versus without it, measured side by side.

    .venv/bin/python benchmarks/bench_ingress.py [--seconds 5] [--rounds 3] [--connections 32]

Pairs (each a ratio measured in the same run, rounds interleaved, medians reported):
  1. the demo app as a local process: direct  vs  through IngressPort;
  2. the demo image in a container (if scripts/build-images ran): the engine's own published
     port (docker-proxy on 127.0.0.1)  vs  our ingress in front of the same container, both to
     its published 127.0.0.1 port (the daemon's design) and to its bridge IP.
The load generator is wrk (Debian's `wrk`) when installed, else an aiohttp client; the ingress
runs in its own process so it does not share an interpreter with the load or the backend.
Goal (issue 6): ingress >= 0.8x the throughput, p99 <= 1.5x.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WEB_IMAGE = "orchestrator/demo-web:latest"
REDIS_IMAGE = "orchestrator/redis:7"
PY = sys.executable


@dataclass(frozen=True)
class Result:
    rps: float
    p99_ms: float
    errors: int
    proxy_cpu_us: float | None = None  # CPU time of the proxy process per request


@dataclass(frozen=True)
class Target:
    url: str
    proxy_pid: int | None = None  # whose CPU time to count (our ingress, or docker-proxy)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def docker_proxy_pid(host_port: int) -> int | None:
    """The engine's userland proxy serving a published port (read from /proc, not signalled)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"docker-proxy") and str(host_port).encode() in argv:
            return int(entry.name)
    return None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_answering(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1."):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"nothing answered on 127.0.0.1:{port} within {timeout:.0f} s")


@contextmanager
def process(args: list[str], env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def ingress_process(backend: tuple[str, int], loop: str = "asyncio") -> Iterator[Target]:
    port = free_port()
    with process([PY, __file__, "--serve-ingress", str(port), f"{backend[0]}:{backend[1]}",
                  "--loop", loop]) as proc:
        wait_answering(port)
        yield Target(f"http://127.0.0.1:{port}/", proc.pid)


# --- load ----------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def run_wrk(url: str, seconds: float, connections: int) -> Result:
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{seconds:.0f}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return Result(rps, float(value) * _UNITS[unit], errors + (int(non2xx.group(1)) if non2xx else 0))


async def _aiohttp_load(url: str, seconds: float, connections: int) -> Result:
    import aiohttp

    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal errors
        while time.monotonic() < deadline:
            start = time.perf_counter()
            try:
                async with session.get(url) as response:
                    await response.read()
                    errors += response.status != 200
            except aiohttp.ClientError:
                errors += 1
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.monotonic()
        await asyncio.gather(*(worker(session) for _ in range(connections)))
        elapsed = time.monotonic() - started
    latencies.sort()
    return Result(len(latencies) / elapsed, latencies[int(len(latencies) * 0.99)] * 1e3, errors)


def run_load(url: str, seconds: float, connections: int) -> Result:
    if shutil.which("wrk"):
        return run_wrk(url, seconds, connections)
    return asyncio.run(_aiohttp_load(url, seconds, connections))


# --- targets -------------------------------------------------------------------------------

@contextmanager
def local_app() -> Iterator[tuple[str, int]]:
    """The demo app as a local process, counting in the host's Redis under a key of its own."""
    port = free_port()
    key = f"orchestrator-bench-{secrets.token_hex(4)}:counter"
    env = {"PORT": str(port), "HOST": "127.0.0.1", "REDIS_HOST": "127.0.0.1", "COUNTER_KEY": key}
    try:
        with process([PY, str(ROOT / "app" / "demo_app.py")], env):
            wait_answering(port)
            yield ("127.0.0.1", port)
    finally:
        subprocess.run(["redis-cli", "del", key], capture_output=True, check=False)


def docker(*args: str) -> str:
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=True).stdout.strip()


@contextmanager
def demo_container() -> Iterator[tuple[int, str]]:
    """The demo image beside the local Redis image on a network of its own; yields the
    container's published 127.0.0.1 port and its bridge IP. Everything is removed after."""
    stack = f"bench{secrets.token_hex(4)}"
    label = f"orchestrator.stack={stack}"
    network = f"{stack}_webnet"
    try:
        docker("network", "create", "--label", label, network)
        docker("run", "-d", "--label", label, "--network", network, "--network-alias", "redis",
               "--name", f"{stack}_redis", REDIS_IMAGE)
        docker("run", "-d", "--label", label, "--network", network, "-p", "127.0.0.1::80",
               "--name", f"{stack}_web", WEB_IMAGE)
        published = int(docker("port", f"{stack}_web", "80/tcp").splitlines()[0].rsplit(":", 1)[1])
        ip = docker("inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                    f"{stack}_web")
        wait_answering(published)
        yield published, ip
    finally:
        ids = docker("ps", "-aq", "--filter", f"label={label}").split()
        if ids:
            docker("rm", "-f", "-v", *ids)
        subprocess.run(["docker", "network", "rm", network], capture_output=True, check=False)


def have_image(image: str) -> bool:
    return shutil.which("docker") is not None and subprocess.run(
        ["docker", "image", "inspect", image], capture_output=True, check=False).returncode == 0


# --- the run -------------------------------------------------------------------------------

def measure_one(target: Target, args: argparse.Namespace) -> Result:
    cpu_before = cpu_seconds(target.proxy_pid) if target.proxy_pid else 0.0
    result = run_load(target.url, args.seconds, args.connections)
    if not target.proxy_pid:
        return result
    cpu = cpu_seconds(target.proxy_pid) - cpu_before
    return Result(result.rps, result.p99_ms, result.errors, cpu / (result.rps * args.seconds) * 1e6)


def measure(targets: dict[str, Target], args: argparse.Namespace) -> dict[str, Result]:
    """Interleaves the targets round by round (so drift hits them alike); medians."""
    runs: dict[str, list[Result]] = {name: [] for name in targets}
    for target in targets.values():  # warm-up: connections, caches, Redis key
        run_load(target.url, 1, args.connections)
    for _ in range(args.rounds):
        for name, target in targets.items():
            runs[name].append(measure_one(target, args))
    return {name: median(results) for name, results in runs.items()}


def median(results: list[Result]) -> Result:
    cpu = [r.proxy_cpu_us for r in results if r.proxy_cpu_us is not None]
    return Result(statistics.median(r.rps for r in results), statistics.median(r.p99_ms for r in results),
                  sum(r.errors for r in results), statistics.median(cpu) if cpu else None)


def table(rows: list[tuple[str, Result, Result | None]]) -> str:
    lines = ["| path | requests/s | p99 ms | errors | proxy CPU µs/request "
             "| throughput vs baseline | p99 vs baseline |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, result, baseline in rows:
        ratio = (f"{result.rps / baseline.rps:.2f}x", f"{result.p99_ms / baseline.p99_ms:.2f}x") \
            if baseline else ("baseline", "baseline")
        cpu = "-" if result.proxy_cpu_us is None else f"{result.proxy_cpu_us:.0f}"
        lines.append(f"| {name} | {result.rps:,.0f} | {result.p99_ms:.2f} | {result.errors} | {cpu} | "
                     f"{ratio[0]} | {ratio[1]} |")
    return "\n".join(lines)


def bench(args: argparse.Namespace) -> None:
    load = "wrk -t2" if shutil.which("wrk") else "aiohttp client"
    print(f"load: {load}, {args.connections} connections, {args.rounds} x {args.seconds:.0f} s per "
          f"path (medians), GET / of the demo app (one Redis INCR per request)\n")
    with local_app() as app, ExitStack() as stack:
        targets = {"direct": Target(f"http://127.0.0.1:{app[1]}/"),
                   "ingress": stack.enter_context(ingress_process(app))}
        if importlib.util.find_spec("uvloop"):  # not a dependency: shown when installed
            targets["uvloop"] = stack.enter_context(ingress_process(app, "uvloop"))
        r = measure(targets, args)
    rows = [("app process, direct", r["direct"], None),
            ("app process, through IngressPort", r["ingress"], r["direct"])]
    if "uvloop" in r:
        rows.append(("app process, through IngressPort on uvloop", r["uvloop"], r["direct"]))
    if have_image(WEB_IMAGE) and have_image(REDIS_IMAGE):
        with demo_container() as (published, ip), ingress_process(("127.0.0.1", published)) as via_proxy, \
                ingress_process((ip, 80)) as via_ip:
            proxy = Target(f"http://127.0.0.1:{published}/", docker_proxy_pid(published))
            c = measure({"proxy": proxy, "ingress-published": via_proxy, "ingress-ip": via_ip}, args)
        rows += [("container, docker-proxy (-p 127.0.0.1::80)", c["proxy"], None),
                 ("container, IngressPort -> its 127.0.0.1 published port", c["ingress-published"], c["proxy"]),
                 ("container, IngressPort -> its bridge IP:80", c["ingress-ip"], c["proxy"])]
    else:
        print(f"({WEB_IMAGE} or {REDIS_IMAGE} missing: run scripts/build-images for the container rows)\n")
    print(table(rows))


async def serve_ingress(port: int, backend: str) -> None:
    sys.path.insert(0, str(ROOT))
    from orchestrator.ingress.proxy import IngressPort
    from orchestrator.logs import configure_logging

    configure_logging(level="warning")
    host, _, backend_port = backend.rpartition(":")
    front = IngressPort("127.0.0.1", port)
    await front.start()
    front.set_upstreams([(host, int(backend_port))])
    try:
        await asyncio.Event().wait()
    finally:
        await front.close(drain_timeout=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--serve-ingress", nargs=2, metavar=("PORT", "HOST:PORT"), help=argparse.SUPPRESS)
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="asyncio", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_ingress:
        import signal

        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        runner = asyncio.run
        if args.loop == "uvloop":
            import uvloop

            runner = uvloop.run
        runner(serve_ingress(int(args.serve_ingress[0]), args.serve_ingress[1]))
        return
    bench(args)


if __name__ == "__main__":
    main()
