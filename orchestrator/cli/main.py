"""`orchestrator ...`: parses arguments and delegates. Exit codes: 0 ok, 1 failure, 2 usage.

Client commands (deploy, ls, services, ps, scale, logs, rm, rollback) live in cli_commands and
talk to the daemon's HTTP API; a failure is one `error: ...` line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from orchestrator import __version__
from orchestrator.cli import commands as cli_commands
from orchestrator.access import unauthorized_hint
from orchestrator.cli.client import ApiError
from orchestrator.errors import OrchestratorError
from orchestrator.cli.event_follow import follow_events
from orchestrator.settings import Settings

Command = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"orchestrator {__version__}")
    return 0


def _cmd_daemon(args: argparse.Namespace) -> int:
    from orchestrator.daemon import run_daemon
    from orchestrator.logs import configure_logging

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


def _client_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--host", help="daemon address: http://HOST:PORT or unix:///PATH "
                        "(default: ORCHESTRATOR_HOST, else the daemon's default listen address)")
    return parent


def _add(sub: Any, name: str, command: Command, help_text: str, *,
         listing: bool = False) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, parents=[_client_parent()])
    parser.set_defaults(func=command)
    if listing:
        parser.add_argument("--format", choices=("table", "json"), default="table")
    return parser


def _add_client_commands(sub: Any) -> None:
    deploy = _add(sub, "deploy", cli_commands.deploy, "deploy or update a stack")
    deploy.add_argument("-c", "--compose-file", action="append", required=True, metavar="FILE",
                        help="stack file; repeat to merge several")
    deploy.add_argument("stack", type=cli_commands.stack_name)
    deploy.add_argument("--wait", action="store_true", help="show progress until converged")
    deploy.add_argument("--timeout", type=float, default=300.0, metavar="S",
                        help="seconds --wait waits (default 300)")
    deploy.add_argument("--stable", type=float, default=5.0, metavar="S",
                        help="seconds --wait checks that converged replicas stay up (default 5, as "
                             "docker's CLI; 0: none)")
    _add(sub, "ls", cli_commands.ls, "list stacks", listing=True)
    _add(sub, "services", cli_commands.services, "list a stack's services",
         listing=True).add_argument("stack", type=cli_commands.stack_name)
    ps = _add(sub, "ps", cli_commands.ps, "list a stack's tasks", listing=True)
    ps.add_argument("stack", type=cli_commands.stack_name)
    ps.add_argument("--no-trunc", action="store_true", help="do not truncate IDs and errors")
    ps.add_argument("-a", "--all", action="store_true", help="include exited tasks (history)")
    scale = _add(sub, "scale", cli_commands.scale, "set services' replica counts")
    scale.add_argument("stack", type=cli_commands.stack_name)
    scale.add_argument("pairs", nargs="+", type=cli_commands.scale_pair, metavar="SERVICE=N")
    logs = _add(sub, "logs", cli_commands.logs, "show a service's logs (all replicas)")
    logs.add_argument("stack", type=cli_commands.stack_name)
    logs.add_argument("service", type=cli_commands.service_name)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.add_argument("--tail", type=cli_commands.count, default=None, metavar="N", help="lines per replica")
    rm = _add(sub, "rm", cli_commands.rm, "remove a stack")
    rm.add_argument("stack", type=cli_commands.stack_name)
    rm.add_argument("--volumes", action="store_true", help="also remove its named volumes")
    rollback = _add(sub, "rollback", cli_commands.rollback, "roll a service back")
    rollback.add_argument("stack", type=cli_commands.stack_name)
    rollback.add_argument("service", type=cli_commands.service_name)


def _cmd_config(args: argparse.Namespace) -> int:
    from orchestrator.settings import Settings
    from orchestrator.stackfile import Limits, StackFileError, dump, load_stack, stack_to_compose

    limits = Limits.from_settings(Settings.from_env())  # the daemon's limits and policy, if set here
    try:
        stack = load_stack(args.compose_file, name=args.stack, limits=limits)
    except StackFileError as exc:
        print(f"error: {len(exc.problems)} problem(s) in the stack file:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    for warning in stack.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    sys.stdout.write(dump(stack_to_compose(stack), args.format))
    return 0


def _cmd_events(args: argparse.Namespace) -> int:
    return follow_events(stack=args.stack, since=args.since, as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="orchestrator",
        description="Keep compose-style stacks running on one Docker engine.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=_cmd_version)
    _add_client_commands(sub)

    daemon = sub.add_parser("daemon", help="run the daemon (settings: docs/settings.md)")
    daemon.add_argument("--listen", help="HTTP address host:port (ORCHESTRATOR_LISTEN)")
    daemon.add_argument("--state-dir", help="state directory (ORCHESTRATOR_STATE_DIR)")
    daemon.add_argument("--redis-url", help="Redis URL (ORCHESTRATOR_REDIS_URL)")
    daemon.add_argument("--prefix", help="Redis key/channel prefix (ORCHESTRATOR_PREFIX)")
    daemon.add_argument("--log-level", help="debug|info|warning|error (ORCHESTRATOR_LOG_LEVEL)")
    daemon.add_argument("--log-format", choices=["auto", "json", "console"],
                        help="ORCHESTRATOR_LOG_FORMAT")
    daemon.set_defaults(func=_cmd_daemon)

    config = sub.add_parser("config", help="print the normalized stack of one or more stack files, as a compose file")
    config.add_argument("-c", "--compose-file", action="append", required=True, metavar="FILE",
                        help="stack file; repeat to merge several in order")
    config.add_argument("--format", choices=("yaml", "json"), default="yaml")
    config.add_argument("stack", nargs="?", help="stack name (default: top-level name, else the directory)")
    config.set_defaults(func=_cmd_config)

    events = sub.add_parser(
        "events",
        help="print the daemon's events as they happen (from Redis)",
        description="Print the daemon's events, one line each, until interrupted. Reads Redis at "
        "ORCHESTRATOR_REDIS_URL with the prefix ORCHESTRATOR_PREFIX.",
    )
    events.add_argument("--stack", metavar="S", type=cli_commands.stack_name, help="only events of stack S")
    events.add_argument(
        "--since", metavar="SEQ", type=cli_commands.count,
        help="first replay the stored events from sequence number SEQ on (0: all that are kept)",
    )  # fmt: skip
    events.add_argument("--json", action="store_true", help="print each event as its JSON message")
    events.set_defaults(func=_cmd_events)
    return parser


def _run(args: argparse.Namespace) -> int:
    result = args.func(args)
    if asyncio.iscoroutine(result):
        result = asyncio.run(result)
    return int(result)


def _report(exc: OrchestratorError) -> None:
    problems = getattr(exc, "problems", None)
    if not problems:
        print(f"error: {exc}", file=sys.stderr)
        if isinstance(exc, ApiError) and exc.status == 401:
            print(f"hint: {unauthorized_hint(Settings.from_env())}", file=sys.stderr)
        return
    # The daemon's stack-file problems, printed as `orchestrator config` prints them.
    print(f"error: {len(problems)} problem(s) in the stack file:", file=sys.stderr)
    for problem in problems:
        where = ":".join(str(p) for p in (problem.get("file"), problem.get("line")) if p)
        path = f" {problem['path']}:" if problem.get("path") else ""
        print(f"  {where}:{path} {problem.get('message')}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        return _run(args)
    except OrchestratorError as exc:
        _report(exc)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()
        return 1
