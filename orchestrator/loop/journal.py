"""A keyed document saved as a snapshot plus an append-only journal of the keys that changed.

The tracker (one record per task) and the restart book (one per slot) were rewritten whole
after every pass that changed them: at 1,000 replicas every replacement wrote and fsynced a few
hundred KB, and serialised all of it on the loop first (issue 18). A `Journal` writes what
changed since the last save, one JSON line per save appended to `<name>.journal` and fsynced;
the whole document (`<name>`, the same format as before) is written again only when the journal
has grown past the snapshot's own size (at least `min_compact` bytes): saves cost what changed,
amortised, never what is kept.

Crash safety: a line is on disk (fsynced) before `append` returns; a crash in the middle of a
line leaves a torn last line, which `load` drops (it was never acknowledged). A snapshot is
written atomically (temp file, fsync, rename) with the number of the last journal line it
contains, then the journal is emptied: a crash in between leaves lines the snapshot already
has, which `load` skips by their number, so an old value never overwrites a newer one.

The document is a mapping of string keys to JSON values; a change sets a key or (None) deletes
it. The caller owns the order: one save at a time (the loop's `_saving` lock).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import structlog

from orchestrator.loop.store import MAX_STATE_FILE_BYTES, Store, atomic_write_json, set_aside

log = structlog.stdlib.get_logger()
T = TypeVar("T")

#: The snapshot's key for the number of the last journal line it contains.
SEQ_KEY = "journal_seq"
#: Below this many bytes of journal, never compact (a tiny snapshot would compact every save).
MIN_COMPACT_BYTES = 256 * 1024


class Journal:
    def __init__(
        self,
        path: Path,
        write_snapshot: Callable[[Path, Any], None],
        min_compact: int = MIN_COMPACT_BYTES,
    ) -> None:
        """`path`: the snapshot file; `write_snapshot(path, data)`: the store's atomic write."""
        self.path = path
        self.journal_path = path.with_name(path.name + ".journal")
        self._write_snapshot = write_snapshot
        self._min_compact = min_compact
        self._seq = 0
        self._journal_bytes = 0
        self._snapshot_bytes = 0

    @classmethod
    def resume(cls, path: Path, write_snapshot: Callable[[Path, Any], None],
               min_compact: int = MIN_COMPACT_BYTES) -> Journal:
        """The journal of a document already loaded (`open_document`), ready to save through:
        numbered on from the snapshot's and the journal's last lines."""
        journal = cls(path, write_snapshot, min_compact)
        seq = 0
        try:  # loaded already (bounded, or set aside): only its line number is wanted here
            data = json.loads(path.read_bytes())
            seq = int(data.get(SEQ_KEY, 0)) if isinstance(data, dict) else 0
        except (OSError, ValueError):
            pass
        journal.replay(seq)
        return journal

    def replay(self, snapshot_seq: int) -> list[dict[str, Any]]:
        """The journal's changes newer than a snapshot that holds lines up to `snapshot_seq`,
        oldest first; numbering goes on from the last line read. A torn last line is dropped."""
        self._seq = snapshot_seq
        self._snapshot_bytes = self.path.stat().st_size if self.path.exists() else 0
        changes: list[dict[str, Any]] = []
        if not self.journal_path.exists():
            return changes
        with self.journal_path.open("rb") as file:
            raw = file.read(MAX_STATE_FILE_BYTES + 1)
        if len(raw) > MAX_STATE_FILE_BYTES:  # never written so big (compaction): damage
            set_aside(self.journal_path, f"it is over {MAX_STATE_FILE_BYTES} bytes")
            return changes
        self._journal_bytes = len(raw)
        for number, line in enumerate(raw.split(b"\n"), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                seq, change = int(entry["seq"]), entry["set"]
            except (ValueError, KeyError, TypeError):
                log.warning("journal_line_dropped", path=str(self.journal_path), line=number)
                continue  # torn by a crash mid-write: never acknowledged
            if seq > snapshot_seq and isinstance(change, dict):
                changes.append(change)
                self._seq = max(self._seq, seq)
        return changes

    def lost(self) -> None:
        """A save failed (its changes are no longer in any `take_changes`): the next save
        writes the whole document."""
        self._journal_bytes = max(self._journal_bytes, self._min_compact, self._snapshot_bytes)

    @property
    def compaction_due(self) -> bool:
        """Has the journal grown past the snapshot (and the floor)? Then the next save should
        carry the whole document (taken on the loop, where the state does not move meanwhile)."""
        return self._journal_bytes >= max(self._min_compact, self._snapshot_bytes)

    def append(self, change: Mapping[str, Any], whole: Any | None = None) -> None:
        """Save one set of changes (key -> value, None deletes), or, given `whole` (the entire
        document, which holds the changes), a snapshot in place of the journal."""
        self._seq += 1
        if whole is not None:
            self.compact(whole)
            return
        line = json.dumps({"seq": self._seq, "set": dict(change)}, separators=(",", ":")).encode() + b"\n"
        fd = os.open(self.journal_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._journal_bytes += len(line)

    def compact(self, data: Any) -> None:
        """Write the whole document (holding every change so far) and empty the journal."""
        if isinstance(data, dict):
            data = {**data, SEQ_KEY: self._seq}
        self._write_snapshot(self.path, data)
        self._snapshot_bytes = self.path.stat().st_size
        if self.journal_path.exists():
            os.truncate(self.journal_path, 0)
        self._journal_bytes = 0


def open_document(
    store: Store, name: str, parse: Callable[[Any], T], min_compact: int = MIN_COMPACT_BYTES
) -> tuple[T | None, list[dict[str, Any]], Journal]:
    """A journaled document of the state directory: (its snapshot parsed, None when there is
    none; the journal's changes to replay on it, oldest first; the journal to save through).
    A snapshot the store set aside (damaged) takes its journal with it: changes without their
    base would make a partial document look whole."""
    journal = Journal(store.root / name, atomic_write_json, min_compact)
    existed = journal.path.exists()
    seq = 0

    def parse_with_seq(data: Any) -> T:
        nonlocal seq
        value = parse(data)
        seq = int(data.get(SEQ_KEY, 0)) if isinstance(data, dict) else 0
        return value

    value = store.load_document(name, parse_with_seq)
    if existed and value is None and journal.journal_path.exists():
        set_aside(journal.journal_path, f"its document {name} was set aside")
    return value, journal.replay(seq), journal


__all__ = ["SEQ_KEY", "Journal", "open_document"]

