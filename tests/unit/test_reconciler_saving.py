"""The marks "stopped on purpose" are on disk before the stops are sent (docs/design-notes.md,
crash safety), and the stops sent at once share their writes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from orchestrator.loop.progress import TRACKER_DOCUMENT, Progress, load_book
from orchestrator.loop.tracker import TaskTracker
from orchestrator.settings import Settings
from orchestrator.loop.store import Store


class CountingStore(Store):
    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.writes: list[str] = []

    def save_document(self, name: str, data: Any) -> None:
        self.writes.append(name)
        super().save_document(name, data)


async def test_the_stops_of_a_scale_down_wait_for_their_mark_on_disk_and_share_the_writes(
    tmp_path: Path,
) -> None:
    store = CountingStore(tmp_path)
    settings = Settings.from_env({}, state_dir=str(tmp_path))
    tracker = TaskTracker(lambda _t: None)
    progress = Progress(store, load_book(store, settings), tracker)
    on_disk_at_return: dict[str, bool] = {}

    async def stop(container_id: str) -> None:  # as the executor does before each stop
        tracker.mark_shutdown(container_id)
        await progress.save_shutdown_marks()
        saved = json.loads((tmp_path / TRACKER_DOCUMENT).read_text())["shutdown"]
        on_disk_at_return[container_id] = container_id in saved

    await asyncio.gather(*(stop(f"c{n}") for n in range(50)))
    assert all(on_disk_at_return.values()) and len(on_disk_at_return) == 50
    assert 1 <= store.writes.count(TRACKER_DOCUMENT) <= 2, store.writes

    await progress.save_shutdown_marks()  # nothing new to carry: no write
    await stop("c1")  # marked (and written) already
    assert store.writes.count(TRACKER_DOCUMENT) <= 2
