"""The last event `seq` the daemon sent, kept in one small file so numbering survives a restart.

The file holds a decimal number and a newline. It is replaced atomically (temporary file, fsync,
rename, fsync of the directory), so a crash leaves either the old number or the new one.
The publisher writes it rarely (docs/events.md, "seq across restarts"): the tail of the Redis
stream covers whatever the file has not caught up with.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import structlog

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
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as file:
                file.write(f"{seq}\n")
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Makes the rename itself durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
