"""`scripts/swarm`: a Swarm test cluster for benchmarks and manual use (tests/swarm/cluster.py).

    scripts/swarm up [NODES] [--managers M] [--image IMAGE ...]   start one, print its name
    scripts/swarm env [NAME]     `export DOCKER_HOST=…` for its first manager (eval "$(…)")
    scripts/swarm ls             the clusters on this machine, their nodes and owners
    scripts/swarm down [NAME]    remove one cluster, or every cluster started by hand
    scripts/swarm clean          remove the clusters of processes that are gone

A cluster started here has no owner process: it stays until `down`.
"""

from __future__ import annotations

import argparse
import sys
import time

from tests.swarm.cleanup import cleanup_stale, clusters, remove_cluster
from tests.swarm.cluster import Cluster, node_image_present
from tests.swarm.docker_cli import ClusterError

DEFAULT_IMAGES = ("orchestrator-test/busybox:latest",)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/swarm", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(required=True, metavar="COMMAND")
    up = commands.add_parser("up", help="start a Swarm of NODES nodes (default 3: 1 manager, 2 workers)")
    up.add_argument("nodes", nargs="?", type=int, default=3)
    up.add_argument("--managers", type=int, default=1)
    up.add_argument("--image", action="append", dest="images",
                    help=f"an image to load into every node (repeatable; default {' '.join(DEFAULT_IMAGES)})")
    up.set_defaults(run=_up)
    env = commands.add_parser("env", help="print DOCKER_HOST for a cluster's first manager")
    env.add_argument("name", nargs="?")
    env.set_defaults(run=_env)
    commands.add_parser("ls", help="list the clusters").set_defaults(run=_ls)
    down = commands.add_parser("down", help="remove a cluster (default: every one started by hand)")
    down.add_argument("name", nargs="?")
    down.set_defaults(run=_down)
    commands.add_parser("clean", help="remove the clusters of processes that are gone").set_defaults(run=_clean)
    return parser


def _up(args: argparse.Namespace) -> int:
    if not node_image_present():
        raise ClusterError("image orchestrator/swarm-node:bookworm is missing: run scripts/setup")
    if not 1 <= args.managers <= args.nodes <= 9:
        raise ClusterError(f"NODES must be 1-9 and --managers 1-NODES, not {args.nodes} and {args.managers}")
    started = time.monotonic()
    cluster = Cluster.start(workers=args.nodes - args.managers, managers=args.managers, owned=False)
    formed = time.monotonic()
    cluster.load_images(args.images or DEFAULT_IMAGES)
    loaded = time.monotonic()
    print(f"Swarm {cluster.name}: {len(cluster.nodes)} nodes ready in {formed - started:.1f} s, "
          f"images loaded in {loaded - formed:.1f} s", file=sys.stderr)
    for node in cluster.nodes:
        print(f"  {node.name:<20} {node.role:<8} {node.address:<16} {node.docker_host}", file=sys.stderr)
    print(cluster.name)
    return 0


def _env(args: argparse.Namespace) -> int:
    print(f"export DOCKER_HOST={Cluster.find(args.name or _only_cluster()).manager.docker_host}")
    return 0


def _only_cluster() -> str:
    names = sorted(clusters())
    if len(names) != 1:
        raise ClusterError(f"name a cluster: there are {len(names)} ({', '.join(names) or 'none'})")
    return names[0]


def _ls(_args: argparse.Namespace) -> int:
    for name, owner in sorted(clusters().items()):
        print(f"{name}  {'owner pid ' + owner if owner else 'started by hand'}")
        for node in Cluster.find(name).nodes:
            print(f"  {node.name:<20} {node.role:<8} {node.address:<16} {node.docker_host}")
    return 0


def _down(args: argparse.Namespace) -> int:
    found = clusters()
    if args.name and args.name not in found:
        raise ClusterError(f"no Swarm test cluster named {args.name!r} (scripts/swarm ls lists them)")
    names = [args.name] if args.name else [name for name, owner in found.items() if owner is None]
    for name in names:
        remove_cluster(name)
        print(f"removed {name}", file=sys.stderr)
    return 0


def _clean(_args: argparse.Namespace) -> int:
    for name in cleanup_stale():
        print(f"removed {name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
