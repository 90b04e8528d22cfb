"""The tracker and the restart book are saved as what changed (issue 18): one replacement in a
1,000-task tracker appends a line of its own size, not the document's; loading the snapshot and
its journal gives back what was saved, across compactions and crashes at any point."""

from __future__ import annotations

from pathlib import Path

from orchestrator.loop.journal import SEQ_KEY, Journal, open_document
from orchestrator.loop.store import Store, atomic_write_json
from orchestrator.loop.tracker import TaskTracker
from orchestrator.model.observed import SlotKey, TaskState
from orchestrator.model.spec import RestartPolicy
from orchestrator.planning.restarts import RestartBook

DOC = "tasks.json"


def tracker_with(tasks: int) -> TaskTracker:
    tracker = TaskTracker(lambda _t: None)
    for n in range(tasks):
        tracker.advance(SlotKey("big", "web", n + 1), f"t{n}", TaskState.RUNNING, container_id=f"c{n}")
    return tracker


def reload(store: Store) -> TaskTracker:
    tracker = TaskTracker(lambda _t: None)
    _, changes, _ = open_document(store, DOC, lambda d: tracker.load_json(d) or True)
    for change in changes:
        tracker.apply_changes(change)
    return tracker


def save(tracker: TaskTracker, journal: Journal) -> None:
    whole = tracker.to_json() if journal.compaction_due else None
    journal.append(tracker.take_changes(), whole)


def test_one_replacement_in_a_thousand_tasks_appends_its_own_size_not_the_documents(tmp_path: Path) -> None:
    store = Store(tmp_path)
    tracker = tracker_with(1000)
    _, _, journal = open_document(store, DOC, lambda d: d)
    journal.compact(tracker.to_json())
    tracker.take_changes()
    snapshot = (tmp_path / DOC).stat().st_size
    tracker.advance(SlotKey("big", "web", 7), "t6", TaskState.FAILED, exit_code=137)
    tracker.advance(SlotKey("big", "web", 7), "n6", TaskState.RUNNING, container_id="s6")
    save(tracker, journal)
    line = (tmp_path / f"{DOC}.journal").stat().st_size
    assert snapshot > 100_000 and line < 400, (snapshot, line)
    assert reload(store).to_json() == tracker.to_json()


def test_the_journal_is_folded_into_the_snapshot_once_it_outgrows_it(tmp_path: Path) -> None:
    store = Store(tmp_path)
    tracker = tracker_with(3)
    _, _, journal = open_document(store, DOC, lambda d: d, min_compact=1)
    compactions = 0
    for n in range(200):
        tracker.mark_shutdown(f"c{n}")
        compactions += journal.compaction_due
        save(tracker, journal)
        snapshot = tmp_path / DOC
        snapshot_bytes = snapshot.stat().st_size if snapshot.exists() else 0
        assert (tmp_path / f"{DOC}.journal").stat().st_size <= snapshot_bytes + 400  # + one save
    assert compactions >= 5
    assert reload(store).to_json() == tracker.to_json()


def test_a_torn_last_line_is_dropped_and_lines_the_snapshot_has_are_skipped(tmp_path: Path) -> None:
    store = Store(tmp_path)
    tracker = tracker_with(2)
    _, _, journal = open_document(store, DOC, lambda d: d)
    save(tracker, journal)  # line 1: both tasks running
    tracker.advance(SlotKey("big", "web", 1), "t0", TaskState.FAILED, exit_code=1)
    save(tracker, journal)  # line 2: t0 failed
    saved = tracker.to_json()
    # a crash after the snapshot of line 2 was written, before the journal was emptied:
    atomic_write_json(tmp_path / DOC, {**saved, SEQ_KEY: 2})
    with (tmp_path / f"{DOC}.journal").open("ab") as file:
        file.write(b'{"seq": 3, "set": {"task:t1": {"sta')  # and a line torn by the crash
    loaded = reload(store)
    assert loaded.to_json() == saved  # line 1 (older than the snapshot) did not undo t0's failure


def test_a_failed_save_makes_the_next_one_whole(tmp_path: Path) -> None:
    store = Store(tmp_path)
    tracker = tracker_with(2)
    _, _, journal = open_document(store, DOC, lambda d: d)
    tracker.take_changes()  # taken for a save that then failed
    journal.lost()
    assert journal.compaction_due
    save(tracker, journal)
    assert reload(store).to_json() == tracker.to_json()


def test_the_restart_book_replays_its_changes(tmp_path: Path) -> None:
    store = Store(tmp_path)
    book = RestartBook()
    _, _, journal = open_document(store, "restarts.json", lambda d: d)
    key = SlotKey("app", "web", 1)
    book.record_created(key, "h1", RestartPolicy(), 10.0, attempt=1)
    book.record_created(SlotKey("app", "db", 1), "h2", RestartPolicy(), 11.0, attempt=1)
    journal.append(book.take_changes())
    book.reset("app", "db")
    book.record_rejection(key, "h1", RestartPolicy(), 12.0, "no such image", attempt=2)
    journal.append(book.take_changes())
    loaded, changes, _ = open_document(store, "restarts.json", lambda d: RestartBook.from_json(d))
    assert loaded is None  # never compacted: all of it is in the journal
    again = RestartBook()
    for change in changes:
        again.apply_changes(change)
    assert again.to_json() == book.to_json()
