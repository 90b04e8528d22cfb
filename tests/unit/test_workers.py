"""The worker pool (orchestrator/workers.py) with real worker processes: results and errors come
back intact, and every budget holds (timeout, memory, a killed worker, too many waiting)."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.api.errors import RequestError
from orchestrator.api.loading import PRELOAD, load_deploy
from orchestrator.stackfile import StackFileError, load_stack_text
from orchestrator.workers import (
    Budget,
    RemoteTraceback,
    WorkerBusy,
    WorkerDied,
    WorkerOutOfMemory,
    WorkerPool,
    WorkerTimeout,
)
from tests.unit.worker_functions import fail, kill_self, sleep_after_touch

STACK = "services:\n  web:\n    image: busybox\n    deploy: {replicas: 2}\n"


@pytest.fixture(name="pool")
async def _pool() -> AsyncIterator[WorkerPool]:
    pool = WorkerPool(Budget(timeout=5, memory_bytes=512 << 20, workers=1, max_waiting=1), PRELOAD)
    await pool.start()
    try:
        yield pool
    finally:
        await pool.close()


async def test_result_and_worker_are_another_process(pool: WorkerPool) -> None:
    assert await pool.run(divmod, 7, 2) == (3, 1)
    assert await pool.run(os.getpid) != os.getpid()


async def test_the_loaded_spec_comes_back_equal(pool: WorkerPool, tmp_path: Path) -> None:
    spec = await pool.run(load_deploy, "shop", "application/yaml", STACK.encode(), str(tmp_path))
    assert spec == load_stack_text([("stack.yml", STACK)], tmp_path, env={}, name="shop")


async def test_stack_file_problems_come_back_with_their_places(pool: WorkerPool) -> None:
    bad = b"services:\n  web:\n    image: busybox\n    deploy: {replicas: many}\n  db: 3\n"
    with pytest.raises(StackFileError) as caught:
        await pool.run(load_deploy, "shop", "application/yaml", bad, "/")
    problems = caught.value.problems
    assert [(p.path, p.line) for p in problems] == [
        ("services.web.deploy.replicas", 4), ("services.db", 5)]
    assert caught.value.path == "services.web.deploy.replicas"
    assert isinstance(caught.value.__cause__, RemoteTraceback)


async def test_request_errors_keep_path_code_and_status(pool: WorkerPool) -> None:
    with pytest.raises(RequestError) as caught:
        await pool.run(load_deploy, "shop", "application/json", b'{"files": 3}', "/")
    assert (caught.value.path, caught.value.code, caught.value.status) == ("files", "bad_request", 400)
    with pytest.raises(RequestError) as caught:
        await pool.run(load_deploy, "shop", "application/xml", b"<a/>", "/")
    assert (caught.value.code, caught.value.status) == ("unsupported_media_type", 415)


async def test_any_exception_comes_back_with_the_workers_traceback(pool: WorkerPool) -> None:
    with pytest.raises(ValueError, match="from the worker") as caught:
        await pool.run(fail)
    assert "in fail" in str(caught.value.__cause__)


async def test_timeout_kills_the_worker_and_a_new_one_takes_over() -> None:
    pool = WorkerPool(Budget(timeout=0.5, workers=1), PRELOAD)
    try:
        before = await pool.run(os.getpid)
        with pytest.raises(WorkerTimeout) as caught:
            await pool.run(time.sleep, 60)
        assert caught.value.limit == 0.5
        after = await pool.run(os.getpid)
        assert after != before
        assert not _alive(before)
    finally:
        await pool.close()


async def test_a_worker_killed_during_a_call(pool: WorkerPool) -> None:
    before = await pool.run(os.getpid)
    with pytest.raises(WorkerDied) as caught:
        await pool.run(kill_self)
    assert caught.value.exitcode == -signal.SIGKILL
    assert await pool.run(os.getpid) not in (before, os.getpid())


async def test_a_worker_killed_while_idle_is_replaced(pool: WorkerPool) -> None:
    for _ in range(2):  # pebble gives up on a pool whose only worker died idle: we replace it
        idle = await pool.run(os.getpid)
        os.kill(idle, signal.SIGKILL)
        while _alive(idle):
            await asyncio.sleep(0.05)
        assert await pool.run(divmod, 9, 4) == (2, 1)


async def test_memory_beyond_the_cap_is_refused(pool: WorkerPool) -> None:
    with pytest.raises(WorkerOutOfMemory) as caught:
        await pool.run(bytearray, 1 << 30)
    assert caught.value.limit == 512 << 20
    assert await pool.run(divmod, 1, 1) == (1, 0)


async def test_beyond_max_waiting_the_caller_is_refused_at_once(pool: WorkerPool) -> None:
    running = asyncio.create_task(pool.run(time.sleep, 0.3))
    waiting = asyncio.create_task(pool.run(time.sleep, 0.1))
    await asyncio.sleep(0)  # both are in: one at work, one waiting (max_waiting=1)
    with pytest.raises(WorkerBusy):
        await pool.run(os.getpid)
    await asyncio.gather(running, waiting)
    assert await pool.run(divmod, 5, 5) == (1, 0)  # and the pool is free again


async def test_a_cancelled_call_stops_its_worker(pool: WorkerPool, tmp_path: Path) -> None:
    before = await pool.run(os.getpid)
    started = tmp_path / "started"
    call = asyncio.create_task(pool.run(sleep_after_touch, str(started), 60))
    while not started.exists():
        await asyncio.sleep(0.05)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await pool.run(os.getpid) != before
    assert not _alive(before)


async def test_closed_pool_refuses_and_leaves_no_worker() -> None:
    pool = WorkerPool(Budget(workers=2), PRELOAD)
    await pool.start()
    pids = {await pool.run(os.getpid) for _ in range(4)}
    await pool.close()
    assert not any(_alive(pid) for pid in pids)
    with pytest.raises(WorkerBusy):
        await pool.run(os.getpid)


async def test_an_idle_pool_stops_its_workers_and_the_next_call_starts_one() -> None:
    pool = WorkerPool(Budget(timeout=5), PRELOAD, idle_stop_s=0.3)
    await pool.start()
    try:
        first = await pool.run(os.getpid)
        assert await pool.run(time.sleep, 0.6) is None  # a call longer than the idle time runs out
        assert await pool.run(os.getpid) == first  # and the pool was not stopped under it
        deadline = time.monotonic() + 10
        while _alive(first) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not _alive(first)  # idle: no worker left
        second = await pool.run(os.getpid)
        assert second not in (first, os.getpid())
        assert await pool.run(divmod, 9, 4) == (2, 1)
    finally:
        await pool.close()
    assert not _alive(second)


def test_a_budget_out_of_range_is_refused() -> None:
    for bad in ({"timeout": 0}, {"workers": 0}, {"max_waiting": -1}, {"memory_bytes": 0}):
        with pytest.raises(ValueError):
            Budget(**bad)


def _alive(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status
