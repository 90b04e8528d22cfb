"""Work a caller brings that could hold the event loop runs here: in worker processes, on a budget.

Parsing a stack file is pure CPU in Python. On the loop it stalls everything else the daemon does
(the event intake, replica replacement, the ingress, every other request) for as long as the
caller's input makes it last; a thread would not help, since it holds the GIL just the same. So
such work runs in a small pool of worker processes (pebble's ProcessPool: a timeout per call that
stops only the worker that overran, and a replacement for every worker that ends), under a budget:

- a wall-clock `timeout` per call, counted from when a worker takes it: past it the worker is
  killed and replaced, and the caller gets WorkerTimeout;
- an address-space cap (RLIMIT_AS) in every worker: the work gets MemoryError, or its worker dies,
  and the caller gets WorkerOutOfMemory or WorkerDied, never a daemon out of memory;
- a bound on callers waiting for a free worker: past it WorkerBusy at once, so a flood of
  hostile requests cannot queue without limit;
- a low CPU priority (nice 10, in a scheduling group of its own): a worker busy with a hostile
  file takes little from the containers, the engine and the daemon on a busy machine, and still
  any idle core (benchmarks/bench_hostile.py measures it).

Workers start through the `forkserver` method: never a fork of the running daemon (its threads,
event loop and sockets), yet each new worker is a cheap fork of a server that imported the
`preload` modules once. A caller that gives up (cancelled, the client hung up) stops its worker.
A worker whose daemon died (SIGKILL) notices within a second and exits. A pool without a call
for `idle_stop_s` is stopped, and started again by the next call: pebble's manager thread polls
ten times a second as long as a pool lives, and a daemon that parses a stack file a day should
not pay for that (at 200 stacks idle it was a third of the daemon's CPU).

What a worker raises comes back as the same exception (rebuilt from its class, args and
attributes, since many exceptions cannot be unpickled through their constructor), with the
worker's traceback as its cause. Results must pickle; the stack spec's frozen dataclasses do.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import resource
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import structlog
from pebble import ProcessExpired, ProcessFuture, ProcessPool

log = structlog.stdlib.get_logger()

T = TypeVar("T")

#: A worker is replaced after this many calls: what a parse left behind (fragmented heap, caches)
#: does not pile up for the daemon's lifetime.
CALLS_PER_WORKER = 100
#: CPU niceness of the workers. At 19 they starved on a saturated machine (a parse of 2-5 s did
#: not end within 10 s at a load of 13 on 2 cores); at 10 the replacement p50 stayed within 1.15x
#: of idle while they parsed (benchmarks/bench_hostile.py).
WORKER_NICENESS = 10
_WATCHDOG_PERIOD = 1.0
#: A pool without a call for this long is stopped; the next call starts it again (one fork of
#: the forkserver, which keeps the preloaded modules).
IDLE_STOP_S = 60.0


class WorkerBusy(Exception):
    """Every worker is busy and `max_waiting` callers already wait for one."""


class WorkerTimeout(Exception):
    def __init__(self, limit: float) -> None:
        super().__init__(f"the work took longer than {limit:g} s")
        self.limit = limit


class WorkerOutOfMemory(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the work needed more than {limit >> 20} MiB of memory")
        self.limit = limit


class WorkerDied(Exception):
    """The worker ended during the call (killed by the kernel's OOM killer, a signal, a crash)."""

    def __init__(self, exitcode: int | None) -> None:
        super().__init__(f"the worker ended abnormally (exit code {exitcode})")
        self.exitcode = exitcode


class _PoolBroken(Exception):
    """The pool failed as a whole (not the call's own worker)."""


class RemoteTraceback(Exception):
    """The worker's traceback, as the cause of the exception rebuilt in the daemon."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True, slots=True)
class Budget:
    timeout: float = 10.0
    memory_bytes: int = 1 << 30
    workers: int = 1
    max_waiting: int = 8

    def __post_init__(self) -> None:
        if not (self.timeout > 0 and self.memory_bytes > 0 and self.workers >= 1 and self.max_waiting >= 0):
            raise ValueError(f"invalid worker budget {self}")


class WorkerPool:
    def __init__(self, budget: Budget, preload: Sequence[str] = (), idle_stop_s: float = IDLE_STOP_S) -> None:
        """`preload`: modules the forkserver imports once, so that new workers start warm."""
        self.budget = budget
        self._idle_stop_s = idle_stop_s
        #: Callers inside `run` (at work or waiting) and when the last one left.
        self._callers = 0
        self._last_call_ended = time.monotonic()
        self._idle_timer: asyncio.TimerHandle | None = None
        self._idle_stop: asyncio.Task[None] | None = None
        self._preload = list(preload)
        self._pool: ProcessPool | None = None
        self._free = asyncio.Semaphore(budget.workers)
        self._waiting = 0
        self._replacing = asyncio.Lock()
        self._replacement: asyncio.Future[None] | None = None
        self._closed = False
        self._in_flight: set[ProcessFuture[Any]] = set()

    async def start(self) -> None:
        """Start the workers and wait until one answers (off the loop: the forkserver's first
        start imports the preload modules)."""
        await self.run(os.getpid)

    async def close(self) -> None:
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self._idle_stop is not None:
            with contextlib.suppress(Exception):
                await self._idle_stop
        if self._replacement is not None:  # a start in flight ends before we stop what it made
            with contextlib.suppress(Exception):
                await self._replacement
        pool, self._pool = self._pool, None
        if pool is not None:
            await asyncio.to_thread(_stop, pool)
        for future in self._in_flight:  # a stopped pool answers them no more
            future.cancel()

    async def run(self, function: Callable[..., T], *args: Any) -> T:
        """`function(*args)` in a worker, within the budget. `function` must be importable by
        name (a module-level function) and its arguments and result must pickle."""
        if self._closed:
            raise WorkerBusy("the workers are stopped")
        if self._free.locked() and self._waiting >= self.budget.max_waiting:
            raise WorkerBusy(f"{self.budget.workers} at work and {self._waiting} waiting")
        self._callers += 1
        try:
            self._waiting += 1
            try:
                await self._free.acquire()
            finally:
                self._waiting -= 1
            try:
                return await self._call(function, args)
            finally:
                self._free.release()
        finally:
            self._callers -= 1
            self._last_call_ended = time.monotonic()
            self._arm_idle_stop(self._idle_stop_s)

    def _arm_idle_stop(self, delay: float) -> None:
        if self._idle_timer is None and not self._closed:
            self._idle_timer = asyncio.get_running_loop().call_later(delay, self._idle_check)

    def _idle_check(self) -> None:
        self._idle_timer = None
        if self._closed or self._pool is None or self._callers:
            return  # stopped already, or a caller's end arms the timer again
        left = self._last_call_ended + self._idle_stop_s - time.monotonic()
        if left > 0:
            self._arm_idle_stop(left)
        elif self._idle_stop is None or self._idle_stop.done():
            self._idle_stop = asyncio.get_running_loop().create_task(self._stop_when_idle())

    async def _stop_when_idle(self) -> None:
        """Under the lock that starts pools: a call that comes meanwhile waits, then starts a new one."""
        async with self._replacing:
            if self._callers or self._pool is None or self._closed:
                return
            pool, self._pool = self._pool, None
            log.debug("worker_pool_stopped_idle", idle_s=self._idle_stop_s)
            await asyncio.to_thread(_stop, pool)

    async def _call(self, function: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            outcome = await self._dispatch(function, args)
        except _PoolBroken:
            # A worker died idle just before (pebble then fails the pool and the calls it had
            # not started yet): this call never ran, so it runs once more on a new pool.
            try:
                outcome = await self._dispatch(function, args)
            except _PoolBroken:
                log.warning("worker_pool_broken", function=function.__qualname__)
                raise WorkerDied(None) from None
        result: T = outcome.unwrap(self.budget.memory_bytes)
        return result

    async def _dispatch(self, function: Callable[..., Any], args: tuple[Any, ...]) -> _Outcome:
        pool = await self._ensure_pool()
        try:
            future = pool.schedule(_run_in_worker, args=(function, args), timeout=self.budget.timeout)
        except RuntimeError:  # it broke since we looked
            raise _PoolBroken from None
        self._in_flight.add(future)
        try:
            return await asyncio.wrap_future(future)  # cancelling it stops the worker
        except TimeoutError:
            log.warning("worker_timed_out", function=function.__qualname__, limit_s=self.budget.timeout)
            raise WorkerTimeout(self.budget.timeout) from None
        except ProcessExpired as exc:
            log.warning("worker_died", function=function.__qualname__, exitcode=exc.exitcode)
            raise WorkerDied(exc.exitcode) from None
        except BrokenProcessPool:
            raise _PoolBroken from None
        finally:
            self._in_flight.discard(future)

    async def _ensure_pool(self) -> ProcessPool:
        """The pool, started; a new one when it broke (pebble gives up on a pool whose every
        worker died while none ran a call). Starting runs in a thread, as the forkserver's first
        start waits for its imports, and to its end even if the caller is cancelled (so that
        close() finds what it started)."""
        async with self._replacing:
            if self._pool is None or not self._pool.active:
                self._replacement = asyncio.ensure_future(self._replace_pool())
                await asyncio.shield(self._replacement)
            assert self._pool is not None
            return self._pool

    async def _replace_pool(self) -> None:
        old, self._pool = self._pool, None
        if old is not None:
            log.warning("worker_pool_replaced")
            await asyncio.to_thread(_stop, old)
        self._pool = await asyncio.to_thread(self._new_pool)

    def _new_pool(self) -> ProcessPool:
        context = multiprocessing.get_context("forkserver")
        if self._preload:
            context.set_forkserver_preload(self._preload)
        pool = ProcessPool(
            max_workers=self.budget.workers,
            max_tasks=CALLS_PER_WORKER,
            initializer=_init_worker,
            initargs=(self.budget.memory_bytes,),
            context=context,
        )
        pool.active  # noqa: B018 - starts the workers (the first start waits for the forkserver)
        return pool


def _stop(pool: ProcessPool) -> None:
    pool.stop()
    pool.join()


# ------------------------------------------------------------------------------ in the worker


def _init_worker(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    lower_priority()
    threading.Thread(target=_exit_with_daemon, daemon=True).start()


def lower_priority() -> None:
    """The least CPU priority for this process. With the kernel's autogroup scheduling (a group
    per session, fair among groups), a nice value only counts inside the daemon's group, and a
    spinning worker would still take its group's share from the containers: so the worker gets
    a session (an autogroup) of its own, niced too."""
    os.nice(WORKER_NICENESS)
    with contextlib.suppress(OSError):
        os.setsid()
        Path("/proc/self/autogroup").write_text(f"{WORKER_NICENESS}\n")


def _exit_with_daemon() -> None:
    """A worker's parent is the forkserver, which ends with the daemon: the worker is then
    reparented, and leaves even in the middle of a call (no one waits for its answer)."""
    parent = os.getppid()
    while os.getppid() == parent:
        time.sleep(_WATCHDOG_PERIOD)
    os._exit(1)


@dataclass(frozen=True, slots=True)
class _Outcome:
    """A call's result, or what it raised in a form that always pickles (class, args, state)."""

    value: Any = None
    error: tuple[type[BaseException], tuple[Any, ...], dict[str, Any], str] | None = None

    def unwrap(self, memory_bytes: int) -> Any:
        if self.error is None:
            return self.value
        cls, args, state, remote_traceback = self.error
        if cls is MemoryError:
            raise WorkerOutOfMemory(memory_bytes)
        exc = cls.__new__(cls)
        exc.args = args
        with contextlib.suppress(AttributeError):  # an exception class without __dict__
            exc.__dict__.update(state)
        raise exc from RemoteTraceback(remote_traceback)


def _run_in_worker(function: Callable[..., Any], args: tuple[Any, ...]) -> _Outcome:
    try:
        return _Outcome(value=function(*args))
    except MemoryError:
        return _Outcome(error=(MemoryError, (), {}, ""))
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the caller
        state = dict(getattr(exc, "__dict__", {}))
        return _Outcome(error=(type(exc), exc.args, state, traceback.format_exc()))
