"""The loop's own state on disk besides the records: the restart book and the task tracker.

Both are saved after every pass that changed them, and the tracker before every stop the daemon
sends of its own will (docs/design-notes.md, crash safety). The writes fsync, which can take tens
of milliseconds on a busy disk: they run in a thread so the loop keeps taking events meanwhile,
one write at a time, each of the state at its start, so a later write never carries an older one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from orchestrator.loop.store import Store
from orchestrator.loop.tracker import TaskTracker, Transition
from orchestrator.planning.restarts import RestartBook
from orchestrator.settings import Settings

BOOK_DOCUMENT = "restarts.json"
TRACKER_DOCUMENT = "tasks.json"


def load_book(store: Store, settings: Settings) -> RestartBook:
    params = dict(
        backoff_base=settings.backoff_base,
        backoff_cap=settings.backoff_cap,
        healthy_run=settings.healthy_run,
    )
    book = store.load_document(BOOK_DOCUMENT, lambda data: RestartBook.from_json(data, **params))
    return book if book is not None else RestartBook(**params)


def load_tracker(store: Store, on_transition: Callable[[Transition], None]) -> TaskTracker:
    tracker = TaskTracker(on_transition)
    store.load_document(TRACKER_DOCUMENT, tracker.load_json)
    return tracker


class Progress:
    def __init__(self, store: Store, book: RestartBook, tracker: TaskTracker) -> None:
        self._store = store
        self._book = book
        self._tracker = tracker
        self._book_saved = book.to_json()
        #: Held while the book and the tracker are written.
        self._saving = asyncio.Lock()
        #: tracker.shutdown_marks as of the last tracker write that succeeded.
        self._shutdown_marks_saved = 0

    async def save(self) -> None:
        """Save the restart book and the tracker if they changed. The snapshots are taken on
        the loop once the lock is held, so the writes follow the state's order."""
        async with self._saving:
            await self._write()

    async def save_shutdown_marks(self) -> None:
        """Return once every container marked stopped-on-purpose so far is on disk.

        The executor calls it between marking a container and sending its stop: a daemon killed
        once the engine has stopped it still knows that its end is a `shutdown`, not a failure
        (nor a failed task of an update). A write begun after the caller's mark carries it, so
        the stops of a scale-down or an rm sent at once share one or two writes."""
        wanted = self._tracker.shutdown_marks
        async with self._saving:
            if self._shutdown_marks_saved < wanted:
                await self._write()

    async def _write(self) -> None:
        """The caller holds `_saving`."""
        book = self._book.to_json()
        documents = []
        if book != self._book_saved:
            documents.append((BOOK_DOCUMENT, book))
            self._book_saved = book
        marks = None
        if self._tracker.changed:
            documents.append((TRACKER_DOCUMENT, self._tracker.to_json()))
            marks = self._tracker.shutdown_marks
            self._tracker.changed = False
        try:
            for name, data in documents:
                await asyncio.to_thread(self._store.save_document, name, data)
        except BaseException:  # not written (cancelled, disk error): the next pass tries again
            self._book_saved = {}
            self._tracker.changed = True
            raise
        if marks is not None:
            self._shutdown_marks_saved = marks


__all__ = ["BOOK_DOCUMENT", "TRACKER_DOCUMENT", "Progress", "load_book", "load_tracker"]
