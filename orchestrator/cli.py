"""`orchestrator ...`: parses arguments and delegates. Exit codes: 0 ok, 1 failure, 2 usage.

Each subcommand is a `_cmd_<name>(args) -> int` function registered in `build_parser()`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from orchestrator import __version__
from orchestrator.event_follow import follow_events


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"orchestrator {__version__}")
    return 0


def _cmd_events(args: argparse.Namespace) -> int:
    return follow_events(stack=args.stack, since=args.since, as_json=args.json)


def _seq(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a sequence number: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Keep compose-style stacks running on one Docker engine.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=_cmd_version)

    events = sub.add_parser(
        "events",
        help="print the daemon's events as they happen (from Redis)",
        description="Print the daemon's events, one line each, until interrupted. Reads Redis at "
        "ORCHESTRATOR_REDIS_URL with the prefix ORCHESTRATOR_PREFIX.",
    )
    events.add_argument("--stack", metavar="S", help="only events of stack S")
    events.add_argument(
        "--since", metavar="SEQ", type=_seq,
        help="first replay the stored events from sequence number SEQ on (0: all that are kept)",
    )  # fmt: skip
    events.add_argument("--json", action="store_true", help="print each event as its JSON message")
    events.set_defaults(func=_cmd_events)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 1
