"""The bodies of the CLI's client commands: each talks to the daemon through `Client` and
prints like the docker CLI. They raise OrchestratorError for anything cli.main reports as
`error: ...` with exit code 1."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator import names
from orchestrator.cli import tables
from orchestrator.access import check_token, client_host, client_token
from orchestrator.cli.client import Client
from orchestrator.errors import UserError
from orchestrator.settings import Settings
from orchestrator.stackfile.referenced import brought_in
from orchestrator.views import log_line_text

#: `$VAR`, `${VAR}`, `${VAR:-default}`…, not `$$` (an escaped dollar).
_VARIABLE = re.compile(r"(?<!\$)\$(?:\{([A-Za-z_][A-Za-z0-9_]*)|([A-Za-z_][A-Za-z0-9_]*))")
POLL_S = 0.5


def client_for(args: argparse.Namespace) -> Client:
    """A client of the daemon: at --host / ORCHESTRATOR_HOST, else at its unix socket when this
    user can open it, else at its TCP address, with the token access.client_token finds."""
    given = getattr(args, "host", None)
    settings = Settings.from_env(host=given)
    if settings.token:
        check_token(settings.token, "ORCHESTRATOR_TOKEN")
    host = client_host(settings, explicit=bool(given or os.environ.get("ORCHESTRATOR_HOST")))
    return Client(host, client_token(settings, host))


def print_json(value: Any) -> None:
    print(json.dumps(value, indent=2))


# ------------------------------------------------------------------------------ deploy


def read_files(paths: Sequence[str]) -> list[tuple[str, str]]:
    files = []
    for path in paths:
        try:
            files.append((path, Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {path}: {exc}") from None
    return files


def referenced_env(files: Sequence[tuple[str, str]], env: Mapping[str, str]) -> dict[str, str]:
    """Only the variables the files interpolate: the rest of the environment (tokens,
    passwords) never leaves this process."""
    names = {a or b for _, text in files for a, b in _VARIABLE.findall(text)}
    return {name: env[name] for name in sorted(names) if name in env}


async def deploy(args: argparse.Namespace) -> int:
    files = read_files(args.compose_file)
    base_dir = str(Path(args.compose_file[0]).resolve().parent)
    # The daemon reads included and extended files itself: their variables are sent too.
    env = referenced_env([*files, *brought_in(files, os.environ)], os.environ)
    async with client_for(args) as client:
        outcome = await client.deploy(args.stack, files, env, base_dir)
        for warning in outcome.get("warnings", ()):
            print(f"warning: {warning}", file=sys.stderr)
        _print_outcome(outcome)
        if args.wait:
            return await wait_converged(client, args.stack, args.timeout, args.stable)
    return 0


def _print_outcome(outcome: Mapping[str, Any]) -> None:
    stack, result = outcome["stack"], outcome["result"]
    if result == "unchanged":
        print(f"Stack {stack} is up to date")
        return
    verb = "Creating" if result == "created" else "Updating"
    for service in outcome.get("changed_services", ()):
        print(f"{verb} service {stack}_{service}")


async def wait_converged(client: Client, stack: str, timeout: float, stable: float = 0.0) -> int:
    """Print `web: 3/5` whenever a service's progress changes, until every service has run its
    desired replicas for `stable` seconds in a row (0 ok; a replica that crashes soon after its
    start is not convergence, as docker's CLI checks too) or `timeout` passes or an update
    pauses or a restart policy gives up on a replica that is still missing (1)."""
    deadline = time.monotonic() + timeout
    shown: dict[str, str] = {}
    converged_since: float | None = None
    while True:
        services = await client.services(stack)
        for svc in services:
            progress = f"{svc['name']}: {svc['replicas_running']}/{svc['replicas_desired']}"
            if tables.is_job(svc):
                progress = f"{svc['name']}: {svc.get('replicas_completed', 0)}/{svc['replicas_desired']} completed"
            if svc.get("update_state") not in (None, "none", "completed"):
                progress += f" ({svc['update_state']})"
            if shown.get(svc["name"]) != progress:
                shown[svc["name"]] = progress
                print(progress, flush=True)
        paused = [s for s in services if s.get("update_state") in ("paused", "rolled_back")]
        if paused:
            names = ", ".join(f"{s['name']} ({s['update_state']}: {s.get('update_message', '')})"
                              for s in paused)
            raise UserError(f"update did not complete: {names}")
        if all(_converged(s) for s in services):
            now = time.monotonic()
            if converged_since is None:
                converged_since = now
                if stable > 0:
                    print(f"verifying for {stable:g} s that the replicas stay up", flush=True)
            if now - converged_since >= stable:
                print(f"Stack {stack} converged")
                return 0
            await asyncio.sleep(min(POLL_S, stable - (now - converged_since)))
            continue  # the timeout does not cut a check that has begun: it ends by `stable`
        converged_since = None
        if all(_converged(s) or _settled_short(s) for s in services):
            names = ", ".join(f"{s['name']} ({s['replicas_given_up']} gave up: {s['given_up_reason']})"
                              for s in services if not _converged(s))
            raise UserError(f"stack {stack} will not converge: restart policy gave up on {names}")
        if time.monotonic() >= deadline:
            raise UserError(f"timed out after {timeout:g} s waiting for stack {stack} to converge")
        await asyncio.sleep(POLL_S)


def _settled_short(svc: Mapping[str, Any]) -> bool:
    """Short of its count only by the replicas its restart policy gave up on."""
    given_up = svc.get("replicas_given_up", 0)
    return bool(given_up > 0 and _done(svc) + given_up >= svc["replicas_desired"])


def _converged(svc: Mapping[str, Any]) -> bool:
    """A job is done when its wanted completions are (and it has some: a global job wants
    nothing before Swarm placed it); a service when it runs its count, no update under way."""
    if tables.is_job(svc):
        return bool(svc["replicas_desired"] > 0 and _done(svc) >= svc["replicas_desired"])
    updating = svc.get("update_state") in ("updating", "rolling_back")
    return svc["replicas_running"] == svc["replicas_desired"] and not updating


def _done(svc: Mapping[str, Any]) -> int:
    """Replicas that count towards the service's goal: completed for a job, running otherwise."""
    return int(svc.get("replicas_completed", 0) if tables.is_job(svc) else svc["replicas_running"])


# ------------------------------------------------------------------------------ listings


async def daemon_health(args: argparse.Namespace) -> dict[str, Any]:
    """/v1/health with the token, so with the engine's `live_restore`."""
    async with client_for(args) as client:
        return await client.request("GET", "/v1/health")  # type: ignore[no-any-return]


async def ls(args: argparse.Namespace) -> int:
    async with client_for(args) as client:
        stacks = await client.stacks()
    print_json(stacks) if args.format == "json" else print(tables.stacks_table(stacks))
    return 0


async def services(args: argparse.Namespace) -> int:
    async with client_for(args) as client:
        rows = await client.services(args.stack)
    if args.format == "json":
        print_json(rows)
    else:
        print(tables.services_table(rows))
        _print_update_notes(rows)
    return 0


def _print_update_notes(services: list[dict[str, Any]]) -> None:
    """Below the table: rolling updates under way, and published ports that are not."""
    notes = "\n".join(n for n in (tables.update_notes(services), tables.port_notes(services)) if n)
    if notes:
        print("\n" + notes)


async def ps(args: argparse.Namespace) -> int:
    async with client_for(args) as client:
        rows = await client.tasks(args.stack, history=args.all)
        services = await client.services(args.stack) if args.format != "json" else []
    if args.format == "json":
        print_json(rows)
    else:
        print(tables.tasks_table(rows, no_trunc=args.no_trunc))
        _print_update_notes(services)
    return 0


# ------------------------------------------------------------------------------ changes


#: A count as the CLI takes it: ASCII digits only (str.isdigit() also takes '²'); the daemon
#: applies its limits (max_replicas) and names them.
_COUNT = re.compile(r"[0-9]{1,18}")


def count(text: str) -> int:
    """argparse type of a non-negative integer (`--tail`, `--since`)."""
    if not _COUNT.fullmatch(text):
        raise argparse.ArgumentTypeError(f"not a non-negative integer: {text!r}")
    return int(text)


def stack_name(text: str) -> str:
    """argparse type of a stack name: a name that is not one never reaches a URL (exit 2)."""
    if not names.is_stack_name(text):
        raise argparse.ArgumentTypeError(f"invalid stack name {text!r}: use {names.STACK_RULE}")
    return text


def service_name(text: str) -> str:
    if not names.is_service_name(text):
        raise argparse.ArgumentTypeError(f"invalid service name {text!r}: use {names.SERVICE_RULE}")
    return text


def scale_pair(text: str) -> tuple[str, int]:
    """argparse type of `SERVICE=N`: a bad one is a usage error (exit 2)."""
    service, sep, replicas = text.partition("=")
    if not sep or not _COUNT.fullmatch(replicas):
        raise argparse.ArgumentTypeError(f"invalid scale specifier {text!r}: use SERVICE=N")
    return service_name(service), int(replicas)


async def scale(args: argparse.Namespace) -> int:
    counts = dict(args.pairs)
    async with client_for(args) as client:
        await client.scale(args.stack, counts)
    for service, count in counts.items():
        print(f"{args.stack}_{service} scaled to {count}")
    return 0


async def rm(args: argparse.Namespace) -> int:
    async with client_for(args) as client:
        outcome = await client.remove(args.stack, volumes=args.volumes)
    print(f"Removing stack {args.stack}" + (" and its volumes" if args.volumes else ""))
    if not outcome.get("removed", True):
        # accepted and durable: the daemon goes on until the engine lets go
        print(f"Stack {args.stack} is still being removed: {outcome.get('message', '')}; "
              "the daemon keeps retrying (`orchestrator ls` shows it until it is gone)")
    return 0


async def rollback(args: argparse.Namespace) -> int:
    async with client_for(args) as client:
        await client.rollback(args.stack, args.service)
    print(f"{args.stack}_{args.service}: rollback started")
    return 0


async def logs(args: argparse.Namespace) -> int:
    async with client_for(args) as client:
        async for line in client.logs(args.stack, args.service, follow=args.follow, tail=args.tail):
            out = sys.stderr if line.get("stream") == "stderr" else sys.stdout
            out.write(log_line_text(args.stack, args.service, line))
            out.flush()
    return 0
