"""Output like the docker CLI: aligned columns, "Running 5 seconds ago" ages, truncated IDs."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

PADDING = 3
TRUNC_ID = 12
TRUNC_ERROR = 30


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell plus three spaces, as docker's tabwriter does."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=True)]
    lines = []
    for row in (headers, *rows):
        cells = [str(c).ljust(w + PADDING) for c, w in zip(row, widths, strict=True)]
        lines.append("".join(cells).rstrip())
    return "\n".join(lines)


def human_duration(seconds: float) -> str:
    """docker's (go-units) HumanDuration: "5 seconds", "About a minute", "3 hours"."""
    s = int(seconds)
    if s < 1:
        return "Less than a second"
    if s == 1:
        return "1 second"
    if s < 60:
        return f"{s} seconds"
    minutes = s // 60
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = round(s / 3600)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // (24 * 7)} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // (24 * 30)} months"
    return f"{hours // (24 * 365)} years"


def ago(epoch: float, now: float | None = None) -> str:
    now = time.time() if now is None else now
    return f"{human_duration(max(0.0, now - epoch))} ago"


def stacks_table(stacks: Sequence[Mapping[str, Any]], now: float | None = None) -> str:
    rows = [(s["name"], str(s["services"]), f"{s['replicas_running']}/{s['replicas_desired']}",
             _deployed(s, now)) for s in stacks]
    return render_table(("NAME", "SERVICES", "REPLICAS", "DEPLOYED"), rows)


def _deployed(stack: Mapping[str, Any], now: float | None) -> str:
    """When it was deployed; for a stack being removed, that, and why it is not gone yet."""
    if stack.get("state") != "removing":
        return ago(stack["deployed_at"], now)
    message = stack.get("message") or ""
    return f"removing: {message}" if message else "removing"


def is_job(service: Mapping[str, Any]) -> bool:
    """A job runs to completion (Swarm's `replicated-job`/`global-job`)."""
    return str(service.get("mode", "")).endswith("-job")


def services_table(services: Sequence[Mapping[str, Any]]) -> str:
    rows = []
    for s in services:
        replicas = f"{s['replicas_running']}/{s['replicas_desired']}"
        if is_job(s):  # as `docker service ls`: running now, then completions of the wanted
            replicas = f"{s['replicas_running']} ({s.get('replicas_completed', 0)}/{s['replicas_desired']} completed)"
        if s.get("update_state") not in (None, "none", "completed"):
            replicas += f" ({s['update_state']})"
        if s.get("replicas_given_up"):
            replicas += f" ({s['replicas_given_up']} gave up)"
        rows.append((s["spec_hash"][:TRUNC_ID], f"{s['stack']}_{s['name']}", s["mode"], replicas,
                     s["image"] or "", ", ".join(_port(p) for p in s.get("ports", ()))))
    return render_table(("ID", "NAME", "MODE", "REPLICAS", "IMAGE", "PORTS"), rows)


def update_notes(services: Sequence[Mapping[str, Any]]) -> str:
    """One line per service whose rolling update is under way, paused or rolled back: its
    state and which slots run which spec (empty when there is nothing to say)."""
    lines = []
    for s in services:
        state = s.get("update_state") or "none"
        if state not in ("none", "completed"):
            message = s.get("update_message") or ""
            lines.append(f"{s['stack']}_{s['name']}: update {state.replace('_', ' ')}"
                         + (f": {message}" if message else ""))
    return "\n".join(lines)


def port_notes(services: Sequence[Mapping[str, Any]]) -> str:
    """One line per published port the daemon cannot listen on, and why (empty when none)."""
    return "\n".join(
        f"{s['stack']}_{s['name']}: port {p['published']}/{p['protocol']} is not published: {p.get('error') or 'unavailable'}"
        for s in services
        for p in s.get("ports", ())
        if p.get("state") == "unavailable"
    )


def _port(port: Mapping[str, Any]) -> str:
    published = port.get("published")
    target = f"{port['target']}/{port['protocol']}"
    text = f"*:{published}->{target}" if published else target
    return text + " (not published)" if port.get("state") == "unavailable" else text


def tasks_table(tasks: Sequence[Mapping[str, Any]], *, no_trunc: bool = False,
                now: float | None = None) -> str:
    rows = []
    for t in tasks:
        name = f"{t['stack']}_{t['service']}.{t['slot']}"
        task_id = t["task_id"] if no_trunc else t["task_id"][:TRUNC_ID]
        error = t.get("error") or ""
        if error and not no_trunc and len(error) > TRUNC_ERROR:
            error = error[: TRUNC_ERROR - 1] + "…"
        rows.append((task_id, name if t.get("current", True) else f" \\_ {name}", t["image"] or "",
                     t.get("node") or "", t["desired_state"].capitalize(),
                     f"{(t.get('swarm_state') or t['state']).capitalize()} {ago(t['since'], now)}",
                     f'"{error}"' if error else ""))
    headers: Sequence[str] = ("ID", "NAME", "IMAGE", "NODE", "DESIRED STATE", "CURRENT STATE", "ERROR")
    if any(t.get("node") for t in tasks):  # Swarm: the node of each task
        return render_table(headers, rows)
    return render_table([*headers[:3], *headers[4:]], [(*row[:3], *row[4:]) for row in rows])
