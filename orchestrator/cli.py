"""`orchestrator ...`: parses arguments and delegates. Exit codes: 0 ok, 1 failure, 2 usage.

Each subcommand is a `_cmd_<name>(args) -> int` function registered in `build_parser()`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from orchestrator import __version__
from orchestrator.errors import UserError


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"orchestrator {__version__}")
    return 0


def _cmd_daemon(args: argparse.Namespace) -> int:
    from orchestrator.daemon import run_daemon
    from orchestrator.logs import configure_logging
    from orchestrator.settings import Settings

    settings = Settings.from_env(
        listen=args.listen,
        state_dir=args.state_dir,
        redis_url=args.redis_url,
        prefix=args.prefix,
        log_level=args.log_level,
        log_format=args.log_format,
    )
    fmt = settings.log_format
    configure_logging(settings.log_level, json=None if fmt == "auto" else fmt == "json")
    return run_daemon(settings)


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

    daemon = sub.add_parser("daemon", help="run the daemon (settings: docs/settings.md)")
    daemon.add_argument("--listen", help="HTTP address host:port (ORCHESTRATOR_LISTEN)")
    daemon.add_argument("--state-dir", help="state directory (ORCHESTRATOR_STATE_DIR)")
    daemon.add_argument("--redis-url", help="Redis URL (ORCHESTRATOR_REDIS_URL)")
    daemon.add_argument("--prefix", help="Redis key/channel prefix (ORCHESTRATOR_PREFIX)")
    daemon.add_argument("--log-level", help="debug|info|warning|error (ORCHESTRATOR_LOG_LEVEL)")
    daemon.add_argument("--log-format", choices=["auto", "json", "console"],
                        help="ORCHESTRATOR_LOG_FORMAT")
    daemon.set_defaults(func=_cmd_daemon)

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
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 1
