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
