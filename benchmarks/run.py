"""Runs every benchmark of the project and prints one markdown table of our figures beside Docker
Swarm and the engine's own restart policy, with ratios; writes it into docs/benchmarks.md.

    benchmarks/run [--quick] [--no-write] [--scale]

Each benchmark script runs as a subprocess with `--json FILE` (smaller round counts than their
defaults so the whole run stays under 15 minutes) and its own progress on stderr; this script only
collects the files. Nothing is installed: a missing tool or image is reported and its rows say so.
Every script removes what it created; this one leaves nothing but the docs file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
DOC = ROOT / "docs" / "benchmarks.md"
MARK = "<!-- benchmarks/run -->"

#: name -> (script and its arguments, quick arguments); run in this order.
BENCHMARKS: dict[str, tuple[list[str], list[str]]] = {
    "stackfile": (["bench_stackfile.py", "--runs", "5"], ["bench_stackfile.py", "--runs", "3"]),
    "reconciler": (["bench_reconciler.py", "--rounds", "1", "--kills", "12", "--idle", "20"],
                   ["bench_reconciler.py", "--replicas", "1,10", "--rounds", "1", "--kills", "4", "--idle", "0",
                    "--no-scale"]),
    "update": (["bench_update.py", "--rounds", "1"], ["bench_update.py", "--rounds", "1"]),
    "events": (["bench_publisher.py", "--rates", "500", "--seconds", "4", "--burst", "10000"],
               ["bench_publisher.py", "--rates", "500", "--seconds", "1", "--burst", "2000"]),
    "ingress": (["bench_ingress_daemon.py", "--seconds", "4", "--rounds", "2"],
                ["bench_ingress_daemon.py", "--seconds", "2", "--rounds", "1"]),
    "api": (["bench_api.py", "--spawn", "--replicas", "50", "--count", "150"],
            ["bench_api.py", "--spawn", "--replicas", "10", "--count", "50"]),
    "hostile": (["bench_hostile.py", "--rounds", "3"], ["bench_hostile.py", "--rounds", "1", "--phase", "8"]),
    "dashboard": (["bench_dashboard.py", "--rounds", "1", "--idle", "15", "--kills", "10"],
                  ["bench_dashboard.py", "--replicas", "10", "--pages", "2", "--idle", "5", "--kills", "3",
                   "--rounds", "1"]),
}
#: Only with --scale (it takes many minutes and thousands of containers): issue 18's figures.
SCALE_BENCHMARK: tuple[list[str], list[str]] = (
    ["bench_scale.py", "--sizes", "10,100,1000", "--kills", "10", "--fair", "500", "--storm", "100,500",
     "--stacks", "200x5"],
    ["bench_scale.py", "--sizes", "10,50", "--kills", "3", "--idle", "5", "--sweep", "20", "--fair", "30",
     "--storm", "5,20", "--storm-seconds", "10", "--storm-kills", "2", "--stacks", "10x3"],
)


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def missing_tools() -> list[str]:
    notes = []
    if shutil.which("docker") is None:
        notes.append("docker CLI missing: no benchmark can run")
    if shutil.which("wrk") is None:
        notes.append("wrk missing (apt-get install wrk): ingress load comes from an aiohttp client instead")
    if not Path("/usr/bin/chromium").exists():
        notes.append("chromium missing (scripts/setup installs it): no dashboard rows")
    for image in ("orchestrator-test/busybox:latest", "orchestrator/demo-web:latest", "orchestrator/redis:7"):
        if subprocess.run(["docker", "image", "inspect", image], capture_output=True, check=False).returncode:
            notes.append(f"image {image} missing (scripts/setup, scripts/build-images)")
    return notes


def run_all(quick: bool, work: Path, scale: bool = False) -> tuple[dict[str, Any], dict[str, str]]:
    results: dict[str, Any] = {}
    failures: dict[str, str] = {}
    for name, (full, short) in {**BENCHMARKS, **({"scale": SCALE_BENCHMARK} if scale else {})}.items():
        script, *args = short if quick else full
        out = work / f"{name}.json"
        say(f"{name}: {script} {' '.join(args)}")
        started = time.monotonic()
        done = subprocess.run([PY, str(ROOT / "benchmarks" / script), *args, "--json", str(out)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True, check=False)
        say(f"{name}: {time.monotonic() - started:.0f} s, exit {done.returncode}")
        if done.returncode == 0 and out.exists():
            results[name] = json.loads(out.read_text())
        else:
            failures[name] = f"exit {done.returncode}"
    return results, failures


def fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def ratio(ours: float | None, other: float | None) -> str:
    return f"{ours / other:.2f}×" if ours is not None and other else "–"


def rows(r: dict[str, Any]) -> list[tuple[str, float | None, float | None, float | None, int]]:
    """(measure, ours, Swarm, engine restart policy / floor, digits)."""
    out: list[tuple[str, float | None, float | None, float | None, int]] = []
    rec = r.get("reconciler", {})
    for n, row in sorted(rec.get("converge", {}).items(), key=lambda item: int(item[0])):
        out.append((f"converge {n} replica{'s' if n != '1' else ''} (s)", row["ours"], row["swarm"], row["floor"], 2))
    rep = rec.get("replacement_ms", {})
    for q in ("p50", "p95"):
        out.append((f"replacement {q}, die → start (ms)", *(rep.get(k, {}).get(q) for k in ("ours", "swarm", "floor")), 0))
    scale = rec.get("scale", {})
    out.append(("scale 10→50→10 (s)", scale.get("ours"), scale.get("swarm"), scale.get("floor"), 2))
    upd = r.get("update", {})
    out.append((f"rolling update of {upd.get('replicas', 10)} (s)", upd.get("ours"), upd.get("swarm"), None, 2))
    events = r.get("events", {})
    ours = next((v for k, v in events.items() if k.startswith("Publisher") and "paced" in k), {})
    plain = next((v for k, v in events.items() if k.startswith("await") and "paced" in k), {})
    for q in ("p50", "p99"):
        out.append((f"event latency {q}, publish → subscriber (ms; vs awaited PUBLISH)",
                    ours.get(f"{q}_ms"), None, plain.get(f"{q}_ms"), 2))
    ing = r.get("ingress", {})
    daemon, proxy = ing.get("daemon", {}), ing.get("proxy", {})
    out.append(("ingress throughput (req/s; vs docker-proxy)", daemon.get("rps"), None, proxy.get("rps"), 0))
    out.append(("ingress p99 (ms; vs docker-proxy)", daemon.get("p99_ms"), None, proxy.get("p99_ms"), 1))
    idle = rec.get("idle", {})
    out.append((f"daemon CPU, 100 replicas idle {idle.get('seconds', 0):.0f} s (% of a core)",
                idle.get("cpu_percent"), None, None, 2))
    out.append(("daemon RSS, 100 replicas idle (MB)", idle.get("rss_mb"), None, None, 1))
    stack = r.get("stackfile", {})
    out.append((f"load a {stack.get('services', 500)}-service stack file (ms; vs `docker stack config`)",
                _ms(stack.get("ours_s")), None, _ms(stack.get("docker_s")), 1))
    api = r.get("api", {})
    tasks = next((v for k, v in api.items() if k.startswith("GET tasks")), {})
    base = next((v for k, v in api.items() if "health" in k), {})
    out.append((f"API `ps` p50 (ms; vs GET /v1/health)", tasks.get("p50_ms"), None, base.get("p50_ms"), 2))
    hostile = r.get("hostile", {})
    for key, what in (("replacement_ms", "replacement p50"), ("ingress_ms", "ingress round trip p50")):
        out.append((f"{what} during worst-case deploys (ms; vs idle)", hostile.get("hostile", {}).get(key, {}).get("p50"),
                    None, hostile.get("idle", {}).get(key, {}).get("p50"), 0 if key == "replacement_ms" else 1))
    dash = r.get("dashboard", {})
    pages, replicas = dash.get("pages", 5), dash.get("replicas", 100)
    for kind, label in (("idle", f"idle {dash.get('idle_seconds', 0):.0f} s"),
                        ("burst", f"{dash.get('kills', 0)} kills")):
        row = dash.get(kind, {})
        out.append((f"daemon CPU with {pages} dashboards, {replicas} replicas, {label} (s; vs none)",
                    row.get("pages_cpu_s"), None, row.get("none_cpu_s"), 2))
    for row in r.get("scale", {}).get("rows", []):  # bench_scale.py: each beside its floor
        out.append((f"scale: {row['measure']}", row["ours"], None, row["floor"], 2))
    return out


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def table(results: dict[str, Any]) -> str:
    lines = ["| measure | ours | Swarm | engine restart policy / baseline | ours/Swarm | ours/baseline |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for name, ours, swarm, floor, digits in rows(results):
        lines.append(f"| {name} | {fmt(ours, digits)} | {fmt(swarm, digits)} | {fmt(floor, digits)} "
                     f"| {ratio(ours, swarm)} | {ratio(ours, floor)} |")
    return "\n".join(lines)


def machine() -> str:
    memory = next((line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines()
                   if line.startswith("MemTotal")), "0")
    engine = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True,
                            text=True, check=False).stdout.strip() or "unknown"
    load = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return (f"{os.cpu_count()} CPUs (nproc), {int(memory) / 1024 / 1024:.1f} GiB memory, Docker engine {engine}; "
            f"load average at the end {load}")


def write_doc(text: str) -> None:
    """Replaces the section this script wrote last time (or adds it under the title)."""
    current = DOC.read_text() if DOC.exists() else "# Benchmarks\n"
    section = f"{MARK}\n## All benchmarks (`benchmarks/run`)\n\n{text}\n{MARK}\n"
    pattern = re.compile(re.escape(MARK) + ".*?" + re.escape(MARK) + "\n?", re.S)
    if pattern.search(current):
        DOC.write_text(pattern.sub(lambda _: section, current))
    else:  # first time: right under the title, above the older single-benchmark reports
        title, _, rest = current.partition("\n")
        DOC.write_text(f"{title}\n\n{section}\n{rest.lstrip(chr(10))}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer replicas and rounds (a smoke run)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    parser.add_argument("--scale", action="store_true",
                        help="also bench_scale.py (issue 18: up to 1,000 replicas, many minutes)")
    args = parser.parse_args()
    notes = missing_tools()
    for note in notes:
        say(note)
    started = time.monotonic()
    load_before = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    with tempfile.TemporaryDirectory(prefix="orchestrator-benchmarks-") as work:
        results, failures = run_all(args.quick, Path(work), args.scale)
    text = "\n".join([
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {machine()} (at the start {load_before}); "
        f"{time.monotonic() - started:.0f} s{' (--quick)' if args.quick else ''}.",
        "",
        table(results),
        "",
        "Swarm: a single-node swarm, `docker stack deploy`, restart delay 0s. Engine restart policy: "
        "N parallel `docker run -d` for converge, the engine restarting the container in place "
        "(`--restart on-failure`) for replacement, 40 parallel `docker run -d` then one `docker rm -f` "
        "of the 40 for scale. Other baselines are named in the row. "
        "Converge and update: one round each (median of more with the scripts' defaults).",
        *(f"\n- {name}: did not finish ({why}); its rows show –" for name, why in failures.items()),
        *(f"\n- {note}" for note in notes),
    ])
    print(text)
    if not args.no_write:
        write_doc(text)
        say(f"written to {DOC.relative_to(ROOT)}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
