"""`orchestrator ...`: parses arguments and delegates. Exit codes: 0 ok, 1 failure, 2 usage.

Each subcommand is a `_cmd_<name>(args) -> int` function registered in `build_parser()`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from orchestrator import __version__


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"orchestrator {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Keep compose-style stacks running on one Docker engine.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=_cmd_version)
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
