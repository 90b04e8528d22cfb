"""The daemon's side of the ingress process (orchestrator/ingress/process.py).

`RemoteIngress` offers what `IngressRoutes` uses of an in-process `Ingress` (ensure, set_backends,
remove_backend, drain_backends, close, ports), and sends it over the state directory's unix
socket. It keeps what it last told the ingress (each listened port and its rotation), so that:

- a daemon that starts finds a running ingress, adopts everything it serves (`hello`) and keeps
  it until its own passes decide (ports no deployed stack wants are closed by `prune`);
- an ingress that went away and came back (restarted by systemd, or respawned) gets every port
  and rotation again; a port it can no longer bind is dropped from `ports`, and `on_lost` asks
  the reconciler for a pass, which reports it `unavailable` and retries as for any bind error;
- while no ingress answers, rotation changes wait for the next connection and `ensure` fails
  with IngressError (a deploy answers 409, a pass reports the port unavailable).

With `spawn`, the daemon starts `orchestrator ingress` itself when none answers: detached, in a
session of its own, so it outlives the daemon (a SIGKILLed daemon's successor adopts it) and is
stopped only by SIGTERM to its pid (`<state_dir>/ingress.pid`). Without it (`external`), the
ingress is started by whoever supervises the daemon (systemd, scripts/start).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import structlog

from orchestrator.errors import IngressError
from orchestrator.ingress.process import MAX_MESSAGE, PROTOCOL, socket_path
from orchestrator.ingress.proxy import Ingress, Upstream
from orchestrator.settings import Settings

log = structlog.stdlib.get_logger()

PortKey = tuple[int, str]

#: Waits between attempts to reach the ingress process.
RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)
#: How long a daemon's start waits for its ingress to answer before it goes on without one.
START_WAIT_S = 15.0
#: A spawned ingress that serves no port and has no daemon for this long exits (nothing to keep).
SPAWNED_IDLE_EXIT_S = 60.0
#: An answer to a quick request (listen, hello) that takes longer means the ingress is stuck.
CALL_TIMEOUT_S = 10.0


class RemoteIngress:
    def __init__(self, state_dir: str | Path, host: str, *, spawn: bool,
                 on_lost: Callable[[], None] | None = None) -> None:
        self.host = host
        self.state_dir = Path(state_dir)
        self._spawn = spawn
        self.on_lost = on_lost or (lambda: None)
        #: Every port the ingress listens on for us, with the rotation we last sent.
        self._ports: dict[PortKey, tuple[Upstream, ...]] = {}
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._ids = itertools.count(1)
        self._connected = asyncio.Event()
        self._supervisor: asyncio.Task[None] | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self.ingress_pid: int | None = None
        self.adopted: frozenset[PortKey] = frozenset()
        self._detaching = False

    # --- what IngressRoutes uses ----------------------------------------------------------

    @property
    def ports(self) -> dict[PortKey, tuple[Upstream, ...]]:
        return dict(self._ports)

    async def ensure(self, port: int, protocol: str = "tcp") -> None:
        key = (port, protocol)
        if key in self._ports:
            return
        answer = await self._call({"op": "listen", "port": port, "protocol": protocol})
        if not answer.get("ok"):
            raise IngressError(str(answer.get("error") or "the ingress refused the port"))
        self._ports[key] = ()

    def set_upstreams(self, port: int, backends: Sequence[Upstream], protocol: str = "tcp") -> None:
        key = (port, protocol)
        if key not in self._ports:
            raise IngressError(f"port {port}/{protocol} is not published through the ingress")
        self._ports[key] = tuple(dict.fromkeys(backends))
        self._send({"op": "backends", "port": port, "protocol": protocol,
                    "backends": [list(b) for b in self._ports[key]]})

    def remove_backend(self, backend: Upstream) -> None:
        for key, backends in self._ports.items():
            if backend in backends:
                self._ports[key] = tuple(b for b in backends if b != backend)
        self._send({"op": "remove_backend", "backend": list(backend)})

    async def drain_backends(self, backends: Iterable[Upstream], timeout: float) -> None:
        backends = list(backends)
        if not backends:
            return
        with contextlib.suppress(IngressError):  # no ingress: nothing of ours is open there
            await self._call({"op": "drain", "backends": [list(b) for b in backends], "timeout": timeout},
                             timeout=timeout + CALL_TIMEOUT_S)

    async def close(self, port: int, protocol: str = "tcp", *, drain_timeout: float = 10.0) -> None:
        if self._ports.pop((port, protocol), None) is None:
            return
        with contextlib.suppress(IngressError):  # it answers again later: `prune` closes it then
            await self._call({"op": "close", "port": port, "protocol": protocol,
                              "drain_timeout": drain_timeout}, timeout=drain_timeout + CALL_TIMEOUT_S)

    async def close_all(self, *, drain_timeout: float = 10.0) -> None:
        """Closes every port: only for a stack-less shutdown; a daemon that stops `detach`es."""
        for port, protocol in list(self._ports):
            await self.close(port, protocol, drain_timeout=drain_timeout)

    async def prune(self, keep: set[PortKey]) -> None:
        """Closes the adopted ports no deployed stack wants any more."""
        for port, protocol in [key for key in self.adopted if key not in keep]:
            log.info("ingress_adopted_port_closed", port=port, protocol=protocol)
            await self.close(port, protocol, drain_timeout=1.0)

    # --- connecting -----------------------------------------------------------------------

    async def start(self, wait: float = START_WAIT_S) -> None:
        """Connects (spawning the ingress if asked and none answers) and adopts what it serves;
        keeps reconnecting in the background. Waits at most `wait` for the first connection."""
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise(), name="ingress-feed")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait):
                await self._connected.wait()
        if not self._connected.is_set():
            log.warning("ingress_not_answering", socket=str(socket_path(self.state_dir)), waited_s=wait)

    async def detach(self) -> None:
        """The daemon stops: the ingress goes on serving what it has."""
        self._detaching = True
        if self._supervisor is not None:
            self._supervisor.cancel()
            await asyncio.gather(self._supervisor, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()
        if self._child_running() and not self._ports:
            await self._stop_child()  # it serves nothing: no need to leave it behind
        elif self._child is not None:
            self._child.poll()  # reaped if it ended; a running one is left to run

    async def _stop_child(self) -> None:
        assert self._child is not None
        self._child.terminate()
        try:
            async with asyncio.timeout(10):
                await asyncio.to_thread(self._child.wait)
        except TimeoutError:
            self._child.kill()
        log.info("ingress_stopped_unused", pid=self._child.pid)

    async def _supervise(self) -> None:
        for attempt in itertools.count():
            try:
                reader, writer = await asyncio.open_unix_connection(socket_path(self.state_dir), limit=MAX_MESSAGE)
            except OSError as exc:
                if self._spawn and not self._child_running():
                    self._start_child()
                elif attempt % 50 == 0:
                    log.warning("ingress_connect_failed", error=str(exc))
                await asyncio.sleep(RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)])
                continue
            try:
                await self._session(reader, writer)
            except (OSError, IngressError, ValueError) as exc:
                log.warning("ingress_session_ended", error=str(exc))
            finally:
                self._disconnected(writer)
            await asyncio.sleep(RECONNECT_DELAYS[0])

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writer = writer
        reading = asyncio.get_running_loop().create_task(self._read(reader))
        try:
            hello = await self._call({"op": "hello", "protocol": PROTOCOL}, connected_only=False)
            if hello.get("protocol") != PROTOCOL:
                raise IngressError(f"the ingress speaks protocol {hello.get('protocol')}, this daemon {PROTOCOL}")
            serving: dict[PortKey, tuple[Upstream, ...]] = {
                (p["port"], p["protocol"]): tuple((str(b[0]), int(b[1])) for b in p["backends"]) for p in hello["ports"]
            }
            if self.ingress_pid is None:  # this daemon's first ingress: adopt what it serves
                self._ports = {**serving, **self._ports}
                self.adopted = frozenset(serving)
                log.info("ingress_adopted", pid=hello.get("pid"), ports=len(serving))
            else:
                await self._resend(serving)
            self.ingress_pid = hello.get("pid")
            self._connected.set()
            await reading
        finally:
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)

    async def _resend(self, serving: dict[PortKey, Any]) -> None:
        """A new ingress (or one that restarted): every port and rotation again."""
        lost = False
        for (port, protocol), backends in list(self._ports.items()):
            if (port, protocol) not in serving:
                answer = await self._call({"op": "listen", "port": port, "protocol": protocol},
                                          connected_only=False)
                if not answer.get("ok"):
                    log.warning("ingress_port_lost", port=port, error=answer.get("error"))
                    del self._ports[(port, protocol)]
                    lost = True
                    continue
            self._send({"op": "backends", "port": port, "protocol": protocol,
                        "backends": [list(b) for b in backends]}, connected_only=False)
        for port, protocol in serving.keys() - self._ports.keys():
            self._send({"op": "close", "port": port, "protocol": protocol, "drain_timeout": 1.0},
                       connected_only=False)
        log.info("ingress_reconnected", ports=len(self._ports))
        if lost:
            self.on_lost()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            answer = json.loads(line)
            ident = answer.get("id") if isinstance(answer, dict) else None
            waiter = self._pending.pop(ident, None) if isinstance(ident, int) else None
            if waiter is not None and not waiter.done():
                waiter.set_result(answer)
            elif isinstance(answer, dict) and not answer.get("ok"):
                log.warning("ingress_request_refused", error=answer.get("error"))
        raise ConnectionResetError("the ingress closed the connection")

    def _disconnected(self, writer: asyncio.StreamWriter) -> None:
        writer.close()
        if self._writer is writer:
            self._writer = None
        self._connected.clear()
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(IngressError("the ingress process stopped answering"))
        self._pending.clear()
        if self._detaching:
            log.info("ingress_detached", pid=self.ingress_pid)
        else:
            log.warning("ingress_disconnected")

    def _send(self, message: dict[str, Any], *, connected_only: bool = True) -> int | None:
        """Sends without waiting for the answer; while disconnected, nothing (what we keep in
        `_ports` is sent again on reconnect)."""
        writer = self._writer
        if writer is None or writer.is_closing() or (connected_only and not self._connected.is_set()):
            return None
        ident = next(self._ids)
        writer.write(json.dumps({"id": ident, **message}).encode() + b"\n")
        return ident

    async def _call(self, message: dict[str, Any], *, timeout: float = CALL_TIMEOUT_S,
                    connected_only: bool = True) -> dict[str, Any]:
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        ident = self._send(message, connected_only=connected_only)
        if ident is None:
            raise IngressError("the ingress process is not running (see docs/dataplane.md)")
        self._pending[ident] = waiter
        try:
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError:
            raise IngressError(f"the ingress process did not answer {message['op']} within {timeout:.0f} s") from None
        finally:
            self._pending.pop(ident, None)

    # --- the spawned child ----------------------------------------------------------------

    def _child_running(self) -> bool:
        return self._child is not None and self._child.poll() is None

    def _start_child(self) -> None:
        """`orchestrator ingress` in a session of its own (not killed with the daemon), with the
        daemon's environment (so the same state directory and ingress host)."""
        log_file = open(self.state_dir / "ingress.log", "ab")  # noqa: SIM115 - the child owns it
        try:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "orchestrator", "ingress", "--idle-exit", str(SPAWNED_IDLE_EXIT_S)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                start_new_session=True, close_fds=True,
                env={**os.environ, "ORCHESTRATOR_STATE_DIR": str(self.state_dir),
                     "ORCHESTRATOR_INGRESS_HOST": self.host},
            )
        finally:
            log_file.close()
        log.info("ingress_spawned", pid=self._child.pid, log=str(self.state_dir / "ingress.log"))


def make_ingress(settings: Settings, on_lost: Callable[[], None] | None = None) -> Ingress | RemoteIngress:
    """The ingress the daemon feeds, as the `ingress` setting says."""
    if settings.ingress == "inline":
        return Ingress(settings.ingress_host)
    return RemoteIngress(settings.state_dir, settings.ingress_host, spawn=settings.ingress == "spawn", on_lost=on_lost)

