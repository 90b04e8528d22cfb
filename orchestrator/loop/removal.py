"""Removing a stack durably: once `rm` is answered, the daemon finishes it, whatever the engine
refuses and however often the daemon itself is killed.

`StackCommands.remove` saves the stack's record with `removing=True` (and `remove_volumes`) before
anything is touched and hands the stack to `Removals`. From then on the removal is the daemon's
work, not the request's. One task per stack goes round after round:
  1. cancel the stack's actions in flight (the loop plans nothing for a removing stack),
  2. list the stack's containers; stop and remove each one,
  3. remove its networks, then (`rm --volumes`) its named volumes,
  4. list again: a container that appeared meanwhile (a create in flight) means another round.
When the engine refuses (`device or resource busy` while it unmounts a layer, `has active
endpoints`, `volume is in use`) or cannot be reached, the task waits, with a capped backoff, and
starts over from the listing: what is left is always read from the engine, so nothing that is
not removed yet is forgotten. One refusal is not waited out for ever: a network the engine
keeps with no container attached (StuckNetworks: dockerd 20.10 leaks endpoint counts under heavy
churn, and only its restart clears them) is left behind after STUCK_NETWORK_WAIT, loudly, so the
rm ends; a later deploy of the stack reuses the network, and `docker network rm` removes it
after a dockerd restart. Only when all is gone is the record deleted, each task reported
`removed` and `stack.removed` published. A daemon that starts with a `removing` record starts
its task again, in the background: a removal never keeps the daemon from starting.

The request waits for the task until it is done or, once the engine has refused, `REFUSED_WAIT`
seconds more at most; then it answers that the removal goes on, and why.
"""

from __future__ import annotations

import asyncio
import itertools
import shutil
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from orchestrator.support.backoff import doubling
from orchestrator.publishing import events
from orchestrator.errors import EngineError, EngineUnavailable, OrchestratorError, StuckNetworks
from orchestrator.backend import Backend
from orchestrator.loop.desired import DesiredState
from orchestrator.loop.executor import Executor
from orchestrator.loop.store import StackRecord
from orchestrator.loop.tracker import TaskTracker
from orchestrator.planning.restarts import RestartBook
from orchestrator.publishing.events import Event

log = structlog.stdlib.get_logger()

#: Backoff between rounds after a refusal: doubling from the first, up to the cap (seconds).
RETRY_FIRST = 0.25
RETRY_CAP = 30.0
#: How long a request still waits once the engine refused, before it answers "in progress".
#: Long enough for a few quick rounds (transient refusals usually clear within a second).
REFUSED_WAIT = 3.0
#: How long networks the engine keeps with nothing attached are retried before the removal ends
#: without them (seconds; a transient count clears within a round or two).
STUCK_NETWORK_WAIT = 60.0


class _Leftover(OrchestratorError):
    """Containers are left after a round: the engine is still removing them, or a create that
    was in flight made one."""


@dataclass(eq=False)
class Removal:
    """One stack's removal, as the requests and the views see it."""

    stack: str
    done: asyncio.Event = field(default_factory=asyncio.Event)
    #: Set at the first refusal: from then on a request waits only REFUSED_WAIT more.
    refused: asyncio.Event = field(default_factory=asyncio.Event)
    #: Why the last round did not finish; "" when no round has failed yet.
    reason: str = ""
    #: When the engine first kept networks with nothing attached (time.monotonic), else None.
    stuck_since: float | None = None
    task: asyncio.Task[None] | None = None


