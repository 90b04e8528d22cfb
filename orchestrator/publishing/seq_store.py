"""The last event `seq` the daemon sent, kept in one small file so numbering survives a restart.

The file holds a decimal number and a newline. It is replaced atomically (temporary file, fsync,
rename, fsync of the directory), so a crash leaves either the old number or the new one.
The publisher writes it rarely (docs/events.md, "seq across restarts"): the tail of the Redis
stream covers whatever the file has not caught up with.
"""

from __future__ import annotations

from pathlib import Path

import structlog

from orchestrator.support.files import atomic_write_bytes

log = structlog.stdlib.get_logger()


class SeqStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> int:
        """The saved seq; 0 when there is none yet (or it cannot be read, which is logged)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return 0
        except OSError as exc:
            log.warning("seq_file_unreadable", path=str(self.path), error=str(exc))
            return 0
        try:
            seq = int(text.strip())
        except ValueError:
            log.warning("seq_file_unreadable", path=str(self.path), error=f"not a number: {text[:40]!r}")
            return 0
        return max(seq, 0)

    def save(self, seq: int) -> None:
        """Blocking (fsync): call it from a thread when on the event loop."""
        atomic_write_bytes(self.path, f"{seq}\n".encode())
