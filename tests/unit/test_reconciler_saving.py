"""The marks "stopped on purpose" are on disk before the stops are sent (docs/design-notes.md,
crash safety), the stops sent at once share their writes, and the task states written never run
ahead of the messages Redis confirmed."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from orchestrator.loop.progress import TRACKER_DOCUMENT, Progress, load_book, load_tracker
from orchestrator.loop.tracker import TaskTracker
from orchestrator.model.observed import SlotKey, TaskState
from orchestrator.settings import Settings
from orchestrator.loop.store import Store


def saved_marks(store: Store) -> frozenset[str]:
    """The shutdown marks a daemon started now would load (the snapshot and its journal)."""
    return load_tracker(store, lambda _t: None).stopped_on_purpose()


def writes(store: Store) -> int:
    """Saves of the tracker so far: one journal line each (no compaction at this size)."""
    journal = store.root / f"{TRACKER_DOCUMENT}.journal"
    return len(journal.read_text().splitlines()) if journal.exists() else 0


async def test_the_stops_of_a_scale_down_wait_for_their_mark_on_disk_and_share_the_writes(
    tmp_path: Path,
) -> None:
    store = Store(tmp_path)
    settings = Settings.from_env({}, state_dir=str(tmp_path))
    tracker = TaskTracker(lambda _t: None)
    progress = Progress(store, load_book(store, settings), tracker)
    on_disk_at_return: dict[str, bool] = {}

    async def stop(container_id: str) -> None:  # as the executor does before each stop
        tracker.mark_shutdown(container_id)
        await progress.save_shutdown_marks()
        on_disk_at_return[container_id] = container_id in saved_marks(store)

    await asyncio.gather(*(stop(f"c{n}") for n in range(50)))
    assert all(on_disk_at_return.values()) and len(on_disk_at_return) == 50
    assert 1 <= writes(store) <= 2, writes(store)

    await progress.save_shutdown_marks()  # nothing new to carry: no write
    await stop("c1")  # marked (and written) already
    assert writes(store) <= 2


class HeldPublisher:
    """A publisher whose Redis confirms only when the test says so."""

    def __init__(self) -> None:
        self.published: list[object] = []
        self.confirmed = 0
        self._progress = asyncio.Event()

    def publish(self, event: object) -> None:
        self.published.append(event)

    def confirm_all(self) -> None:
        self.confirmed = len(self.published)
        self._progress.set()

    async def wait_confirmed(self, timeout: float) -> None:
        target = len(self.published)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while self.confirmed < target:
                    self._progress.clear()
                    await self._progress.wait()


def saved_states(store: Store) -> dict[str, str]:
    """The task states a daemon started now would load (the snapshot and its journal)."""
    tasks = load_tracker(store, lambda _t: None).to_json()["tasks"]
    return {task_id: task["state"] for task_id, task in tasks.items()}


async def test_the_saved_task_states_never_run_ahead_of_what_redis_confirmed(tmp_path: Path) -> None:
    """A SIGKILL right after a tracker write loses nothing: the write waits until Redis holds
    every transition it records (the next daemon publishes only what lies past it)."""
    publisher = HeldPublisher()
    store = Store(tmp_path)
    settings = Settings.from_env({}, state_dir=str(tmp_path))
    tracker = TaskTracker(publisher.publish)
    progress = Progress(store, load_book(store, settings), tracker, publisher.wait_confirmed)
    key = SlotKey("shop", "web", 1)
    tracker.advance(key, "t1", TaskState.CREATED, container_id="c1")
    tracker.advance(key, "t1", TaskState.RUNNING)
    assert len(publisher.published) == 2  # queued, not yet confirmed

    saving = asyncio.create_task(progress.save())
    await asyncio.sleep(0.05)  # the write waits for the confirmation (its bound is 1 s)
    assert not saving.done() and saved_states(store) == {}
    publisher.confirm_all()
    await saving
    assert saved_states(store) == {"t1": "running"}

    # the stop path too (save_shutdown_marks), and a confirmation that never comes only delays
    # the write by the bound
    tracker.mark_shutdown("c1")
    tracker.advance(key, "t1", TaskState.SHUTDOWN, exit_code=137)
    marking = asyncio.create_task(progress.save_shutdown_marks())
    await asyncio.sleep(0.05)
    assert not marking.done() and saved_states(store) == {"t1": "running"}
    await marking  # after PUBLISHED_WAIT_S
    assert saved_states(store) == {"t1": "shutdown"}
