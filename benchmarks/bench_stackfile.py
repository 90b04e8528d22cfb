"""Load a generated 500-service stack file with `load_stack` and with `docker stack config -c`
on the same file in the same run; print a markdown table of medians and their ratio.

    .venv/bin/python benchmarks/bench_stackfile.py [--services 500] [--runs 7]

`docker stack config` needs no Swarm: it only loads, interpolates and merges the file.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from orchestrator.stackfile import load_stack

_VOLUMES = 10


def generate(services: int) -> str:
    """A stack exercising the common keys: interpolation, ports, volumes, deploy, healthcheck."""
    lines = ['version: "3.8"', "services:"]
    for i in range(services):
        lines += [
            f"  svc{i}:",
            f"    image: ${{IMAGE:-busybox}}:{i}",
            '    command: ["sleep", "1000"]',
            "    environment:",
            f"      INDEX: '{i}'",
            "      MODE: production",
            "    labels:",
            f"      com.example.index: '{i}'",
            "    ports:",
            f'      - "{10000 + i}:80"',
            "    networks: [front, back]",
            "    volumes:",
            f"      - data{i % _VOLUMES}:/data",
            "    stop_grace_period: 30s",
            "    deploy:",
            "      replicas: 2",
            "      resources:",
            "        limits: {cpus: '0.5', memory: 50M}",
            "      restart_policy:",
            "        condition: on-failure",
            "        delay: 5s",
            "        max_attempts: 3",
            "      update_config: {parallelism: 1, delay: 10s, order: start-first}",
            "    healthcheck:",
            '      test: ["CMD", "true"]',
            "      interval: 10s",
            "      retries: 3",
        ]
    lines += ["networks:", "  front: {}", "  back: {}", "volumes:"]
    lines += [f"  data{i}: {{}}" for i in range(_VOLUMES)]
    return "\n".join(lines) + "\n"


def median_seconds(actions: list[Callable[[], object]], runs: int) -> list[float]:
    """Median time of each action; runs are interleaved so machine noise hits all alike."""
    for action in actions:
        action()  # warm-up: imports, page cache
    timings: list[list[float]] = [[] for _ in actions]
    for _ in range(runs):
        for action, times in zip(actions, timings, strict=True):
            start = time.perf_counter()
            action()
            times.append(time.perf_counter() - start)
    return [statistics.median(times) for times in timings]


def docker_stack_config(path: Path) -> Callable[[], object] | str:
    """The timed call, or why it cannot run here."""
    docker = shutil.which("docker")
    if docker is None:
        return "docker CLI not found"
    command = [docker, "stack", "config", "-c", str(path)]
    probe = subprocess.run(command, capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`docker stack config` failed: {probe.stderr.strip()[:200]}"
    return lambda: subprocess.run(command, capture_output=True, check=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--services", type=int, default=500)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures to this file as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "stack.yml"
        text = generate(args.services)
        path.write_text(text)
        docker = docker_stack_config(path)
        actions: list[Callable[[], object]] = [lambda: load_stack(path, env={})]
        if callable(docker):
            actions.append(docker)
        ours, *rest = median_seconds(actions, args.runs)
        theirs = rest[0] if rest else None
    print(f"Stack file: {args.services} services, {len(text.splitlines())} lines; median of {args.runs} runs.\n")
    print("| loader | median (ms) | ratio (docker / ours) |")
    print("|---|---:|---:|")
    print(f"| `load_stack` (this project) | {ours * 1000:.1f} | |")
    if theirs is None:
        print(f"| `docker stack config -c` | could not run: {docker} | |")
    else:
        print(f"| `docker stack config -c` | {theirs * 1000:.1f} | {theirs / ours:.2f}x |")
    if args.json:  # for benchmarks/run
        args.json.write_text(json.dumps({"services": args.services, "ours_s": ours, "docker_s": theirs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
