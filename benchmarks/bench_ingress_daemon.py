"""Requests/s and p99 through the real daemon's ingress versus the engine's own published port.

    .venv/bin/python benchmarks/bench_ingress_daemon.py [--seconds 5] [--rounds 3] [--connections 32]

Starts `python -m orchestrator daemon` (its own state dir, API port and Redis prefix; ingress on
127.0.0.1, in the process of its own the daemon spawns: docs/dataplane.md) and deploys, with the CLI, one stack of the demo image with two services of one
replica each on the same network and Redis:
  web     ports "P:80" (mode ingress): the daemon listens on P and relays to the replica;
  direct  ports {published: Q, host_ip: 127.0.0.1, mode: host}: the engine's docker-proxy.
Both run without healthcheck. The same load generator (wrk when installed, else an aiohttp
client) runs against both, rounds interleaved, medians reported. Goal (issue 16): ingress >= 1.0x
docker-proxy's throughput, and p99 no worse (ratio <= 1.0). The CPU column counts the ingress
process. The stack, the daemon and its ingress are removed afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import secrets
import signal
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench_ingress import (
    PY, REDIS_IMAGE, ROOT, WEB_IMAGE, Target, docker_proxy_pid, free_port, have_image, measure,
    process, table, wait_answering,
)

# No healthcheck: on this saturated machine a probe can time out, and the daemon then stops the
# replica as unhealthy (Swarm's rule), which would measure that rather than the two proxies.
STACK = """\
services:
  web:
    image: {web}
    healthcheck: {{disable: true}}
    ports: ["{ingress_port}:80"]
  direct:
    image: {web}
    healthcheck: {{disable: true}}
    ports:
      - {{target: 80, published: {direct_port}, host_ip: 127.0.0.1, mode: host}}
  redis:
    image: {redis}
"""


@contextmanager
def daemon(state_dir: Path) -> Iterator[tuple[dict[str, str], int]]:
    """The daemon as a process; yields the environment the CLI needs to reach it, and the pid
    of its ingress process."""
    api = free_port()
    env = {
        "ORCHESTRATOR_LISTEN": f"127.0.0.1:{api}",
        "ORCHESTRATOR_HOST": f"http://127.0.0.1:{api}",
        "ORCHESTRATOR_STATE_DIR": str(state_dir),
        "ORCHESTRATOR_PREFIX": f"orchestrator-bench-{secrets.token_hex(4)}",
        "ORCHESTRATOR_INGRESS_HOST": "127.0.0.1",
        "ORCHESTRATOR_LOG_LEVEL": "warning",
    }
    try:
        with process([PY, "-m", "orchestrator", "daemon"], env) as proc:
            deadline = time.monotonic() + 30
            while cli(env, "ls", check=False).returncode != 0:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the daemon did not start")
                time.sleep(0.2)
            yield env, int((state_dir / "ingress.pid").read_text())
    finally:  # the ingress it left running, and the event stream it kept under its own prefix
        with contextlib.suppress(OSError, ValueError):
            os.kill(int((state_dir / "ingress.pid").read_text()), signal.SIGTERM)
        subprocess.run(["redis-cli", "del", f"{env['ORCHESTRATOR_PREFIX']}:stream"],
                       capture_output=True, check=False)


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PY, "-m", "orchestrator", *args], env={**os.environ, **env}, cwd=ROOT,
                          capture_output=True, text=True, check=check)


@contextmanager
def deployed(env: dict[str, str], stack_file: Path, stack: str) -> Iterator[None]:
    try:
        cli(env, "deploy", "-c", str(stack_file), stack, "--wait", "--timeout", "60")
        yield
    finally:
        cli(env, "rm", "--volumes", stack, check=False)


def bench(args: argparse.Namespace) -> None:
    if not (have_image(WEB_IMAGE) and have_image(REDIS_IMAGE)):
        raise SystemExit(f"{WEB_IMAGE} or {REDIS_IMAGE} is missing: run scripts/build-images")
    load = "wrk -t2" if shutil.which("wrk") else "aiohttp client"
    print(f"load: {load}, {args.connections} connections, {args.rounds} x {args.seconds:.0f} s per "
          "path (medians), GET / of the demo app (one Redis INCR per request), one replica each\n")
    ingress_port, direct_port = free_port(), free_port()
    stack = f"bench{secrets.token_hex(4)}"
    with tempfile.TemporaryDirectory(prefix="orchestrator-bench-") as tmp:
        stack_file = Path(tmp) / "stack.yml"
        stack_file.write_text(STACK.format(web=WEB_IMAGE, redis=REDIS_IMAGE,
                                           ingress_port=ingress_port, direct_port=direct_port))
        with daemon(Path(tmp) / "state") as (env, ingress_pid), deployed(env, stack_file, stack):
            wait_answering(ingress_port)
            wait_answering(direct_port)
            targets = {
                "proxy": Target(f"http://127.0.0.1:{direct_port}/", docker_proxy_pid(direct_port)),
                "daemon": Target(f"http://127.0.0.1:{ingress_port}/", ingress_pid),
            }
            r = measure(targets, args)
    print(table([
        ("engine's published port (docker-proxy, mode: host)", r["proxy"], None),
        ("the ingress process (mode: ingress) -> replica's network IP", r["daemon"], r["proxy"]),
    ]))
    print("\n(proxy CPU: docker-proxy's, and the ingress process's for the ingress row)")
    if args.json:  # for benchmarks/run
        args.json.write_text(json.dumps({name: dataclasses.asdict(result) for name, result in r.items()}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    bench(parser.parse_args())


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
