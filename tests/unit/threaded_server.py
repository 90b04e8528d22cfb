"""The real app over a fake Control, served on 127.0.0.1 from a thread of its own: for tests
whose client is synchronous (the CLI's `asyncio.run`, schemathesis)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from aiohttp import web

from orchestrator.api import make_app
from orchestrator.settings import Settings
from tests.unit.conftest import TOKEN
from tests.unit.fake_control import FakeControl


@dataclass
class Served:
    url: str
    control: FakeControl
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextlib.contextmanager
def serve_in_thread(settings: Settings | None = None) -> Iterator[Served]:
    control = FakeControl()
    settings = settings or Settings(token=TOKEN)
    app = make_app(control, settings, body_limit=64 * 1024)
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0, access_log=None)
    loop.run_until_complete(runner.setup())
    site = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(site.start())
    if settings.socket:  # as the daemon serves: also on its unix socket
        loop.run_until_complete(web.UnixSite(runner, settings.socket).start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        yield Served(f"http://127.0.0.1:{port}", control, settings.token)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
