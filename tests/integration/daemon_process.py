"""The daemon as users run it: `python -m orchestrator daemon` in its own process, so tests can
SIGKILL it and start it again beside the containers it left.

The daemon spawns its ingress (`orchestrator ingress`, docs/dataplane.md) in a session of its own,
so a SIGKILLed daemon leaves it serving and the next start adopts it; `stop()` ends both."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    """Runs (a zombie has ended: its parent, a killed daemon's init, reaps it)."""
    try:
        return not Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[-1].startswith("Z")
    except OSError:
        return False


@dataclass
class DaemonProcess:
    state_dir: Path
    prefix: str
    port: int = field(default_factory=free_port)
    #: More environment for the daemon (a token, another Redis URL…).
    extra_env: dict[str, str] = field(default_factory=dict)
    #: None: the daemon's default (the shared Redis); else e.g. a PrivateRedis's URL.
    redis_url: str | None = None
    process: asyncio.subprocess.Process | None = None
    #: Where it runs; with PYTHONPATH in extra_env, another tree's package (an older version).
    cwd: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def token(self) -> str:
        """The token its TCP listener wants: the one given, else the one it made at its first
        start (a daemon of an older tree, e.g. bench_reconciler's --baseline, may make none)."""
        given = self.extra_env.get("ORCHESTRATOR_TOKEN")
        if given:
            return given
        path = self.state_dir / "token"
        return path.read_text().strip() if path.exists() else ""

    @property
    def auth(self) -> dict[str, str]:
        """The header that lets a test's own HTTP calls in."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "ORCHESTRATOR_LISTEN": f"127.0.0.1:{self.port}",
            "ORCHESTRATOR_HOST": self.url,
            "ORCHESTRATOR_STATE_DIR": str(self.state_dir),
            "ORCHESTRATOR_PREFIX": self.prefix,
            "ORCHESTRATOR_LOG_FORMAT": "json",
            "ORCHESTRATOR_INGRESS_HOST": "127.0.0.1",
            **self.extra_env,
            **({"ORCHESTRATOR_REDIS_URL": self.redis_url} if self.redis_url else {}),
        }

    async def start(self, timeout: float = 30.0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.state_dir / "daemon.log", "ab")  # noqa: SIM115 - the child owns it
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "orchestrator", "daemon", env=self.env, stdout=log, stderr=log, cwd=self.cwd
        )
        log.close()
        async with aiohttp.ClientSession() as session:
            async with asyncio.timeout(timeout):
                while True:
                    if self.process.returncode is not None:
                        raise AssertionError(f"daemon exited: {self.log_tail()}")
                    try:
                        async with session.get(f"{self.url}/v1/health") as response:
                            if response.status in (200, 503):
                                return
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """SIGKILL: no clean-up at all, as a crash."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> int:
        """SIGTERM to the daemon, then to the ingress it left running."""
        try:
            return await self.stop_daemon()
        finally:
            await self.stop_ingress()

    async def stop_daemon(self) -> int:
        """SIGTERM to the daemon only: its ingress goes on serving (an upgrade, a restart)."""
        if self.process is None or self.process.returncode is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(45):
                return await self.process.wait()
        except TimeoutError:
            self.process.kill()
            return await self.process.wait()

    @property
    def ingress_pid(self) -> int | None:
        path = self.state_dir / "ingress.pid"
        try:
            return int(path.read_text().strip())
        except (OSError, ValueError):
            return None

    async def stop_ingress(self, timeout: float = 20.0) -> None:
        """SIGTERM to the state directory's ingress process, if one runs; waits for its end."""
        pid = self.ingress_pid
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while _alive(pid):
            if loop.time() > deadline:
                os.kill(pid, signal.SIGKILL)
                return
            await asyncio.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        path = self.state_dir / "daemon.log"
        return "\n".join(path.read_text().splitlines()[-lines:]) if path.exists() else ""

    async def request(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> tuple[int, Any]:
        """One API call with the daemon's token (`auth=False`: without; headers given win)."""
        kwargs["headers"] = {**(self.auth if auth else {}), **kwargs.get("headers", {})}
        async with aiohttp.ClientSession() as session:
            async with session.request(method, f"{self.url}{path}", **kwargs) as response:
                body = await response.json(content_type=None)
                return response.status, body

    async def poll(self, path: str, check: Callable[[Any], bool], timeout: float = 30.0) -> Any:
        """GET `path` until `check(body)` holds; the last body is in the failure message."""
        body: Any = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    status, body = await self.request("GET", path)
                    if status == 200 and check(body):
                        return body
                    await asyncio.sleep(0.2)
        except TimeoutError:
            raise AssertionError(f"GET {path} never passed the check; last answer: {body}") from None

    async def deploy(self, stack: str, yaml_text: str) -> object:
        status, body = await self.request(
            "PUT", f"/v1/stacks/{stack}", data=yaml_text, headers={"Content-Type": "application/yaml"}
        )
        assert status in (200, 201), body
        return body

    async def deploy_file(self, stack: str, path: Path, env: dict[str, str]) -> object:
        """Deploy a stack file as the CLI does: its text, the variables it uses, its directory."""
        body = {"files": [{"name": path.name, "content": path.read_text()}], "env": env,
                "base_dir": str(path.resolve().parent)}
        status, answer = await self.request("PUT", f"/v1/stacks/{stack}", json=body)
        assert status in (200, 201), answer
        return answer
