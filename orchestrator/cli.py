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


def _cmd_config(args: argparse.Namespace) -> int:
    from orchestrator.stackfile import StackFileError, dump, load_stack, stack_to_data

    try:
        stack = load_stack(args.compose_file, name=args.stack)
    except StackFileError as exc:
        print(f"error: {len(exc.problems)} problem(s) in the stack file:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    for warning in stack.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.write(dump(stack_to_data(stack), args.format))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Keep compose-style stacks running on one Docker engine.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=_cmd_version)

    config = sub.add_parser("config", help="print the normalized stack of one or more stack files")
    config.add_argument("-c", "--compose-file", action="append", required=True, metavar="FILE",
                        help="stack file; repeat to merge several in order")
    config.add_argument("--format", choices=("yaml", "json"), default="yaml")
    config.add_argument("stack", nargs="?", help="stack name (default: top-level name, else the directory)")
    config.set_defaults(func=_cmd_config)
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
