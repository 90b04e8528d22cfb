"""The marks "stopped on purpose" are on disk before the stops are sent (docs/design-notes.md,
crash safety), and the stops sent at once share their writes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from orchestrator.loop.progress import TRACKER_DOCUMENT, Progress, load_book, load_tracker
from orchestrator.loop.tracker import TaskTracker
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
