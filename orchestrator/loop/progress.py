"""The loop's own state on disk besides the records: the restart book and the task tracker.

Both are saved after every pass that changed them, and the tracker before every stop the daemon
sends of its own will (docs/design-notes.md, crash safety). The writes fsync, which can take tens
of milliseconds on a busy disk: they run in a thread so the loop keeps taking events meanwhile,
one write at a time, each of the state at its start, so a later write never carries an older one.
A save appends what changed since the last one to the document's journal (journal.py), so its
cost is that of the change, not of the 1,000 tasks or slots kept (issue 18).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from orchestrator.loop.journal import Journal, open_document
from orchestrator.loop.store import Store, atomic_write_json
from orchestrator.loop.tracker import TaskTracker, Transition
from orchestrator.planning.restarts import RestartBook
from orchestrator.settings import Settings

#: Returns once the publisher has sent every state change handed to it so far (bounded by its
#: argument in seconds, at once during a Redis outage): Publisher.wait_confirmed.
WaitPublished = Callable[[float], Awaitable[None]]
#: How long a write of the task states waits for Redis to confirm the messages it records.
PUBLISHED_WAIT_S = 1.0

BOOK_DOCUMENT = "restarts.json"
TRACKER_DOCUMENT = "tasks.json"


def load_book(store: Store, settings: Settings) -> RestartBook:
    """The restart book as saved: its snapshot, then its journal's changes."""
    params = dict(
        backoff_base=settings.backoff_base,
        backoff_cap=settings.backoff_cap,
        healthy_run=settings.healthy_run,
    )
    book, changes, _ = open_document(store, BOOK_DOCUMENT, lambda data: RestartBook.from_json(data, **params))
    book = book if book is not None else RestartBook(**params)
    for change in changes:
        book.apply_changes(change)
    book.changed = False
    return book


def load_tracker(store: Store, on_transition: Callable[[Transition], None]) -> TaskTracker:
    """The task tracker as saved: its snapshot, then its journal's changes."""
    tracker = TaskTracker(on_transition)

    def parse(data: dict[str, Any]) -> bool:
        tracker.load_json(data)
        return True

    _, changes, _ = open_document(store, TRACKER_DOCUMENT, parse)
    for change in changes:
        tracker.apply_changes(change)
    tracker.take_changes()  # what was loaded is on disk already
    return tracker


class Progress:
    def __init__(self, store: Store, book: RestartBook, tracker: TaskTracker,
                 wait_published: WaitPublished | None = None) -> None:
        self._store = store
        self._wait_published = wait_published
        self._book = book
        self._tracker = tracker
        #: Saves append what changed since the last one (journal.py), not the whole documents.
        self._book_journal = Journal.resume(store.root / BOOK_DOCUMENT, atomic_write_json)
        self._tracker_journal = Journal.resume(store.root / TRACKER_DOCUMENT, atomic_write_json)
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
        """The caller holds `_saving`. What changed is taken on the loop (with the whole
        document when its journal is due for compaction); the fsynced writes run in a thread."""
        saves = []
        if self._book.changed:
            journal = self._book_journal
            whole = self._book.to_json() if journal.compaction_due else None
            saves.append((journal, self._book.take_changes(), whole))
            self._book.changed = False
        marks = None
        if self._tracker.changed:
            journal = self._tracker_journal
            whole = self._tracker.to_json() if journal.compaction_due else None
            saves.append((journal, self._tracker.take_changes(), whole))
            marks = self._tracker.shutdown_marks
            self._tracker.changed = False
        try:
            if marks is not None and self._wait_published is not None:
                # At least once: the next daemon publishes every transition past the saved
                # states, so the states saved must not run ahead of what Redis holds (a
                # SIGKILL would lose the messages still queued for good).
                await self._wait_published(PUBLISHED_WAIT_S)
            for journal, change, whole in saves:
                await asyncio.to_thread(journal.append, change, whole)
        except BaseException:  # not written (cancelled, disk error): the next save writes all
            for journal, _, _ in saves:
                journal.lost()
            self._book.changed |= any(j is self._book_journal for j, _, _ in saves)
            self._tracker.changed |= any(j is self._tracker_journal for j, _, _ in saves)
            raise
        if marks is not None:
            self._shutdown_marks_saved = marks


__all__ = ["BOOK_DOCUMENT", "PUBLISHED_WAIT_S", "TRACKER_DOCUMENT", "Progress", "WaitPublished", "load_book", "load_tracker"]
