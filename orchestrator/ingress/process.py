"""`orchestrator ingress`: the data plane as a process of its own, so published ports keep
answering while the daemon is down (SIGKILL, restart, upgrade).

It runs an `Ingress` (orchestrator/ingress/proxy.py) and takes orders from the daemon over a unix
socket in the state directory, `<state_dir>/ingress.sock` (mode 0600: whoever can write to it
can point published ports anywhere). It knows nothing of stacks or the engine; the daemon feeds
it, as it fed the in-process ingress before: listen on a port (the answer carries the bind
error, so `service.port_unavailable` stays true), the rotation of a port, a backend out of
every rotation, drains, closes. When the daemon goes away the ingress keeps its listeners, its
rotations and its open connections; a connect to a replica that died meanwhile is retried on
the next backend as always. The next daemon that connects says `hello` and gets everything the
ingress serves, adopts it, and from then on its passes replace the rotations.

One ingress per state directory: it holds an exclusive lock on `<state_dir>/ingress.lock` for
its lifetime (the kernel drops it when the process dies, so a crash leaves nothing stale) and
writes its pid to `<state_dir>/ingress.pid`. Only the newest daemon connection is listened to:
a new one closes the one before (a daemon that was SIGKILLed, whose socket may linger).

The protocol: one JSON object per line each way, at most `MAX_MESSAGE` bytes. Every request has
an `id` and an `op`; every answer carries the `id` and `ok`, and `error` when not ok. docs/dataplane.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import ipaddress
import json
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import structlog

from orchestrator.errors import IngressError
from orchestrator.ingress.proxy import Ingress, Upstream
from orchestrator.settings import Settings

log = structlog.stdlib.get_logger()

#: Bumped when a message changes meaning; a daemon refuses an ingress that speaks another.
PROTOCOL = 1
MAX_MESSAGE = 1 << 20
MAX_TIMEOUT_S = 3600.0
#: How long SIGTERM lets open connections finish before they are reset.
STOP_DRAIN_S = 10.0


def socket_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / "ingress.sock"


def pid_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / "ingress.pid"


def lock_path(state_dir: str | Path) -> Path:
    return Path(state_dir) / "ingress.lock"


class BadRequest(ValueError):
    """A message the ingress does not understand: answered with its reason, never fatal."""


def _port(value: Any) -> int:
    if type(value) is not int or not 0 <= value <= 65535:
        raise BadRequest(f"port must be an integer from 0 to 65535, not {value!r}")
    return value


def _protocol(value: Any) -> str:
    if value not in ("tcp", "udp"):
        raise BadRequest(f"protocol must be tcp or udp, not {value!r}")
    return str(value)


def _timeout(value: Any) -> float:
    if type(value) not in (int, float) or not 0 <= value <= MAX_TIMEOUT_S:
        raise BadRequest(f"timeout must be a number of seconds from 0 to {MAX_TIMEOUT_S:.0f}")
    return float(value)


def _backend(value: Any) -> Upstream:
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)):
        raise BadRequest(f"a backend is [address, port], not {value!r}")
    try:
        ipaddress.ip_address(value[0])
    except ValueError:
        raise BadRequest(f"backend address must be an IP address, not {value[0]!r}") from None
    return (value[0], _port(value[1]))


def _backends(value: Any) -> list[Upstream]:
    if not isinstance(value, list) or len(value) > 100_000:
        raise BadRequest("backends must be a list (at most 100000)")
    return [_backend(b) for b in value]


class IngressServer:
    """Answers the daemon's requests against one `Ingress`."""

    def __init__(self, ingress: Ingress) -> None:
        self.ingress = ingress
        self._session: asyncio.StreamWriter | None = None
        self._slow: set[asyncio.Task[None]] = set()

    @property
    def connected(self) -> bool:
        return self._session is not None

    def snapshot(self) -> list[dict[str, Any]]:
        return [
            {"port": port, "protocol": protocol, "backends": [list(b) for b in listener.backends]}
            for (port, protocol), listener in self.ingress.ports.items()
        ]

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One daemon's connection; a newer one replaces it."""
        if self._session is not None:
            log.info("ingress_daemon_replaced")
            self._session.close()
        self._session = writer
        log.info("ingress_daemon_connected")
        try:
            while line := await reader.readline():
                await self._answer(writer, line)
        except (ValueError, ConnectionError) as exc:  # ValueError: a line beyond the limit
            log.warning("ingress_daemon_session_failed", error=str(exc))
        finally:
            if self._session is writer:
                self._session = None
                log.info("ingress_daemon_disconnected", ports=len(self.ingress.ports))
            writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, line: bytes) -> None:
        """Quick requests are done in order, one after the other; a drain or a close runs on
        its own, so the rotation changes sent behind it are not held up."""
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                raise BadRequest("a request is a JSON object")
            op = message.get("op")
            handler = self._handlers().get(op) if isinstance(op, str) else None
            if handler is None:
                raise BadRequest(f"unknown op {op!r}")
            slow, work = handler
        except (BadRequest, json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._reply(writer, {"id": None, "ok": False, "error": str(exc)})
            return
        if not slow:
            await self._run(writer, message, work)
            return
        task = asyncio.get_running_loop().create_task(self._run(writer, message, work))
        self._slow.add(task)
        task.add_done_callback(self._slow.discard)

    def _handlers(self) -> dict[str, tuple[bool, Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]]]:
        return {
            "hello": (False, self._hello),
            "listen": (False, self._listen),
            "backends": (False, self._set_backends),
            "remove_backend": (False, self._remove_backend),
            "drain": (True, self._drain),
            "close": (True, self._close),
        }

    async def _run(self, writer: asyncio.StreamWriter, message: dict[str, Any],
                   work: Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]) -> None:
        answer: dict[str, Any]
        try:
            answer = {"ok": True, **await work(message)}
        except (BadRequest, IngressError) as exc:
            answer = {"ok": False, "error": str(exc)}
        self._reply(writer, {"id": message.get("id"), **answer})

    def _reply(self, writer: asyncio.StreamWriter, answer: dict[str, Any]) -> None:
        if not writer.is_closing():
            writer.write(json.dumps(answer).encode() + b"\n")

    async def _hello(self, message: dict[str, Any]) -> dict[str, Any]:
        return {"protocol": PROTOCOL, "pid": os.getpid(), "host": self.ingress.host, "ports": self.snapshot()}

    async def _listen(self, message: dict[str, Any]) -> dict[str, Any]:
        listener = await self.ingress.ensure(_port(message.get("port")), _protocol(message.get("protocol")))
        return {"port": listener.port}

    async def _set_backends(self, message: dict[str, Any]) -> dict[str, Any]:
        self.ingress.set_upstreams(_port(message.get("port")), _backends(message.get("backends")),
                                  _protocol(message.get("protocol")))
        return {}

    async def _remove_backend(self, message: dict[str, Any]) -> dict[str, Any]:
        self.ingress.remove_backend(_backend(message.get("backend")))
        return {}

    async def _drain(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.ingress.drain_backends(_backends(message.get("backends")), _timeout(message.get("timeout")))
        return {}

    async def _close(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.ingress.close(_port(message.get("port")), _protocol(message.get("protocol")),
                                 drain_timeout=_timeout(message.get("drain_timeout")))
        return {}

    async def stop(self) -> None:
        if self._session is not None:
            self._session.close()
        for task in self._slow:
            task.cancel()
        await asyncio.gather(*self._slow, return_exceptions=True)


def _take_lock(state_dir: Path) -> int:
    """The state directory's ingress lock, held until the process ends; OSError(EEXIST) when
    another ingress holds it."""
    fd = os.open(lock_path(state_dir), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        holder = pid_path(state_dir).read_text().strip() if pid_path(state_dir).exists() else "?"
        raise OSError(errno.EEXIST, f"an ingress already runs for {state_dir} (pid {holder})") from None
    return fd


async def _stop_when_idle(server: IngressServer, stop: asyncio.Event, idle_exit: float) -> None:
    """Sets `stop` once the ingress has served no port and had no daemon for `idle_exit` s."""
    idle_since = time.monotonic()
    while not stop.is_set():
        if server.connected or server.ingress.ports:
            idle_since = time.monotonic()
        elif time.monotonic() - idle_since >= idle_exit:
            log.info("ingress_idle_exit", idle_s=idle_exit)
            stop.set()
        await asyncio.sleep(min(1.0, idle_exit / 4))


async def serve_ingress(settings: Settings, stop: asyncio.Event, started: asyncio.Event | None = None,
                        idle_exit: float | None = None) -> None:
    """Runs the ingress and its control socket until `stop` is set; then drains and closes.
    With `idle_exit`, also once it served no port and had no daemon for that long (a spawned
    ingress whose daemon died and left nothing to serve)."""
    state_dir = Path(settings.state_dir)
    ingress = Ingress(settings.ingress_host)
    server = IngressServer(ingress)
    path = socket_path(state_dir)
    path.unlink(missing_ok=True)  # a dead ingress's: we hold the lock, so nobody else's
    old_umask = os.umask(0o077)
    try:
        control = await asyncio.start_unix_server(server.session, path, limit=MAX_MESSAGE)
    finally:
        os.umask(old_umask)
    log.info("ingress_started", socket=str(path), host=settings.ingress_host, pid=os.getpid())
    if started is not None:
        started.set()
    idle = asyncio.create_task(_stop_when_idle(server, stop, idle_exit)) if idle_exit else None
    try:
        await stop.wait()
    finally:
        if idle is not None:
            idle.cancel()
        control.close()
        await server.stop()
        await ingress.close_all(drain_timeout=STOP_DRAIN_S)
        path.unlink(missing_ok=True)
        log.info("ingress_stopped")


def run_ingress(settings: Settings, idle_exit: float | None = None) -> int:
    """Entry point of `orchestrator ingress`: runs until SIGTERM/SIGINT (or `idle_exit`, see
    serve_ingress). Exit 1 with one clear line when it cannot start (another ingress runs for
    the state directory, no permission)."""
    state_dir = Path(settings.state_dir)
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        lock = _take_lock(state_dir)
        pid_path(state_dir).write_text(f"{os.getpid()}\n")
    except OSError as exc:
        log.error("ingress_failed", error=exc.strerror or str(exc))
        print(f"error: {exc.strerror or exc}", file=sys.stderr)
        return 1

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await serve_ingress(settings, stop, idle_exit=idle_exit)

    try:
        asyncio.run(main())
    except OSError as exc:
        log.error("ingress_failed", error=str(exc))
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        with contextlib.suppress(OSError):
            if pid_path(state_dir).read_text().strip() == str(os.getpid()):
                pid_path(state_dir).unlink()
        os.close(lock)
    return 0
