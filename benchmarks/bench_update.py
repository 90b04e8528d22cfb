"""A rolling update of 10 replicas with parallelism 2: the orchestrator beside Swarm's
`docker stack deploy` doing the same update, in the same run.

    .venv/bin/python benchmarks/bench_update.py [--rounds 2] [--replicas 10]

Both deploy the same stack (busybox, stop-first, parallelism 2, delay 0, monitor 1s, 1 s stop
grace period), wait until every replica runs, then deploy it again with one environment variable
changed and time until the update is reported complete: our `update_state` in the services view,
Swarm's `UpdateStatus.State`. Rounds alternate between the two. A single-node swarm is created
for the run if the engine is not in one (`docker swarm init --advertise-addr 127.0.0.1`) and
left again afterwards, so the engine is left as found. The orchestrator runs in-process: its
reconciler, executor and engine gateway as the daemon wires them, without HTTP and Redis.
"""

from __future__ import annotations

import argparse
import json
import asyncio
import secrets
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import aiodocker

from orchestrator.daemon import build_loop
from orchestrator.engine import Engine
from orchestrator.loop.intake import EventIntake
from orchestrator.settings import Settings
from orchestrator.stackfile import load_stack_text
from orchestrator.loop.store import Store

IMAGE = "orchestrator-test/busybox:latest"
TIMEOUT = 300.0


def stack_yaml(version: int, replicas: int) -> str:
    return f"""\
version: "3.8"
services:
  web:
    image: {IMAGE}
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]
    environment:
      VERSION: "{version}"
    stop_grace_period: 1s
    deploy:
      replicas: {replicas}
      restart_policy: {{condition: any}}
      update_config: {{parallelism: 2, delay: 0s, monitor: 1s, order: stop-first, failure_action: pause}}
"""


async def until(check, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + TIMEOUT
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.1)


# --------------------------------------------------------------------------- the orchestrator


async def orchestrator_round(replicas: int) -> float:
    name = f"benchupd{secrets.token_hex(3)}"
    state = Path(tempfile.mkdtemp())
    engine = await Engine.connect(None)
    loop = build_loop(engine, Store(state), Settings.from_env({}, state_dir=str(state)), lambda _e: None)
    controller, reconciler = loop.controller, loop.reconciler
    tasks = [asyncio.create_task(reconciler.run()), asyncio.create_task(reconciler.follow(EventIntake(engine)))]

    async def deploy(version: int) -> None:
        await controller.deploy(load_stack_text([("s.yml", stack_yaml(version, replicas))], state, env={}, name=name))

    async def running() -> bool:
        return sum(c.status == "running" for c in await engine.list_containers(name)) == replicas

    async def completed() -> bool:
        return (await controller.services(name))[0].update_state == "completed"

    try:
        await deploy(1)
        await until(running, "first deploy")
        started = time.monotonic()
        await deploy(2)
        await until(completed, "update")
        return time.monotonic() - started
    finally:
        await controller.remove(name)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.close()


# --------------------------------------------------------------------------- swarm


def docker_cli(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(["docker", *args], input=stdin, capture_output=True, text=True, check=True)
    return done.stdout.strip()


async def swarm_round(replicas: int) -> float:
    name = f"benchupd{secrets.token_hex(3)}"

    def deploy(version: int) -> None:
        docker_cli("stack", "deploy", "--resolve-image", "never", "-c", "-", name, stdin=stack_yaml(version, replicas))

    async def running() -> bool:
        tasks = docker_cli("service", "ps", f"{name}_web", "--filter", "desired-state=running",
                           "--format", "{{.CurrentState}}")
        return sum(line.startswith("Running") for line in tasks.splitlines()) == replicas

    async def completed() -> bool:
        return docker_cli("service", "inspect", f"{name}_web", "--format", "{{if .UpdateStatus}}{{.UpdateStatus.State}}{{end}}") == "completed"

    try:
        deploy(1)
        await until(running, "first swarm deploy")
        started = time.monotonic()
        deploy(2)
        await until(completed, "swarm update")
        return time.monotonic() - started
    finally:
        docker_cli("stack", "rm", name)
        await _wait_gone(f"com.docker.stack.namespace={name}")


async def _wait_gone(label: str) -> None:
    async with aiodocker.Docker() as docker:
        for _ in range(300):
            if not await docker.containers.list(all=True, filters={"label": [label]}):
                return
            await asyncio.sleep(0.2)


def ensure_swarm() -> bool:
    """True when this run created the swarm (and must leave it)."""
    if docker_cli("info", "--format", "{{.Swarm.LocalNodeState}}") == "active":
        return False
    docker_cli("swarm", "init", "--advertise-addr", "127.0.0.1")
    return True


async def main(rounds: int, replicas: int, json_path: Path | None = None) -> None:
    created = ensure_swarm()
    ours: list[float] = []
    swarm: list[float] = []
    try:
        for _ in range(rounds):
            ours.append(await orchestrator_round(replicas))
            swarm.append(await swarm_round(replicas))
    finally:
        if created:
            docker_cli("swarm", "leave", "--force")
    base = statistics.median(swarm)
    print(f"\nRolling update of {replicas} replicas, parallelism 2, stop-first, monitor 1s; {rounds} round(s), median\n")
    print("| tool | update time s (median) | rounds | vs swarm |")
    print("|---|---:|---|---:|")
    for tool, times in (("docker stack deploy (swarm)", swarm), ("orchestrator", ours)):
        rounds_text = ", ".join(f"{t:.1f}" for t in times)
        print(f"| {tool} | {statistics.median(times):.2f} | {rounds_text} | {statistics.median(times) / base:.2f}x |")
    if json_path:  # for benchmarks/run
        json_path.write_text(json.dumps({"replicas": replicas, "ours": statistics.median(ours), "swarm": base}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--replicas", type=int, default=10)
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.replicas, args.json))
