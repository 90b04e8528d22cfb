"""An engine that leaves a call unanswered (engine/calls.py `Stalls`, `Engine.stop`'s deadline).

A deadlocked dockerd (moby#46661, seen here under a 400+400 container rm) answers `/version`
while every stop of a running container hangs. No real engine can be made to hang on purpose,
so a small HTTP server on a unix socket plays one: it answers the version and never the stop.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import aiodocker
import aiohttp
import pytest
from aiohttp import web

from orchestrator.engine import client as engine_client
from orchestrator.engine.calls import Stalls, engine_errors
from orchestrator.engine.client import Engine
from orchestrator.errors import EngineError, EngineUnavailable


def test_a_stall_is_shown_for_its_window_then_forgotten() -> None:
    now = [100.0]
    stalls = Stalls(clock=lambda: now[0])
    assert stalls.recent() == ""
    stalls.timed_out("the stop of abc")
    now[0] += 30
    assert stalls.recent(within=60) == "the engine left the stop of abc unanswered (30 s ago)"
    now[0] += 31
    assert stalls.recent(within=60) == ""


def test_a_timeout_is_unavailable_and_remembered_a_refusal_or_failed_connect_is_not() -> None:
    stalls = Stalls()
    with pytest.raises(EngineUnavailable, match="could not connect"), engine_errors(stalls, "x"):
        raise aiohttp.ConnectionTimeoutError("connect timed out")
    with pytest.raises(EngineError) as refused, engine_errors(stalls, "x"):
        raise aiodocker.DockerError(404, "no such container")
    assert refused.value.status == 404 and stalls.recent() == ""
    with pytest.raises(EngineUnavailable, match="did not answer the inspect"), engine_errors(stalls, "the inspect"):
        raise aiohttp.SocketTimeoutError("read timed out")
    assert "the inspect unanswered" in stalls.recent()


@pytest.fixture
async def hung_engine(tmp_path: Path) -> AsyncIterator[str]:
    """A unix socket whose server answers `/version` and leaves every stop unanswered."""
    released = asyncio.Event()  # set at the end, so no handler outlives the test

    async def version(_request: web.Request) -> web.Response:
        return web.json_response({"ApiVersion": "1.41", "Version": "20.10.24"})

    async def stop(_request: web.Request) -> web.Response:
        await released.wait()  # past every deadline the client sets
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/version", version)
    app.router.add_get("/v1.41/version", version)
    app.router.add_post("/v1.41/containers/{id}/stop", stop)
    runner = web.AppRunner(app)
    await runner.setup()
    socket = tmp_path / "docker.sock"
    await web.UnixSite(runner, str(socket)).start()
    try:
        yield f"unix://{socket}"
    finally:
        released.set()
        await runner.cleanup()


async def test_a_stop_the_engine_never_answers_ends_at_its_deadline_and_shows_in_stalled(
    hung_engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_client, "STOP_ANSWER_MARGIN_S", 0.3)
    engine = await Engine.connect(hung_engine)
    try:
        await engine.ping()
        assert engine.stalled() == ""
        async with asyncio.timeout(10):  # the bound of this test, not the deadline under test
            with pytest.raises(EngineUnavailable, match="did not answer the stop of 0123456789ab"):
                await engine.stop("0123456789abcdef", timeout=0)
        assert "the stop of 0123456789ab unanswered" in engine.stalled()
        await engine.ping()  # it still answers: only `stalled` tells the hang
    finally:
        await engine.close()