class Removals:
    def __init__(
        self,
        desired: DesiredState,
        backend: Backend,
        executor: Executor,
        book: RestartBook,
        tracker: TaskTracker,
        files_dir: Callable[[str], Path],
        report_removed: Callable[[str], Awaitable[None]],
        emit: Callable[[Event], None],
    ) -> None:
        self._desired = desired
        self._backend = backend
        self._executor = executor
        self._book = book
        self._tracker = tracker
        self._files_dir = files_dir
        #: A last pass over the removed stack: publishes `removed` for each of its tasks.
        self._report_removed = report_removed
        self._emit = emit
        self._running: dict[str, Removal] = {}

    def start(self, stack: str) -> Removal:
        """The stack's removal task (started now unless it runs already). Its record must be
        saved as `removing` first."""
        removal = self._running.get(stack)
        if removal is None:
            removal = self._running[stack] = Removal(stack)
            removal.task = asyncio.create_task(self._run(removal), name=f"remove {stack}")
            log.info("stack_removal_started", stack=stack)
        return removal

    def resume(self) -> None:
        """Start the removals a previous daemon did not finish (their record says removing)."""
        for name, record in self._desired.items():
            if record.removing:
                self.start(name)

    def reason(self, stack: str) -> str:
        removal = self._running.get(stack)
        return removal.reason if removal else ""

    async def wait(self, removal: Removal) -> None:
        """Until the removal is done or, once the engine refused, REFUSED_WAIT seconds more."""
        assert removal.task is not None
        done = asyncio.ensure_future(removal.done.wait())
        refused = asyncio.ensure_future(removal.refused.wait())
        ended = {done, removal.task}  # the task also ends when the daemon stops
        try:
            await asyncio.wait({*ended, refused}, return_when=asyncio.FIRST_COMPLETED)
            if not any(f.done() for f in ended):
                await asyncio.wait(ended, timeout=REFUSED_WAIT, return_when=asyncio.FIRST_COMPLETED)
        finally:
            done.cancel()
            refused.cancel()

    async def close(self) -> None:
        """Stop every removal task (daemon shutdown): the records still say removing, so the
        next start goes on with them."""
        tasks = [r.task for r in self._running.values() if r.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # the task -------------------------------------------------------------------------------
    async def _run(self, removal: Removal) -> None:
        delays = _backoff()
        try:
            while True:
                record = self._desired.get(removal.stack)
                if record is None or not record.removing:
                    return  # finished or undone another way: nothing left to do
                try:
                    left_behind = await self._round(record, leave_stuck=_waited_out(removal.stuck_since))
                    # the commands' lock: deleting the record never interleaves with a deploy
                    async with self._desired.lock:
                        # `rm --volumes` may have come while the round ran without them
                        now = self._desired.get(removal.stack)
                        if now is not None and not now.remove_volumes > record.remove_volumes:
                            await self._finish(record, left_behind)
                            removal.done.set()
                            return
                    continue
                except asyncio.CancelledError:
                    raise
                except StuckNetworks as exc:
                    removal.reason = exc.message
                    if removal.stuck_since is None:
                        removal.stuck_since = time.monotonic()
                except (EngineError, EngineUnavailable, _Leftover) as exc:
                    removal.reason = exc.message if isinstance(exc, EngineError) else str(exc)
                except Exception:  # a bug must not end the removal: it is logged and retried
                    log.exception("stack_removal_failed", stack=removal.stack)
                    removal.reason = "unexpected error; see the daemon's log"
                delay = next(delays)
                log.warning("stack_removal_refused", stack=removal.stack, error=removal.reason,
                            retry_in_s=delay)
                removal.refused.set()
                await asyncio.sleep(delay)
        finally:
            self._running.pop(removal.stack, None)

    async def _round(self, record: StackRecord, *, leave_stuck: bool) -> list[str]:
        """One round; the names of the networks left behind (`leave_stuck`: the engine has kept
        them with nothing attached for STUCK_NETWORK_WAIT)."""
        stack = record.spec.name
        await self._executor.cancel(stack)
        await self._executor.remove_now(record, await self._backend.list_containers(stack))
        left = await self._backend.list_containers(stack)
        if left:
            raise _Leftover(f"{len(left)} containers are still there (being removed, or created meanwhile)")
        left_behind: list[str] = []
        try:
            await self._backend.remove_stack_networks(stack)
        except StuckNetworks as exc:
            if not leave_stuck:
                raise
            left_behind = exc.networks
        if record.remove_volumes:
            await self._backend.remove_stack_volumes(stack)
        return left_behind

    async def _finish(self, record: StackRecord, left_behind: list[str]) -> None:
        """Everything is gone: forget the stack. The record goes last but for the reports, so a
        crash before it only means one more (empty) round at the next start."""
        stack = record.spec.name
        self._book.forget_stack(stack)
        self._tracker.forget_stack(stack)
        self._executor.forget_stack(stack)
        await asyncio.to_thread(shutil.rmtree, self._files_dir(stack), ignore_errors=True)
        for network in left_behind:
            log.warning("network_left_behind", stack=stack, network=network,
                        reason="the engine counts active endpoints with no container attached",
                        hint="a new deploy of the stack reuses it; `docker network rm` it after a dockerd restart")
        self._desired.delete(stack)
        await self._report_removed(stack)
        self._emit(events.stack_removed(stack))
        log.info("stack_removed", stack=stack, volumes=record.remove_volumes)


def _waited_out(stuck_since: float | None) -> bool:
    return stuck_since is not None and time.monotonic() - stuck_since >= STUCK_NETWORK_WAIT


def _backoff() -> Iterator[float]:
    return (doubling(attempt, RETRY_FIRST, RETRY_CAP) for attempt in itertools.count())


__all__ = ["REFUSED_WAIT", "Removal", "Removals"]
