"""Every setting of the daemon and the CLI, from `ORCHESTRATOR_*` environment variables and flags.

docs/settings.md has the one table users read; a unit test checks that every field below is in it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError

DEFAULT_PORT = 7420


def _default_state_dir() -> str:
    if os.geteuid() == 0:
        return "/var/lib/orchestrator"
    return str(Path.home() / ".local/state/orchestrator")


def default_concurrency() -> int:
    """Two creations in flight per CPU, from 4 to 16. Measured (docs/benchmarks.md, issue 18):
    the engine's converge rate is flat from 4 to 64 in flight on a 2-core machine, while each
    operation beyond what the engine works on makes every other stack's create and start wait
    longer (a 1-replica deploy during a 200-replica converge: 3.7 s at 16, 1.9 s at 4)."""
    return min(16, max(4, 2 * usable_cpus()))


def usable_cpus() -> int:
    """The CPUs this process may run on (a container's or a systemd unit's cpuset), else all."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


@dataclass(frozen=True, slots=True)
class Settings:
    #: Daemon HTTP address host:port (ORCHESTRATOR_LISTEN). Anything but loopback needs a token.
    listen: str = f"127.0.0.1:{DEFAULT_PORT}"
    #: Unix socket the daemon also serves on; "" = none (ORCHESTRATOR_SOCKET).
    socket: str = ""
    #: Where the CLI finds the daemon: http://host:port or unix:///path (ORCHESTRATOR_HOST).
    host: str = ""
    #: Desired state, restart history, event seq (ORCHESTRATOR_STATE_DIR).
    state_dir: str = field(default_factory=_default_state_dir)
    #: Secrets (the token, a password in the Redis URL) stay out of repr(settings).
    redis_url: str = field(default="redis://127.0.0.1:6379/0", repr=False)
    #: Prefix of every Redis key and channel.
    prefix: str = "orchestrator"
    #: Bearer token the TCP listener requires (ORCHESTRATOR_TOKEN); empty: the daemon makes one
    #: at its first start into <state_dir>/token. Required to listen beyond loopback.
    token: str = field(default="", repr=False)
    #: Docker engine address, as the docker CLI reads it (DOCKER_HOST; empty = local socket).
    docker_host: str = ""
    #: Address the ingress listens on for published ports (mode: ingress), as docker's -p does.
    ingress_host: str = "0.0.0.0"
    #: Where the ingress runs: spawn (its own process, started by the daemon when none runs),
    #: external (its own process, started by systemd or scripts/start), inline (in the daemon).
    ingress: str = "spawn"
    #: Seconds after its start a replica without a healthcheck must accept a TCP connection on
    #: its ingress port before it takes traffic or counts as ready; 0: no probe.
    readiness_window: float = 30.0
    #: Seconds between full relists when no event arrives (safety net only).
    resync_interval: float = 60.0
    #: Restart backoff when a restart_policy gives no delay: first restart at once, then
    #: backoff_base doubling up to backoff_cap, reset after a run of healthy_run seconds.
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    healthy_run: float = 10.0
    #: Exited containers kept per slot as history (Swarm's task history limit is 5).
    history_limit: int = 5
    #: Container creations running at once (fair_limit.py); stops and removals have their own.
    concurrency: int = field(default_factory=default_concurrency)
    #: Messages kept in the Redis stream for replay, and in memory while Redis is down.
    stream_maxlen: int = 10000
    queue_limit: int = 10000
    #: Seconds a deployed stack file may take to load (parse, validate) in its worker process.
    parse_timeout: float = 10.0
    #: Worker processes loading deployed stack files at once.
    parse_workers: int = 1
    #: Bounds of a `build:` context sent to the engine (after .dockerignore).
    max_build_context_bytes: int = 512 * 1024 * 1024
    max_build_context_files: int = 100_000
    log_level: str = "info"
    #: auto (JSON unless stderr is a terminal), json or console.
    log_format: str = "auto"
    #: What one stack file may hold (orchestrator/stackfile/limits.py): services per stack,
    #: replicas per service, YAML nesting depth and nodes (aliases expanded), bytes of a file a
    #: stack names (env_file, .env, secret/config file).
    max_services: int = 1000
    max_replicas: int = 10_000
    max_yaml_depth: int = 64
    max_yaml_nodes: int = 2_000_000
    max_file_size: int = 1 << 20
    #: Privileged-like options in a stack (cap_add, binds of host system paths...): warn or deny.
    dangerous_options: str = "warn"
    #: Replicas of all services of all stacks together (the daemon's budget; max_replicas is
    #: per service, for stack files and the scale API alike).
    max_replicas_total: int = 20_000
    #: Largest HTTP request body the API reads (a deploy's stack files, a scale body).
    max_body_bytes: int = 1 << 20
    #: What runs the stacks: engine (this daemon keeps them on one engine) or swarm (Swarm
    #: services on the manager DOCKER_HOST names; docs/swarm.md).
    backend: str = "engine"
    #: Swarm: seconds between task relists (Swarm sends no task events; docs/swarm.md).
    swarm_poll_interval: float = 0.5

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(env_name(f.name))
            if raw is not None and raw != "":
                values[f.name] = _convert(f.name, f.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        settings = cls(**values)
        _check_ranges(settings)
        return settings._with_derived()

    def _with_derived(self) -> Settings:
        socket = self.socket or str(Path(self.state_dir) / "orchestrator.sock")
        host = self.host or f"http://{self.listen}"
        return replace(self, socket=socket, host=host)

    @property
    def listen_host(self) -> str:
        return self.listen.rsplit(":", 1)[0].strip("[]")

    @property
    def listen_port(self) -> int:
        return int(self.listen.rsplit(":", 1)[1])

    @property
    def listens_beyond_loopback(self) -> bool:
        return self.listen_host not in ("127.0.0.1", "::1", "localhost")


def env_name(field_name: str) -> str:
    if field_name == "docker_host":
        return "DOCKER_HOST"
    return f"ORCHESTRATOR_{field_name.upper()}"


def _convert(name: str, type_name: Any, raw: str) -> Any:
    kind = str(type_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError:
        raise UserError(f"{env_name(name)}={raw!r}: expected a number") from None
    return raw


#: (lowest, highest) of each numeric limit a user may set; the YAML depth stays well under
#: Python's recursion limit (the loader's passes recurse once or twice per level).
_RANGES = {
    "max_services": (1, 1_000_000),
    "max_replicas": (1, 1_000_000),
    "max_replicas_total": (1, 10_000_000),
    "max_yaml_depth": (8, 200),
    "max_yaml_nodes": (1000, 1_000_000_000),
    "max_file_size": (1, 1 << 30),
    "max_body_bytes": (1024, 1 << 30),
    "parse_timeout": (0.1, 3600),
    "parse_workers": (1, 32),
    "max_build_context_bytes": (1, 1 << 40),
    "max_build_context_files": (1, 10_000_000),
    "swarm_poll_interval": (0.05, 60),
    "readiness_window": (0, 3600),
    "concurrency": (1, 1024),
}


def _check_ranges(settings: Settings) -> None:
    for name, (lowest, highest) in _RANGES.items():
        value = getattr(settings, name)
        if not lowest <= value <= highest:
            raise UserError(f"{env_name(name)}={value}: must be from {lowest} to {highest}")
    if settings.ingress not in ("spawn", "external", "inline"):
        raise UserError(f"{env_name('ingress')}={settings.ingress!r}: must be spawn, external or inline")
    if settings.dangerous_options not in ("warn", "deny"):
        raise UserError(f"{env_name('dangerous_options')}={settings.dangerous_options!r}: must be warn or deny")
    if settings.backend not in ("engine", "swarm"):
        raise UserError(f"{env_name('backend')}={settings.backend!r}: must be engine or swarm")
